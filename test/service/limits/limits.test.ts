import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { StoredEvent } from '../../../service/events.js';
import { contentPipeline } from '../../../service/pipelines/index.js';
import { checkPipeline } from '../../../service/pipelines/loader.js';
import type { AnyPipeline } from '../../../service/pipelines/types.js';
import { ADMIN, appOn, auth } from '../../helpers/app.js';
import { isTransition, tempDir } from '../../helpers/engine.js';
import { gatedPipeline } from '../../helpers/gated.js';
import { usePostgres, type TestDatabase } from '../../helpers/postgres.js';
import limitedPipelines, { pairFlight } from '../../helpers/limited-pipelines.js';
import { flightsOf, maxOverlap, worstWindow } from './measure.js';
import { type Probe, until as untilWithin } from '../../helpers/until.js';

const API = '/api/v1/automation';

const until = <T>(what: string, probe: Probe<T>, ms = 10_000): Promise<T> => untilWithin(what, probe, ms);

const pg = usePostgres();

// The same behaviour whichever store holds the limits: in process beside SQLite, or in Postgres.
describe.each(['sqlite', 'postgres'] as const)('limits on one instance (%s)', (kind) => {
  let dir: ReturnType<typeof tempDir>;
  let h: Awaited<ReturnType<typeof appOn>>;
  let gate: ReturnType<typeof gatedPipeline>;
  let db: TestDatabase | undefined;

  beforeEach(async () => {
    dir = tempDir('rs-limits-');
    db = kind === 'postgres' ? await pg.createDatabase() : undefined;
    gate = gatedPipeline('solo', [2], { concurrency: 2 });
    // The gated stage on a key of one slot: whichever attempt holds it stays until the test finishes it.
    const solo: AnyPipeline = { ...gate.pipeline, stages: gate.pipeline.stages.map((s) => ({ ...s, limit: { key: 'solo', concurrency: 1 } })) };
    // A worker queue stage on a key of one slot, three of its own at once.
    const checked = checkPipeline({
      name: 'queued',
      concurrencyOf: () => 3,
      stages: [{ key: 'work', name: 'Work', queue: 'limited', limit: { key: 'queue_slot', concurrency: 1 }, loadItems: async () => [1, 2, 3].map((id) => ({ id, title: `job ${id}` })) }],
    });
    if (!('pipeline' in checked)) throw new Error(checked.problems.join('; '));
    h = await appOn(dir.path, [...limitedPipelines, solo, checked.pipeline, contentPipeline], {}, { env: db ? { DATABASE_URL: db.url } : {} });
  });
  afterEach(async () => {
    await h.app.close();
    await h.engine.stop();
    await h.limits.stop();
    await h.store.close();
    await db?.drop();
    dir.remove();
  });

  async function start(pipeline: string, options: Record<string, unknown> = {}): Promise<string> {
    const res = await h.app.inject({ method: 'POST', url: `${API}/runs`, headers: auth(ADMIN), payload: { site_id: 'site-5', pipeline, options } });
    expect(res.statusCode, res.body).toBe(201);
    return (res.json() as { data: { run_id: string } }).data.run_id;
  }
  const get = async (url: string) => {
    const res = await h.app.inject({ url, headers: auth(ADMIN) });
    expect(res.statusCode, res.body).toBe(200);
    return res;
  };
  const reached = (runId: string, state: string) => h.next((e) => e.run_id === runId && isTransition('run', state)(e));
  const ofRuns = (ids: string[]) => (e: StoredEvent) => ids.includes(e.run_id);
  const limitsNow = async () => (await get(`${API}/limits`)).json() as { data: { key: string; in_use: number; waiting: number }[] };
  const limitOf = async (key: string) => (await limitsNow()).data.find((l) => l.key === key)!;

  it('holds two runs sharing a key at 10/s to 10 items a second plus the burst of 1, in every window', async () => {
    const runs = [await start('limited_rate', { items: 30 }), await start('limited_rate', { items: 30 })];
    await Promise.all(runs.map((r) => reached(r, 'completed')));
    const times = h.events.filter(ofRuns(runs)).filter((e) => e.event === 'stage_item_processed').map((e) => Date.parse(e.timestamp));
    expect(times).toHaveLength(60);
    // Over any window of w seconds, at most 10·w + 1 items are recorded.
    for (const w of [1, 2, 3, 6]) expect(worstWindow(times, w * 1000), `${w} s window`).toBeLessThanOrEqual(10 * w + 1);
    // 60 items at one every 100 ms cannot take less than 5.9 s from first to last.
    expect(Math.max(...times) - Math.min(...times)).toBeGreaterThanOrEqual(5900);
  });

  it('never has a third attempt in flight under `concurrency: 2`, whatever the runs’ own concurrency', async () => {
    pairFlight.max = 0;
    const runs = [await start('limited_pair', { items: 12, concurrency: 4, ms: 15 }), await start('limited_pair', { items: 12, concurrency: 4, ms: 15 })];
    await Promise.all(runs.map((r) => reached(r, 'completed')));
    expect(pairFlight.max).toBe(2);
    // The same from the runs' own events: each attempt's `begin` to its `end`.
    const flights = flightsOf(h.events.filter(ofRuns(runs)));
    expect(flights).toHaveLength(24);
    expect(maxOverlap(flights)).toBeLessThanOrEqual(2);
  });

  it('shows waiting attempts, and gives back those of a run paused or cancelled without their taking the slot', async () => {
    const holder = await start('solo');
    await gate.inFlight(1);
    const paused = await start('solo');
    const cancelled = await start('solo');
    // The holder's second item and both items of each other run wait for the one slot.
    await until('five attempts waiting', async () => (await limitOf('solo')).waiting === 5);
    expect(await limitOf('solo')).toEqual({ key: 'solo', rate: null, per_second: null, per_minute: null, concurrency: 1, in_use: 1, waiting: 5 });
    const metrics = (await get('/metrics')).body;
    expect(metrics).toMatch(/^runstate_limit_waiting\{key="solo"\} 5$/m);
    expect(metrics).toMatch(/^runstate_limit_in_use\{key="solo"\} 1$/m);
    expect(metrics).toMatch(/^runstate_limit_concurrency\{key="solo"\} 1$/m);
    const items = (await get(`${API}/runs/${paused}/items`)).json() as { data: { status: string }[]; counts: Record<string, number> };
    expect(items.data.map((i) => i.status)).toEqual(['waiting_limit', 'waiting_limit']);
    expect(items.counts).toMatchObject({ waiting_limit: 2, in_flight: 0 });
    const card = (await get(`${API}/current_processing/?run_id=${paused}`)).json() as { data: { limit_waiting?: unknown } };
    expect(card.data.limit_waiting).toEqual({ key: 'solo', items: 2 });

    // Pause: no item of it is in flight, so it is paused at once, its waiting attempts given back.
    await h.app.inject({ method: 'POST', url: `${API}/runs/${paused}/pause`, headers: auth(ADMIN) });
    await reached(paused, 'paused');
    await h.app.inject({ method: 'POST', url: `${API}/runs/${cancelled}/cancel`, headers: auth(ADMIN) });
    await reached(cancelled, 'cancelled');
    await until('only the holder’s second attempt waiting', async () => (await limitOf('solo')).waiting === 1);
    expect((await get(`${API}/current_processing/?run_id=${paused}`)).json()).toMatchObject({ data: { status: 'paused' } });
    expect((await get(`${API}/runs/${paused}/items`)).json()).toMatchObject({ counts: { waiting_limit: 0, in_flight: 0, processed: 0 } });

    // The slot goes to the holder's own next attempt: the paused and cancelled runs never took it.
    await gate.finish();
    await gate.finish();
    await reached(holder, 'completed');
    expect(gate.started.map((s) => s.key.split(':')[0])).toEqual([holder, holder]);

    // Resumed, the paused run waits for the limit again, gets it, and finishes.
    await h.app.inject({ method: 'POST', url: `${API}/runs/${paused}/resume`, headers: auth(ADMIN) });
    await gate.finish();
    await gate.finish();
    await reached(paused, 'completed');
    expect(gate.started.map((s) => s.key.split(':')[0])).toEqual([holder, holder, paused, paused]);
    expect(await limitOf('solo')).toMatchObject({ in_use: 0, waiting: 0 });
  });

  it('lists every declared key, and refuses a query or a missing token', async () => {
    expect((await limitsNow()).data.map((l) => l.key)).toEqual(['demo_ai', 'pair', 'queue_slot', 'shared', 'solo']);
    expect((await limitsNow()).data[3]).toEqual({ key: 'shared', rate: 10, per_second: 10, per_minute: null, concurrency: null, in_use: 0, waiting: 0 });
    const bad = await h.app.inject({ url: `${API}/limits?key=solo`, headers: auth(ADMIN) });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ error: { code: 'BAD_REQUEST' } });
    expect((await h.app.inject({ url: `${API}/limits` })).statusCode).toBe(401);
  });

  it('holds the demo content pipeline’s AI stages to the `demo_ai` limit only when a run asks for it', async () => {
    const options = { items_per_stage: [0, 0, 0, 0, 0, 0, 20], delay_ms: 0, concurrency: 8 };
    const free = await start('content', { ...options, items_per_stage: [20, 0, 0, 0, 0, 0, 0] });
    await reached(free, 'completed');
    const limited = await start('content', { ...options, items_per_stage: [20, 0, 0, 0, 0, 0, 0], ai_limit: true });
    await reached(limited, 'completed');
    const times = (runId: string) => h.events.filter((e) => e.run_id === runId && e.event === 'stage_item_processed').map((e) => Date.parse(e.timestamp));
    // By default the stage runs as fast as ever; with the option, 10 a second plus the burst.
    expect(worstWindow(times(free), 1000)).toBe(20);
    expect(worstWindow(times(limited), 1000)).toBeLessThanOrEqual(11);
  });

  it('hands a worker no job of a limited queue stage beyond the limit', async () => {
    const runId = await start('queued');
    const claim = async () => {
      const res = await h.app.inject({ method: 'POST', url: '/api/v1/workers/claim', headers: auth(ADMIN), payload: { queue: 'limited', worker_id: 'w1', max: 5, wait_ms: 5000 } });
      expect(res.statusCode, res.body).toBe(200);
      return (res.json() as { jobs: { job_id: string; item: { id: number } }[] }).jobs;
    };
    const done: number[] = [];
    for (let k = 0; k < 3; k++) {
      // Three attempts want to run; the key lets one at a time have a job.
      const jobs = await claim();
      expect(jobs).toHaveLength(1);
      await until('the other attempts to wait', async () => (await limitOf('queue_slot')).waiting === 2 - k);
      const res = await h.app.inject({ method: 'POST', url: `/api/v1/workers/jobs/${jobs[0]!.job_id}/complete`, headers: auth(ADMIN), payload: {} });
      expect(res.statusCode, res.body).toBe(200);
      done.push(jobs[0]!.item.id);
    }
    await reached(runId, 'completed');
    expect(done.sort()).toEqual([1, 2, 3]);
  });
});
