// The database goes away under a working service (Postgres stopped, or a connection that hangs
// rather than closes) and comes back: the process stays up and says so, calls answer 503 at
// once, runs hold their place and finish by themselves, nothing lost and nothing twice.
import { afterEach, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../../service/store/postgres.js';
import { tempDir } from '../../helpers/engine.js';
import { useControlledPostgres } from '../../helpers/pg-control.js';
import { startService, type ServiceProcess } from '../../helpers/service-process.js';
import { startTcpProxy } from '../../helpers/tcp-proxy.js';
import { wsClient, type WsClient } from '../../helpers/ws-client.js';
import { API, call, expectCleanLogs, expectWhole, health } from './helpers.js';
import { until } from '../../helpers/until.js';

const TOKEN = 'faults-admin-token-0123456789';
const PASSWORD = 'pw-S3cret-never-logged';
const OUTAGE_MS = 10_000;
const ITEMS = [6, 6, 6, 6, 6];
const TOTAL = ITEMS.reduce((a, b) => a + b, 0);

const pg = useControlledPostgres();

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function service(databaseUrl: string, env: Record<string, string> = {}): Promise<ServiceProcess> {
  const dir = tempDir('rs-faults-');
  cleanup.push(() => dir.remove());
  const svc = await startService(dir.path, { DATABASE_URL: databaseUrl, RUNSTATE_ADMIN_TOKEN: TOKEN, RUNSTATE_LEASE_MS: '30000', ...env });
  cleanup.push(async () => {
    svc.child.kill('SIGKILL');
    await svc.exited;
  });
  return svc;
}

async function watch(svc: ServiceProcess, runId: string, afterSeq: number): Promise<WsClient> {
  const ws = await wsClient(`${svc.base.replace('http', 'ws')}/ws?token=${TOKEN}`);
  cleanup.push(() => ws.close());
  ws.send({ type: 'subscribe', topic: `run:${runId}`, after_seq: afterSeq });
  return ws;
}

function seqsOf(ws: WsClient, runId: string): number[] {
  return ws.events(`run:${runId}`).map((m) => m.seq!);
}

/**
 * One run through an outage: `cut` takes the database away, `restore` brings it back.
 * Returns what was measured.
 */
async function throughOutage(databaseUrl: string, cut: () => Promise<void> | void, restore: () => Promise<void> | void) {
  const svc = await service(databaseUrl);
  let exitedEarly = false;
  void svc.exited.then(() => (exitedEarly = true));
  const started = await call(svc, `${API}/runs`, {
    body: { site_id: 'site-5', pipeline: 'face_processor', options: { delay_ms: 120, items_per_stage: ITEMS, concurrency: 2, seed: 7 } },
  });
  expect(started.status).toBe(201);
  const runId = (started.body.data as { run_id: string }).run_id;

  // One watcher stays connected throughout; another leaves during the outage and comes back with after_seq.
  const steady = await watch(svc, runId, 0);
  const leaver = await watch(svc, runId, 0);
  await steady.until((m) => m.filter((x) => x.event?.event === 'stage_item_processed').length >= 4);

  const cutAt = performance.now();
  await cut();
  const degraded = await until('/healthz 503', async () => {
    const h = await health(svc);
    return h.status === 503 ? h : undefined;
  }, 5000);
  const toDegraded = performance.now() - cutAt;
  expect(degraded.body).toMatchObject({ status: 'degraded' });
  expect(String(degraded.body.reason)).toMatch(/database/);

  // A command while the database is away: 503 at once, not a hang.
  const pause = await call(svc, `${API}/runs/${runId}/pause`, { body: { reason: 'during the outage' }, timeoutMs: 5000 });
  expect(pause.status).toBe(503);
  expect((pause.body.error as { code: string }).code).toBe('DATABASE_UNAVAILABLE');
  const metrics = await fetch(`${svc.base}/metrics`, { signal: AbortSignal.timeout(5000) });
  expect(metrics.status).toBe(200);
  expect(await metrics.text()).toContain('runstate_database_up 0');

  const leftAt = Math.max(0, ...seqsOf(leaver, runId));
  leaver.close();
  // The rest of the outage, bounded by time and not by hope: the process must still be there.
  await new Promise((r) => setTimeout(r, Math.max(0, OUTAGE_MS - (performance.now() - cutAt))));
  expect(exitedEarly).toBe(false);

  await restore();
  const restoredAt = performance.now();
  await until('/healthz 200', async () => (await health(svc)).status === 200, 15_000);
  const toHealthy = performance.now() - restoredAt;

  // Completed in the log, not only in memory (the API shows a hosted run as it stands).
  const store = await PostgresStore.connect(databaseUrl.replace(/:\d+\//, `:${pg().port}/`), { poolSize: 1 });
  cleanup.push(() => store.close());
  await until('run completed', async () => (await store.getRun(runId))?.status === 'completed', 60_000);
  const last = await expectWhole(store, runId, TOTAL);

  // Every event once, in order, on the socket that stayed and on the one that came back.
  await steady.until((m) => m.some((x) => x.seq === last));
  expect(seqsOf(steady, runId)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
  const back = await watch(svc, runId, leftAt);
  await back.until((m) => m.some((x) => x.seq === last));
  expect([...Array.from({ length: leftAt }, (_, i) => i + 1), ...seqsOf(back, runId)]).toEqual(Array.from({ length: last }, (_, i) => i + 1));
  expect(exitedEarly).toBe(false);
  if (process.env.SHOW_LOGS) console.log(svc.output());
  expectCleanLogs(svc.output(), PASSWORD);
  expect(svc.output()).toMatch(/degraded: database unavailable/);
  return { toDegraded, pauseMs: pause.ms, toHealthy };
}

describe('the database goes away mid-run', () => {
  it('survives Postgres stopped for 10 s: 503 within 2 s, 200 within 5 s after, the run completes whole', async () => {
    const db = await pg().createDatabase();
    const m = await throughOutage(pg().url(db, PASSWORD), () => pg().stop(), () => pg().start());
    console.log(`postgres stopped: 503 after ${Math.round(m.toDegraded)} ms, command answered in ${Math.round(m.pauseMs)} ms, 200 ${Math.round(m.toHealthy)} ms after it was back`);
    expect(m.toDegraded).toBeLessThan(2000);
    expect(m.pauseMs).toBeLessThan(1000);
    expect(m.toHealthy).toBeLessThan(5000);
  }, 120_000);

  it('survives a connection that hangs rather than closes: nothing waits forever', async () => {
    const db = await pg().createDatabase();
    const proxy = await startTcpProxy(pg().port);
    cleanup.push(() => proxy.close());
    const url = pg().url(db, PASSWORD).replace(`:${pg().port}/`, `:${proxy.port}/`);
    const m = await throughOutage(url, () => proxy.hang(), () => proxy.resume());
    console.log(`connection hung: 503 after ${Math.round(m.toDegraded)} ms, command answered in ${Math.round(m.pauseMs)} ms, 200 ${Math.round(m.toHealthy)} ms after it was back`);
    expect(m.toDegraded).toBeLessThan(2000);
    expect(m.pauseMs).toBeLessThan(1000);
  }, 120_000);
});
