import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseDuration } from '../../../service/config.js';
import { faceProcessorPipeline } from '../../../service/pipelines/index.js';
import { retentionStoreFor } from '../../../service/retention/index.js';
import { RetentionSweeper } from '../../../service/retention/sweeper.js';
import { SqliteJobStore } from '../../../service/store/jobs-sqlite.js';
import { TraceWriter } from '../../../service/trace/trace-writer.js';
import { webhookStoreFor } from '../../../service/webhooks/index.js';
import { ADMIN, appOn, auth } from '../../helpers/app.js';
import { tempDir } from '../../helpers/engine.js';
import { jobOf } from '../../helpers/workers.js';

const P = '/api/v1/automation';
const silent = pino({ level: 'silent' });
const SITE = { accountId: 'acme', siteId: 'site-5', pipeline: 'face_processor' };

describe('retention', () => {
  let dir: ReturnType<typeof tempDir>;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => dir.remove());

  async function harness() {
    const h = await appOn(dir.path, [faceProcessorPipeline]);
    let offsetMs = 0;
    const registry = new Registry();
    const sweeper = new RetentionSweeper({
      store: retentionStoreFor(h.store, silent),
      dataDir: dir.path,
      retentionMs: parseDuration('RUNSTATE_RETENTION', '2s'),
      logger: silent,
      registry,
      now: () => Date.now() + offsetMs,
    });
    return { ...h, sweeper, registry, later: (ms: number) => (offsetMs += ms) };
  }

  it('deletes finished runs with their rows and files, and never a running or paused one', async () => {
    const { engine, store, app, traces, sweeper, registry, later } = await harness();
    const webhooks = webhookStoreFor(store);
    await webhooks.create({ webhookId: 'wh_000000000000000000000009', accountId: null, siteId: null, url: 'http://127.0.0.1:9/', events: ['run_completed'], secret: 'x'.repeat(16), createdBy: 't', createdAt: new Date().toISOString() });
    const done = await engine.startRun({ ...SITE, options: { delay_ms: 0, items_per_stage: 2 } });
    await engine.whenRetired(done.run_id);
    const closed = await engine.startRun({ ...SITE, options: { delay_ms: 0, items_per_stage: 1 } });
    await engine.whenRetired(closed.run_id);
    await engine.command(closed.run_id, 'close', { by: 'test' });
    const running = await engine.startRun({ ...SITE, options: { delay_ms: 600_000, items_per_stage: 1 } });
    const paused = await engine.startRun({ ...SITE, options: { delay_ms: 600_000, items_per_stage: 1 } });
    await engine.command(paused.run_id, 'pause', { by: 'test' });
    await traces.flush();
    // Worker jobs of a run go with it (a job per run here, as a queue stage would make).
    const db = (store as unknown as { connection: import('better-sqlite3').Database }).connection;
    const jobs = new SqliteJobStore(db);
    for (const r of [done, closed, running]) await jobs.ensureJob(jobOf(r.run_id));
    const dirOf = (runId: string) => TraceWriter.runDir(dir.path, { accountId: 'acme', siteId: 'site-5', runId });
    for (const r of [done, closed, running, paused]) expect(existsSync(dirOf(r.run_id))).toBe(true);

    // Nothing is old enough yet.
    expect(await sweeper.sweep()).toBe(0);
    later(3000);
    expect(await sweeper.sweep()).toBe(2);

    for (const r of [done, closed]) {
      expect(await store.getRun(r.run_id)).toBeUndefined();
      expect(await store.readEvents(r.run_id, 0)).toEqual([]);
      expect(await store.ledger(r.run_id)).toEqual([]);
      expect(await store.getStageItems(r.run_id, 1)).toBeUndefined();
      expect(existsSync(dirOf(r.run_id))).toBe(false);
      const trace = await app.inject({ url: `${P}/runs/${r.run_id}/trace?after_seq=0`, headers: auth(ADMIN) });
      expect(trace.statusCode).toBe(404);
      expect(trace.json().error.code).toBe('RUN_NOT_FOUND');
    }
    for (const table of ['outbox', 'webhook_deliveries', 'commands', 'worker_jobs']) {
      const left = db.prepare(`SELECT COUNT(*) AS n FROM ${table} WHERE run_id IN (?, ?)`).get(done.run_id, closed.run_id) as { n: number };
      expect(left.n, table).toBe(0);
    }
    // The diagnostic line of a deleted run stays.
    expect(readFileSync(join(dir.path, 'logs', 'automation_diagnostic.log'), 'utf8')).toContain(done.run_id);
    for (const r of [running, paused]) {
      expect(['running', 'paused']).toContain((await store.getRun(r.run_id))?.status);
      expect((await store.readEvents(r.run_id, 0)).length).toBeGreaterThan(0);
      expect(existsSync(dirOf(r.run_id))).toBe(true);
      if (r === running) expect(db.prepare('SELECT COUNT(*) AS n FROM worker_jobs WHERE run_id = ?').get(r.run_id)).toEqual({ n: 1 });
      expect((await app.inject({ url: `${P}/runs/${r.run_id}/trace?after_seq=0`, headers: auth(ADMIN) })).statusCode).toBe(200);
    }
    expect(await registry.getSingleMetricAsString('runstate_retention_deleted_runs_total')).toMatch(/ 2$/m);
    await engine.stop();
    await app.close();
    await store.close();
  });

  it('keeps the database file from growing over repeated runs', { timeout: 60_000 }, async () => {
    const { engine, store, app, sweeper, later, traces } = await harness();
    const file = join(dir.path, 'runstate.db');
    const sizes: number[] = [];
    for (let round = 0; round < 6; round++) {
      const runs = await Promise.all(Array.from({ length: 4 }, () => engine.startRun({ ...SITE, options: { delay_ms: 0, items_per_stage: 20 } })));
      await Promise.all(runs.map((r) => engine.whenRetired(r.run_id)));
      await traces.flush();
      later(3000);
      expect(await sweeper.sweep()).toBe(4);
      sizes.push(statSync(file).size + (existsSync(`${file}-wal`) ? statSync(`${file}-wal`).size : 0));
    }
    // After the first rounds the file holds its size: freed pages are given back or reused.
    expect(Math.max(...sizes.slice(2))).toBeLessThanOrEqual(sizes[1]! * 1.1);
    expect((store as unknown as { connection: import('better-sqlite3').Database }).connection.pragma('auto_vacuum', { simple: true })).toBe(2);
    await engine.stop();
    await app.close();
    await store.close();
  });

  it('reads durations as documented', () => {
    expect(parseDuration('X', '30d')).toBe(30 * 86_400_000);
    expect(parseDuration('X', '12h')).toBe(12 * 3_600_000);
    expect(parseDuration('X', '90m')).toBe(90 * 60_000);
    expect(parseDuration('X', '45s')).toBe(45_000);
    expect(parseDuration('X', '0')).toBe(0);
    for (const bad of ['30', '1w', '-1d', 'soon', '']) expect(() => parseDuration('RUNSTATE_RETENTION', bad), bad).toThrow(/RUNSTATE_RETENTION/);
  });
});
