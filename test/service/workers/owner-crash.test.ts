// The service SIGKILLed while Python workers hold its jobs, then started again on the same data
// and port: the run goes on where its last durable write left it, restored item attempts find
// their jobs (no job is made twice), and every item is recorded exactly once.
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../../service/store/sqlite.js';
import { tempDir } from '../../helpers/engine.js';
import { startService, type ServiceProcess } from '../../helpers/service-process.js';
import { call, kill, pythonWorker, type WorkerProcess } from '../../helpers/workers.js';
import { until } from '../../helpers/until.js';

const ADMIN = 'admin-token-for-owner-crash';
const API = '/api/v1/automation';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

describe('the owner crashes under its workers', () => {
  const dir = tempDir('rs-owner-crash-');
  const workers: WorkerProcess[] = [];
  let svc: ServiceProcess | undefined;
  afterAll(async () => {
    await Promise.all(workers.map((w) => kill(w)));
    await svc?.stop();
    dir.remove();
  });

  it('resumes the run after a restart with every item recorded once and one job per item', async () => {
    const port = await freePort();
    const env = { RUNSTATE_ADMIN_TOKEN: ADMIN, RUNSTATE_JOB_LEASE_MS: '1500', PORT: String(port) };
    const data = join(dir.path, 'data');
    svc = await startService(data, env);
    const runId = ((await call(svc.base, ADMIN, 'POST', `${API}/runs`, { site_id: '5', pipeline: 'face_processor_workers', options: { items_per_stage: 6, delay_ms: 100, concurrency: 3 } })).body.data as { run_id: string }).run_id;
    for (const id of ['c1', 'c2']) workers.push(pythonWorker(svc.base, ADMIN, id, { CONCURRENCY: '2' }));
    await until('stage 2 under way', async () => ((await call(svc!.base, ADMIN, 'GET', `${API}/runs/${runId}`)).body.data as { current_stage: number }).current_stage >= 2);
    svc.child.kill('SIGKILL');
    await svc.exited;
    svc = await startService(data, env);
    await until('the run completed', async () => ((await call(svc!.base, ADMIN, 'GET', `${API}/runs/${runId}`)).body.data as { status: string }).status === 'completed', 60_000);
    await svc.stop();
    svc = undefined;

    const store = new SqliteStore({ filename: join(data, 'runstate.db') });
    try {
      const ledger = await store.ledger(runId);
      const keys = ledger.map((l) => `${l.stage}:${String(l.itemId)}`);
      expect(keys).toHaveLength(30);
      expect(new Set(keys).size).toBe(30);
      const events = await store.readEvents(runId, 0);
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      expect(events.filter((e) => e.event === 'stage_item_processed')).toHaveLength(30);
      const jobs = store.connection
        .prepare<[string], { n: number; attempts: number }>(`SELECT COUNT(*) AS n, MAX(attempt) AS attempts FROM worker_jobs WHERE run_id = ? AND kind = 'item'`)
        .get(runId);
      expect(jobs).toEqual({ n: 30, attempts: 1 });
    } finally {
      await store.close();
    }
  });
});
