// Real Python workers (sdk/python/runstate_worker.py) against the real service as `npm start`
// runs it: claims, lost leases, exactly-once recording, pause, cancel, tokens.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { tempDir } from '../../helpers/engine.js';
import { startService, type ServiceProcess } from '../../helpers/service-process.js';
import { call, kill, pythonWorker, type WorkerProcess } from '../../helpers/workers.js';
import { until } from '../../helpers/until.js';

const ADMIN = 'admin-token-for-workers-0123';
const WORKER = 'worker-token-faces-0123456';
const OTHER = 'worker-token-other-0123456';
const SITE = 'site-token-for-workers-0123';
const LEASE_MS = 1500;
const API = '/api/v1/automation';
const W = '/api/v1/workers';

let svc: ServiceProcess;
const dir = tempDir('rs-workers-');
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  const tokens = join(dir.path, 'tokens.json');
  writeFileSync(
    tokens,
    JSON.stringify([
      { token: WORKER, name: 'faces-worker', role: 'worker', queues: ['faces'] },
      { token: OTHER, name: 'other-worker', role: 'worker', queues: ['other'] },
      { token: SITE, name: 'site-5', account_id: 'acme', site_ids: ['5'] },
    ]),
  );
  svc = await startService(join(dir.path, 'data'), {
    RUNSTATE_ADMIN_TOKEN: ADMIN,
    RUNSTATE_TOKENS_FILE: tokens,
    RUNSTATE_JOB_LEASE_MS: String(LEASE_MS),
  });
});

afterAll(async () => {
  await Promise.all(workers.map((w) => kill(w)));
  await svc?.stop();
  dir.remove();
});

const admin = (method: string, path: string, body?: unknown) => call(svc.base, ADMIN, method, path, body);
const worker = (path: string, body?: unknown, raw?: string) => call(svc.base, WORKER, 'POST', `${W}${path}`, body, raw);

async function startRun(options: Record<string, unknown>): Promise<string> {
  const res = await admin('POST', `${API}/runs`, { site_id: '5', pipeline: 'face_processor_workers', options });
  expect(res.status).toBe(201);
  return (res.body.data as { run_id: string }).run_id;
}

async function runStatus(runId: string): Promise<string> {
  return ((await admin('GET', `${API}/runs/${runId}`)).body.data as { status: string }).status;
}

interface Job {
  job_id: string;
  kind: string;
  run_id: string;
  stage: number;
  item?: { id: number };
  attempt: number;
  idempotency_key: string;
  lease_ms: number;
}

async function claimOne(waitMs = 5000): Promise<Job> {
  const res = await worker('/claim', { queue: 'faces', worker_id: 'by-hand', wait_ms: waitMs });
  expect(res.status).toBe(200);
  const jobs = res.body.jobs as Job[];
  expect(jobs).toHaveLength(1);
  return jobs[0]!;
}

async function trace(runId: string): Promise<{ event: string; seq: number; stage?: number; item?: { id: number | string }; [k: string]: unknown }[]> {
  const res = await fetch(`${svc.base}${API}/runs/${runId}/trace`, { headers: { authorization: `Token ${ADMIN}` } });
  return (await res.text())
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { event: string; seq: number });
}

