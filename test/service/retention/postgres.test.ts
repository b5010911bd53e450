import { Client } from 'pg';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Engine } from '../../../service/engine/engine.js';
import { faceProcessorPipeline } from '../../../service/pipelines/index.js';
import { retentionStoreFor } from '../../../service/retention/index.js';
import { RetentionSweeper } from '../../../service/retention/sweeper.js';
import { PostgresJobStore } from '../../../service/store/jobs-postgres.js';
import { PostgresStore } from '../../../service/store/postgres.js';
import { tempDir } from '../../helpers/engine.js';
import { usePostgres } from '../../helpers/postgres.js';
import { jobOf } from '../../helpers/workers.js';

const pg = usePostgres();
const silent = pino({ level: 'silent' });
const SITE = { accountId: 'acme', siteId: 'site-5', pipeline: 'face_processor' };

describe('retention on Postgres', () => {
  const cleanup: (() => Promise<unknown> | unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('deletes finished runs in batches, skips a row another transaction holds, and never touches a running run', { timeout: 60_000 }, async () => {
    const db = await pg.createDatabase();
    cleanup.push(() => db.drop());
    const dir = tempDir();
    cleanup.push(() => dir.remove());
    const store = await PostgresStore.connect(db.url, { poolSize: 4 });
    cleanup.push(() => store.close());
    const engine = new Engine({ store, pipelines: [faceProcessorPipeline] });
    cleanup.push(() => engine.stop());
    const finished = [];
    for (let i = 0; i < 5; i++) {
      const r = await engine.startRun({ ...SITE, options: { delay_ms: 0, items_per_stage: 1 } });
      await engine.whenRetired(r.run_id);
      finished.push(r.run_id);
    }
    const running = await engine.startRun({ ...SITE, options: { delay_ms: 600_000, items_per_stage: 1 } });
    // Worker jobs of a run go with it.
    const jobs = await PostgresJobStore.open(store.connection.pool, store.connection.url);
    for (const id of [finished[1]!, running.run_id]) await jobs.ensureJob(jobOf(id));
    const sweeper = new RetentionSweeper({ store: retentionStoreFor(store, silent), dataDir: dir.path, retentionMs: 1000, batch: 2, logger: silent, now: () => Date.now() + 5000 });

    // Another transaction holds one finished run's row (a close being written, say).
    const holder = new Client({ connectionString: db.url });
    await holder.connect();
    cleanup.push(() => holder.end());
    await holder.query('BEGIN');
    await holder.query('SELECT 1 FROM runs WHERE run_id = $1 FOR UPDATE', [finished[0]]);
    const started = performance.now();
    expect(await sweeper.sweep()).toBe(4);
    expect(performance.now() - started).toBeLessThan(5000);
    expect(await store.getRun(finished[0]!)).toBeDefined();
    await holder.query('ROLLBACK');
    expect(await sweeper.sweep()).toBe(1);

    for (const id of finished) {
      expect(await store.getRun(id)).toBeUndefined();
      expect(await store.readEvents(id, 0)).toEqual([]);
      expect(await store.ledger(id)).toEqual([]);
    }
    const jobRuns = await store.connection.pool.query<{ run_id: string }>('SELECT run_id FROM worker_jobs');
    expect(jobRuns.rows.map((r) => r.run_id)).toEqual([running.run_id]);
    expect((await store.getRun(running.run_id))?.status).toBe('running');
    expect((await store.readEvents(running.run_id, 0)).length).toBeGreaterThan(0);
  });
});
