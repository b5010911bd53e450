// retry_failed on a queue stage (docs/workers.md): each failed item gets a new job, its attempt
// numbered on from the last, with the same idempotency key; the worker's answer is recorded once.
import { afterEach, describe, expect, it } from 'vitest';
import type { AnyPipeline } from '../../../service/pipelines/types.js';
import { ADMIN, appOn, auth } from '../../helpers/app.js';
import { tempDir } from '../../helpers/engine.js';

const API = '/api/v1/automation';
const WORKERS = '/api/v1/workers';

const queued: AnyPipeline = {
  name: 'queued',
  stages: [
    {
      key: 'resize',
      name: 'Resize',
      queue: 'resize',
      loadsInProcess: true,
      concurrency: 4,
      loadItems: async () => [1, 2, 3, 4].map((id) => ({ id, title: `image ${id}` })),
      processItem: async () => {
        throw new Error('runs on a worker');
      },
    },
  ],
  retry: { attempts: 2, backoffMs: 1 },
};

interface Job {
  job_id: string;
  item: { id: number };
  attempt: number;
  idempotency_key: string;
}

describe('retry_failed on a worker queue stage', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it('hands each failed item to a worker again as a new job, attempt numbered on, and records its answer once', async () => {
    const dir = tempDir();
    const h = await appOn(dir.path, [queued]);
    cleanup.push(async () => {
      await h.stop();
      dir.remove();
    });
    const post = (url: string, payload: object = {}) => h.app.inject({ method: 'POST', url, headers: auth(ADMIN), payload });
    /** Claims until `n` jobs are in hand (they are queued as the stage starts its attempts). */
    const claim = async (n: number): Promise<Job[]> => {
      const jobs: Job[] = [];
      while (jobs.length < n) {
        const res = await post(`${WORKERS}/claim`, { queue: 'resize', worker_id: 'w1', max: n - jobs.length, wait_ms: 2000 });
        expect(res.statusCode, res.body).toBe(200);
        jobs.push(...(res.json().jobs as Job[]));
      }
      return jobs.sort((a, b) => a.item.id - b.item.id);
    };

    const started = await post(`${API}/runs`, { site_id: 'site-5', pipeline: 'queued' });
    expect(started.statusCode, started.body).toBe(201);
    const runId = started.json().data.run_id as string;
    // Items 2 and 4 fail for good (no retry can help); 1 and 3 are done.
    for (const job of await claim(4)) {
      const res = job.item.id % 2 === 0
        ? await post(`${WORKERS}/jobs/${job.job_id}/fail`, { error: `no source for ${job.item.id}`, retryable: false })
        : await post(`${WORKERS}/jobs/${job.job_id}/complete`, { cost: 1 });
      expect(res.statusCode, res.body).toBe(200);
    }
    await h.engine.whenRetired(runId);
    const done = (await h.app.inject({ url: `${API}/runs/${runId}`, headers: auth(ADMIN) })).json().data;
    expect(done).toMatchObject({ status: 'completed', failed_items: 2 });

    const res = await post(`${API}/runs/${runId}/retry_failed`);
    expect(res.statusCode, res.body).toBe(200);
    const again = await claim(2);
    expect(again.map((j) => [j.item.id, j.attempt, j.idempotency_key])).toEqual([
      [2, 2, `${runId}:1:2`],
      [4, 2, `${runId}:1:4`],
    ]);
    for (const job of again) expect((await post(`${WORKERS}/jobs/${job.job_id}/complete`, { cost: 2 })).statusCode).toBe(200);
    // A second completion of one job records nothing.
    expect((await post(`${WORKERS}/jobs/${again[0]!.job_id}/complete`, { cost: 2 })).json()).toMatchObject({ duplicate: true });
    await h.engine.whenRetired(runId);

    const after = (await h.app.inject({ url: `${API}/runs/${runId}`, headers: auth(ADMIN) })).json().data;
    expect(after).toMatchObject({ status: 'completed', failed_items: 0 });
    expect(after.stages[0]).toMatchObject({ processed_items: 4, failed_items: 0, credits_used: 6 });
    const ledger = await h.engine.store.ledger(runId);
    expect(ledger.map((l) => [l.itemId, l.status, l.attempts]).sort()).toEqual([
      [1, 'done', 1],
      [2, 'done', 2],
      [3, 'done', 1],
      [4, 'done', 2],
    ]);
    const processed = h.events.filter((e) => e.run_id === runId && e.event === 'stage_item_processed');
    expect(processed).toHaveLength(4);
  });
});
