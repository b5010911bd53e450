// Three instances on one Postgres, Python workers claiming through different instances, and
// the run's owner SIGKILLed mid-run: another instance takes the run over, its restored item
// attempts find their jobs, and every item is recorded exactly once.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../../service/store/postgres.js';
import { tempDir } from '../../helpers/engine.js';
import { usePostgres } from '../../helpers/postgres.js';
import { startService, type ServiceProcess } from '../../helpers/service-process.js';
import { call, kill, pythonWorker, type WorkerProcess } from '../../helpers/workers.js';
import { until } from '../../helpers/until.js';

const ADMIN = 'shared-admin-token-0123456789';
const WORKER = 'shared-worker-token-01234567';
const API = '/api/v1/automation';
const pg = usePostgres();

describe('workers on several instances sharing one Postgres', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('takes a killed owner’s run over and records every item exactly once', async () => {
    const db = await pg.createDatabase();
    cleanup.push(() => db.drop());
    const dir = tempDir('rs-pgw-');
    cleanup.push(() => dir.remove());
    const tokens = join(dir.path, 'tokens.json');
    writeFileSync(tokens, JSON.stringify([{ token: WORKER, name: 'faces', role: 'worker' }]));
    const env = (name: string) => ({
      DATABASE_URL: db.url,
      RUNSTATE_ADMIN_TOKEN: ADMIN,
      RUNSTATE_TOKENS_FILE: tokens,
      RUNSTATE_LEASE_MS: '1500',
      RUNSTATE_JOB_LEASE_MS: '1500',
      RUNSTATE_INSTANCE_ID: name,
    });
    const instances: ServiceProcess[] = await Promise.all(['i1', 'i2', 'i3'].map((n) => startService(join(dir.path, n), env(n))));
    cleanup.push(async () => {
      for (const i of instances) i.child.kill('SIGKILL');
      await Promise.all(instances.map((i) => i.exited));
    });
    const [i1, i2, i3] = instances as [ServiceProcess, ServiceProcess, ServiceProcess];
    const store = await PostgresStore.connect(db.url, { poolSize: 2 });
    cleanup.push(() => store.close());

    const started = await call(i1.base, ADMIN, 'POST', `${API}/runs`, {
      site_id: '5',
      pipeline: 'face_processor_workers',
      options: { items_per_stage: 6, delay_ms: 80, concurrency: 3 },
    });
    const runId = (started.body.data as { run_id: string }).run_id;
    expect((await store.getRun(runId))!.owner).toBe('i1');

    // Workers claim through the two instances that will survive, and one through the owner.
    const workers: WorkerProcess[] = [
      pythonWorker(i2.base, WORKER, 'via-i2'),
      pythonWorker(i3.base, WORKER, 'via-i3'),
      pythonWorker(i1.base, WORKER, 'via-i1'),
    ];
    cleanup.push(() => Promise.all(workers.map((w) => kill(w))));

    // Every instance lists the workers that claimed through any of them.
    const listed = await until('the workers of every instance listed on i2', async () => {
      const res = await call(i2.base, ADMIN, 'GET', '/api/v1/workers/');
      const ids = (res.body.workers as { worker_id: string; queues: string[] }[]).map((w) => w.worker_id).sort();
      return ids.length === 3 ? (res.body.workers as { worker_id: string; queues: string[] }[]) : undefined;
    });
    expect(listed.map((w) => w.worker_id).sort()).toEqual(['via-i1', 'via-i2', 'via-i3']);
    expect(listed.every((w) => w.queues.includes('faces'))).toBe(true);
    await until('stage 2 under way', async () => ((await store.getRun(runId))!.snapshot as { context?: { current?: number } }).context?.current === 2);
    i1.child.kill('SIGKILL');
    await i1.exited;
    const taker = await until('the run taken over', async () => {
      const owner = (await store.getRun(runId))!.owner;
      return owner !== 'i1' && owner !== null ? owner : undefined;
    });
    expect(['i2', 'i3']).toContain(taker);
    await until('the run completed', async () => (await store.getRun(runId))!.status === 'completed', 90_000);

    const ledger = await store.ledger(runId);
    const keys = ledger.map((l) => `${l.stage}:${String(l.itemId)}`);
    expect(keys).toHaveLength(30);
    expect(new Set(keys).size).toBe(30);
    expect(ledger.every((l) => l.status === 'done')).toBe(true);
    const events = await store.readEvents(runId, 0);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    const processed = events.filter((e) => e.event === 'stage_item_processed');
    expect(processed).toHaveLength(30);
    expect(events.filter((e) => e.event === 'run_started')).toHaveLength(1);
    // The new owner's restored attempts found their jobs: one job per item, no second attempt.
    const jobs = await store.connection.pool.query<{ n: number; attempts: number }>(
      `SELECT COUNT(*)::int AS n, MAX(attempt) AS attempts FROM worker_jobs WHERE run_id = $1 AND kind = 'item'`,
      [runId],
    );
    expect(jobs.rows[0]).toEqual({ n: 30, attempts: 1 });
    // Both surviving instances handed out jobs.
    for (const w of workers.slice(0, 2)) expect(w.lines.filter((l) => l.event === 'start').length).toBeGreaterThan(0);
  });
});
