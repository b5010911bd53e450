// `POST /api/v1/workers/answers` (docs/workers.md, "Answering several jobs at once"): each entry
// answered as its own /complete or /fail would be, in one request; a bad entry refuses them all.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnyPipeline, Item } from '../../../service/pipelines/types.js';
import { ADMIN, appOn } from '../../helpers/app.js';
import { tempDir } from '../../helpers/engine.js';
import { call } from '../../helpers/workers.js';
import { until } from '../../helpers/until.js';

const WORKER = 'worker-token-answers-012345';
const OTHER_QUEUE = 'worker-token-answers-other01';
const W = '/api/v1/workers';
const ITEMS: Item[] = [1, 2, 3, 4].map((id) => ({ id, title: `item ${id}` }));

const pipeline: AnyPipeline = {
  name: 'answers',
  stages: [
    {
      key: 'only',
      name: 'only',
      queue: 'faces',
      concurrency: 4,
      maxAttempts: 1,
      leaseMs: 3000,
      loadsInProcess: true,
      loadItems: async () => ITEMS,
      processItem: async () => ({ cost: 0 }),
    },
  ],
  parseOptions: () => ({}),
};

interface Job {
  job_id: string;
  item: { id: number };
}

const dir = tempDir('rs-answers-');
let svc: Awaited<ReturnType<typeof appOn>>;
let base: string;

beforeAll(async () => {
  svc = await appOn(dir.path, [pipeline], {}, {
    tokens: [
      { token: WORKER, name: 'faces-worker', role: 'worker', queues: ['faces'] },
      { token: OTHER_QUEUE, name: 'other-worker', role: 'worker', queues: ['other'] },
    ],
  });
  base = (await svc.start()).url.replace(/\/$/, '');
});

afterAll(async () => {
  await svc?.stop();
  dir.remove();
});

const answers = (token: string, body: unknown) => call(base, token, 'POST', `${W}/answers`, body);

describe('POST /api/v1/workers/answers', () => {
  it('answers each entry as its own endpoint would, records each item once, and refuses a batch with a bad entry whole', async () => {
    const run = await svc.engine.startRun({ accountId: 'acme', siteId: '5', pipeline: 'answers' });
    const claimed = await until('four jobs claimed', async () => {
      const res = await call(base, WORKER, 'POST', `${W}/claim`, { queue: 'faces', worker_id: 'batcher', max: 4, wait_ms: 1000 });
      return (res.body.jobs as Job[]).length === 4 ? (res.body.jobs as Job[]) : undefined;
    });
    const byItem = new Map(claimed.map((j) => [j.item.id, j.job_id]));
    const [one, two, three, four] = [1, 2, 3, 4].map((id) => byItem.get(id)!);

    // Bad input anywhere refuses the whole request, and nothing is recorded.
    const bad = await answers(WORKER, { answers: [{ job_id: one, complete: { cost: 1 } }, { job_id: two, complete: { cost: -1 } }] });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'BAD_REQUEST', message: expect.stringContaining('answers[1]') });
    expect((await answers(WORKER, { answers: [] })).status).toBe(400);
    expect((await answers(WORKER, { answers: [{ job_id: one }] })).status).toBe(400);
    expect((await answers(WORKER, { answers: [{ job_id: one, complete: {}, fail: { error: 'x' } }] })).status).toBe(400);
    expect((await answers(WORKER, [{ job_id: one, complete: {} }])).status).toBe(400);

    const res = await answers(WORKER, {
      answers: [
        { job_id: one, complete: { cost: 1.5 } },
        { job_id: two, fail: { error: 'corrupt image', retryable: false } },
        { job_id: one, complete: { cost: 9 } },
        { job_id: '999999.1', complete: {} },
      ],
    });
    expect(res.status).toBe(200);
    expect(res.body.results).toEqual([
      { job_id: one, status: 200, ok: true },
      { job_id: two, status: 200, ok: true },
      { job_id: one, status: 200, ok: true, duplicate: true },
      { job_id: '999999.1', status: 404, error: { code: 'JOB_NOT_FOUND', message: expect.any(String) } },
    ]);
    // A token that does not serve the queue gets 403 for that entry, and nothing is recorded for it.
    const forbidden = await answers(OTHER_QUEUE, { answers: [{ job_id: three, complete: {} }] });
    expect(forbidden.body.results).toEqual([{ job_id: three, status: 403, error: { code: 'FORBIDDEN', message: expect.any(String) } }]);

    // Job 4's lease runs out and it is handed out again: the late answer is LEASE_LOST in its entry.
    const again = await until('job 4 offered again', async () => {
      const r = await call(base, WORKER, 'POST', `${W}/claim`, { queue: 'faces', worker_id: 'second', wait_ms: 1000 });
      return (r.body.jobs as Job[]).find((j) => j.item.id === 4);
    });
    // The next jobs may be asked for in the same request; a bad claim refuses it whole.
    const badClaim = await answers(WORKER, { answers: [{ job_id: again.job_id, complete: {} }], claim: { queue: 'faces', worker_id: 'second', max: 0 } });
    expect(badClaim.status).toBe(400);
    expect(badClaim.body.error!.message).toContain('claim.max');
    const late = await answers(WORKER, {
      answers: [{ job_id: four, complete: {} }, { job_id: again.job_id, complete: { cost: 2 } }],
      claim: { queue: 'faces', worker_id: 'second', max: 2, wait_ms: 10_000 },
    });
    expect(late.body.results).toEqual([
      { job_id: four, status: 409, error: { code: 'LEASE_LOST', message: expect.any(String) } },
      { job_id: again.job_id, status: 200, ok: true },
    ]);
    // Job 3 (handed out, oldest first, while looking for job 4, and never answered) comes back once
    // that lease runs out too: the claim of the answers request waits for it.
    const next = late.body.jobs as Job[];
    expect(next.map((j) => j.item.id)).toEqual([3]);
    expect((await answers(WORKER, { answers: [{ job_id: next[0]!.job_id, complete: {} }] })).body.results).toEqual([{ job_id: next[0]!.job_id, status: 200, ok: true }]);

    await svc.engine.whenRetired(run.run_id);
    const recorded = svc.events.filter((e) => e.run_id === run.run_id && (e.event === 'stage_item_processed' || e.event === 'stage_item_failed'));
    expect(recorded.map((e) => [e.event, 'item' in e ? e.item.id : undefined]).sort()).toEqual([
      ['stage_item_failed', 2],
      ['stage_item_processed', 1],
      ['stage_item_processed', 3],
      ['stage_item_processed', 4],
    ]);
    const costs = await call(base, ADMIN, 'GET', `/api/v1/automation/runs/${run.run_id}/items?stage=1`);
    expect((costs.body.data as { id: number; cost: number }[]).find((i) => i.id === 1)).toMatchObject({ cost: 1.5 });
  });
});