describe('Python workers on a real service', () => {
  it('4 workers share a run; one SIGKILLed holding a job: the job comes back after lease_ms, same key and attempt, and every item is recorded once', async () => {
    const runId = await startRun({ items_per_stage: 5, delay_ms: 120, concurrency: 4 });
    for (const id of ['w1', 'w2', 'w3', 'w4']) workers.push(pythonWorker(svc.base, WORKER, id));
    const [w1] = workers;
    const held = await w1!.until((l) => l.event === 'start');
    const killedAt = Date.now();
    await kill(w1!);
    const again = await Promise.race(
      workers.slice(1).map((w) => w.until((l) => l.event === 'start' && l.key === held.key && l.job_id !== held.job_id)),
    );
    const after = Date.now() - killedAt;
    expect(again.attempt).toBe(held.attempt);
    // The last heartbeat was at most a third of the lease before the kill.
    expect(after).toBeGreaterThanOrEqual((LEASE_MS * 2) / 3 - 100);

    await until('the run completed', async () => (await runStatus(runId)) === 'completed', 60_000);
    const events = await trace(runId);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    const processed = events.filter((e) => e.event === 'stage_item_processed').map((e) => `${e.stage}:${e.item!.id}`);
    expect(processed).toHaveLength(25);
    expect(new Set(processed).size).toBe(25);
    expect(events.some((e) => e.event === 'stage_item_failed')).toBe(false);
    // The four workers shared the work, and the killed one's item ran again elsewhere.
    const starts = workers.slice(1).map((w) => w.lines.filter((l) => l.event === 'start').length);
    expect(starts.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
    const metrics = await (await fetch(`${svc.base}/metrics`)).text();
    expect(metrics).toMatch(/runstate_worker_leases_lost_total\{queue="faces"\} [1-9]/);
    expect(metrics).toMatch(/runstate_worker_jobs_in_flight\{worker_id="w2",queues="faces"\} \d+/);
    expect(metrics).toMatch(/runstate_worker_job_seconds_count\{queue="faces",kind="item",outcome="done"\} \d+/);
    // Counted from the database (the store contract checks the counts): nothing in flight once the run is done.
    expect(metrics).toContain('# TYPE runstate_worker_queue_jobs_in_flight gauge');
    const seen = await call(svc.base, WORKER, 'GET', `${W}/`);
    expect((seen.body.workers as { worker_id: string }[]).map((w) => w.worker_id)).toEqual(expect.arrayContaining(['w2', 'w3', 'w4']));
    const overview = await call(svc.base, SITE, 'GET', `${API}/workers`);
    expect(overview.status).toBe(200);
    expect(overview.body.data).toMatchObject({ queues: [{ queue: 'faces', waiting: 0 }] });
    await Promise.all(workers.splice(0).map((w) => kill(w, 'SIGTERM')));
  });

  it('refuses late and bad answers, records a duplicate once, and keeps tokens to their door', async () => {
    const runId = await startRun({ items_per_stage: 2, concurrency: 2, backoff_ms: 50 });
    const load = await claimOne();
    expect(load).toMatchObject({ kind: 'load', run_id: runId, stage: 1, attempt: 1, idempotency_key: `${runId}:1:load`, lease_ms: LEASE_MS });

    // Bad input is a 4xx in the error shape and changes nothing.
    const noId = await worker(`/jobs/${load.job_id}/complete`, { items: [{ title: 'no id' }] });
    expect(noId.status).toBe(400);
    expect(noId.body.error!.code).toBe('BAD_REQUEST');
    expect((await worker(`/jobs/${load.job_id}/complete`, undefined, '{"items": [')).status).toBe(400);
    const big = JSON.stringify({ items: Array.from({ length: 30_000 }, (_, i) => ({ id: i, title: 'x'.repeat(40) })) });
    expect((await worker(`/jobs/${load.job_id}/complete`, undefined, big)).status).toBe(413);
    const otherQueue = await call(svc.base, OTHER, 'POST', `${W}/jobs/${load.job_id}/complete`, { items: [] });
    expect(otherQueue.status).toBe(403);
    expect((await call(svc.base, OTHER, 'POST', `${W}/claim`, { queue: 'faces', worker_id: 'x' })).status).toBe(403);
    expect((await worker('/jobs/999999.1/complete', { items: [] })).body.error!.code).toBe('JOB_NOT_FOUND');
    expect((await worker('/jobs/nonsense/heartbeat', {})).status).toBe(404);
    expect((await worker('/claim', { queue: 'faces', worker_id: 'x', wait_ms: 40_000 })).status).toBe(400);
    expect((await worker('/claim', { worker_id: 'x' })).status).toBe(400);
    expect((await admin('GET', `${API}/runs/${runId}`)).body.data).toMatchObject({ stages: [{ state: 'loading' }, {}, {}, {}, {}] });

    expect((await worker(`/jobs/${load.job_id}/complete`, { items: [{ id: 1, title: 'one' }, { id: 2 }] })).body).toEqual({ ok: true });
    const first = await claimOne();
    const second = await claimOne();
    expect([first.idempotency_key, second.idempotency_key]).toEqual([`${runId}:1:1`, `${runId}:1:2`]);

    // A second completion is a duplicate and records nothing.
    expect((await worker(`/jobs/${first.job_id}/complete`, { cost: 2 })).body).toEqual({ ok: true });
    expect((await worker(`/jobs/${first.job_id}/complete`, { cost: 2 })).body).toEqual({ ok: true, duplicate: true });

    // The second job's lease runs out: it is offered again, same key and attempt; the late answer is 409.
    const again = await until('the job offered again', async () => {
      const res = await worker('/claim', { queue: 'faces', worker_id: 'second-hand', wait_ms: 1000 });
      return (res.body.jobs as Job[])[0];
    });
    expect(again).toMatchObject({ idempotency_key: second.idempotency_key, attempt: second.attempt });
    expect(again.job_id).not.toBe(second.job_id);
    const late = await worker(`/jobs/${second.job_id}/complete`, { cost: 1 });
    expect(late.status).toBe(409);
    expect(late.body.error!.code).toBe('LEASE_LOST');
    expect((await worker(`/jobs/${second.job_id}/heartbeat`, {})).status).toBe(409);
    const recorded = async (stage: number) =>
      (await trace(runId)).filter((e) => (e.event === 'stage_item_processed' || e.event === 'stage_item_failed') && e.stage === stage);
    expect((await recorded(1)).map((e) => e.item!.id)).toEqual([1]);
    expect((await worker(`/jobs/${again.job_id}/heartbeat`, { message: 'half way' })).body).toEqual({ ok: true, cancel: false });
    expect((await worker(`/jobs/${again.job_id}/complete`, {})).body).toEqual({ ok: true });
    await until('the heartbeat message in the log', async () => (await trace(runId)).find((e) => e.event === 'activity_log' && e.message === 'half way'));

    // Stage 2: pause while one job is in flight: no job is handed out; it finishes, then paused.
    const load2 = await claimOne();
    expect(load2).toMatchObject({ kind: 'load', stage: 2 });
    await worker(`/jobs/${load2.job_id}/complete`, { items: [{ id: 'a' }, { id: 'b' }, { id: 'c' }] });
    const inFlight = await claimOne();
    expect(inFlight.idempotency_key).toBe(`${runId}:2:a`);
    expect((await admin('POST', `${API}/runs/${runId}/pause`, {})).status).toBe(200);
    expect((await worker('/claim', { queue: 'faces', worker_id: 'x', wait_ms: 800 })).body).toEqual({ jobs: [] });
    expect(await runStatus(runId)).toBe('running');
    expect((await worker(`/jobs/${inFlight.job_id}/complete`, { cost: 1 })).body).toEqual({ ok: true });
    await until('paused', async () => (await runStatus(runId)) === 'paused');
    expect((await worker('/claim', { queue: 'faces', worker_id: 'x', wait_ms: 500 })).body).toEqual({ jobs: [] });
    expect((await admin('POST', `${API}/runs/${runId}/resume`, {})).status).toBe(200);
    const resumed = await claimOne();
    expect(resumed).toMatchObject({ idempotency_key: `${runId}:2:b`, attempt: 1 });

    // A fail with retryable: false fails the item at once.
    expect((await worker(`/jobs/${resumed.job_id}/fail`, { error: 'corrupt image', retryable: false })).body).toEqual({ ok: true });
    const failed = await until('item b failed', async () => (await recorded(2)).find((e) => e.event === 'stage_item_failed'));
    expect(failed).toMatchObject({ item: { id: 'b' }, attempts: 1, error: 'corrupt image' });

    // A retryable fail is a failed attempt: the item comes back after its backoff as attempt 2, same key.
    const third = await claimOne();
    expect(third).toMatchObject({ idempotency_key: `${runId}:2:c`, attempt: 1 });
    expect((await worker(`/jobs/${third.job_id}/fail`, { error: 'flaky GPU' })).body).toEqual({ ok: true });
    const last = await claimOne();
    expect(last).toMatchObject({ idempotency_key: `${runId}:2:c`, attempt: 2 });

    // Cancel answers the heartbeat; what comes after records nothing.
    expect((await admin('POST', `${API}/runs/${runId}/cancel`, {})).status).toBe(200);
    await until('cancel on the heartbeat', async () => (await worker(`/jobs/${last.job_id}/heartbeat`, {})).body.cancel === true);
    expect((await worker(`/jobs/${last.job_id}/complete`, {})).body).toEqual({ ok: true, cancelled: true });

    // Tokens: a worker token reads no runs; another token gets no jobs; a wrong token is 401.
    const runs = await call(svc.base, WORKER, 'GET', `${API}/runs`);
    expect(runs.status).toBe(403);
    expect(runs.body.error!.code).toBe('FORBIDDEN');
    expect((await call(svc.base, WORKER, 'GET', `${API}/runs/${runId}`)).status).toBe(403);
    expect((await call(svc.base, SITE, 'POST', `${W}/claim`, { queue: 'faces', worker_id: 'x' })).status).toBe(403);
    const upgrade = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${svc.base.replace('http', 'ws')}/ws?token=${WORKER}`);
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.once('open', () => (ws.close(), resolve(101)));
      ws.once('error', () => undefined);
    });
    expect(upgrade).toBe(401);
    const wrong = await call(svc.base, 'not-a-token-at-all-000', 'POST', `${W}/claim`, { queue: 'faces', worker_id: 'x' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error!.code).toBe('UNAUTHORIZED');
  });

  it('surfaces a cancel to the handler, and a worker stopped by SIGTERM gives its job back at once', async () => {
    const w = pythonWorker(svc.base, WORKER, 'canceller', { GRACE_S: '0.2' });
    workers.push(w);
    const runId = await startRun({ items_per_stage: 1, delay_ms: 60_000 });
    const started = await w.until((l) => l.event === 'start' && l.key === `${runId}:1:1001`);
    expect((await admin('POST', `${API}/runs/${runId}/cancel`, { reason: 'test' })).status).toBe(200);
    await w.until((l) => l.event === 'cancelled' && l.job_id === started.job_id, 10_000);
    expect(await runStatus(runId)).toBe('cancelled');

    const run2 = await startRun({ items_per_stage: 1, delay_ms: 60_000 });
    const held = await w.until((l) => l.event === 'start' && l.key === `${run2}:1:1001`);
    w.child.kill('SIGTERM');
    await w.exited;
    // Released, not left to its lease: another worker gets it with the same attempt.
    const released = await claimOne(LEASE_MS / 3);
    expect(released).toMatchObject({ idempotency_key: held.key, attempt: 1 });
    await admin('POST', `${API}/runs/${run2}/cancel`, {});
  });
});
