// The worker jobs contract (service/store/jobs.ts), on SQLite and on Postgres.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FORGET_WORKERS_MS, type JobStore, type NewJob } from '../../../service/store/jobs.js';
import { PostgresJobStore } from '../../../service/store/jobs-postgres.js';
import { SqliteJobStore } from '../../../service/store/jobs-sqlite.js';
import { PostgresStore } from '../../../service/store/postgres.js';
import { SqliteStore } from '../../../service/store/sqlite.js';
import { usePostgres } from '../../helpers/postgres.js';

const pg = usePostgres();

type Open = () => Promise<{ jobs: JobStore; cleanup(): Promise<void> }>;

const openSqlite: Open = async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'runstate-jobs-'));
  const store = new SqliteStore({ filename: path.join(dir, 'runstate.db') });
  return {
    jobs: new SqliteJobStore(store.connection),
    async cleanup() {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
};

const openPostgres: Open = async () => {
  const db = await pg.createDatabase();
  const store = await PostgresStore.connect(db.url, { poolSize: 4 });
  return {
    jobs: await PostgresJobStore.open(store.connection.pool, store.connection.url),
    async cleanup() {
      await store.close();
      await db.drop();
    },
  };
};

function job(i: number, over: Partial<NewJob> = {}): NewJob {
  return {
    runId: 'run_20260101_000000_manual',
    stage: 1,
    stageKey: 'crop',
    kind: 'item',
    itemId: String(i),
    item: { id: i, title: `item ${i}` },
    attempt: 1,
    queue: 'faces',
    siteId: '5',
    pipeline: 'p',
    options: { a: 1 },
    idempotencyKey: `run_20260101_000000_manual:1:${i}`,
    leaseMs: 60_000,
    ...over,
  };
}

async function eventually<T>(probe: () => Promise<T | undefined>, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const [name, open] of [
  ['sqlite', openSqlite],
  ['postgres', openPostgres],
] as const) {
  describe(`job store (${name})`, () => {
    let cleanup: (() => Promise<void>) | undefined;
    afterEach(async () => {
      await cleanup?.();
      cleanup = undefined;
    });
    const fresh = async () => {
      const o = await open();
      cleanup = o.cleanup;
      return o.jobs;
    };

    it('keeps one job per (run, stage, kind, item, attempt): a restarted owner finds its job', async () => {
      const jobs = await fresh();
      const a = await jobs.ensureJob(job(1));
      const b = await jobs.ensureJob(job(1));
      expect(b.id).toBe(a.id);
      expect(b).toMatchObject({ state: 'queued', claims: 0, item: { id: 1, title: 'item 1' }, options: { a: 1 }, itemId: '1' });
      const next = await jobs.ensureJob(job(1, { attempt: 2 }));
      expect(next.id).not.toBe(a.id);
      const load = await jobs.ensureJob(job(0, { kind: 'load', itemId: null, item: null, idempotencyKey: 'k:load' }));
      expect(load).toMatchObject({ kind: 'load', itemId: null, item: null });
      expect((await jobs.latestLoadJob(load.runId, 1))!.id).toBe(load.id);
    });

    it('hands jobs out oldest first, each once, up to max', async () => {
      const jobs = await fresh();
      for (let i = 1; i <= 5; i++) await jobs.ensureJob(job(i));
      const [x, y] = await Promise.all([jobs.claim('faces', 'w1', 3), jobs.claim('faces', 'w2', 3)]);
      const ids = [...x, ...y].map((c) => c.job.itemId);
      expect(ids.sort()).toEqual(['1', '2', '3', '4', '5']);
      expect(x.map((c) => c.job.itemId)).toEqual([...x.map((c) => c.job.itemId)].sort());
      expect(await jobs.claim('faces', 'w3', 3)).toEqual([]);
      expect(await jobs.claim('other', 'w3', 3)).toEqual([]);
      expect([...x, ...y].every((c) => c.job.claims === 1 && !c.leaseWasLost && c.job.state === 'claimed')).toBe(true);
    });

    it('gives each claim the job as stored, whether new, released or held and put back', async () => {
      const jobs = await fresh();
      await jobs.ensureJob(job(1));
      await jobs.ensureJob(job(2), { held: true });
      await jobs.ensureJob(job(3, { kind: 'load', itemId: null, item: null, idempotencyKey: 'k:load' }));
      const asStored = async (claimed: { job: { id: number } }[]) => {
        for (const c of claimed) expect(c.job).toEqual(await jobs.getJob(c.job.id));
      };
      const first = await jobs.claim('faces', 'w1', 5);
      expect(first.map((c) => c.job.itemId)).toEqual(['1', null]);
      await asStored(first);
      expect(first[0]!.job).toMatchObject({ state: 'claimed', claims: 1, workerId: 'w1', item: { id: 1, title: 'item 1' }, options: { a: 1 }, message: null });
      const held = await jobs.ensureJob(job(2)); // still held: put back
      expect(await jobs.requeue(held.id)).toBe(true);
      expect(await jobs.heartbeat(first[0]!.job.id, 1, 'busy')).toBe('ok');
      expect(await jobs.release(first[0]!.job.id, 1)).toBe('ok');
      const again = await jobs.claim('faces', 'w2', 5);
      expect(again.map((c) => [c.job.id, c.job.claims])).toEqual([[first[0]!.job.id, 2], [held.id, 1]]);
      await asStored(again);
      expect(again[0]!.job).toMatchObject({ workerId: 'w2', message: 'busy' });
    });

    it('offers a job again once its lease runs out, and answers only its latest claim, once', async () => {
      const jobs = await fresh();
      await jobs.ensureJob(job(1, { leaseMs: 150 }));
      const [first] = await jobs.claim('faces', 'w1', 1);
      expect(await jobs.heartbeat(first!.job.id, 1, 'busy')).toBe('ok');
      const [again] = await eventually(async () => {
        const c = await jobs.claim('faces', 'w2', 1);
        return c.length ? c : undefined;
      });
      expect(again).toMatchObject({ leaseWasLost: true, job: { id: first!.job.id, claims: 2, attempt: 1, workerId: 'w2', message: 'busy' } });
      expect(await jobs.heartbeat(first!.job.id, 1, null)).toBe('lost');
      expect(await jobs.finish(first!.job.id, 1, { state: 'done', result: { cost: 1 } })).toBe('lost');
      expect(await jobs.finish(first!.job.id, 2, { state: 'done', result: { cost: 2 } })).toBe('ok');
      expect(await jobs.finish(first!.job.id, 2, { state: 'done', result: { cost: 3 } })).toBe('duplicate');
      expect(await jobs.heartbeat(first!.job.id, 2, null)).toBe('finished');
      const [answered] = await jobs.finished([first!.job.id]);
      expect(answered).toMatchObject({ state: 'done', result: { cost: 2 } });
      expect(await jobs.finish(999_999, 1, { state: 'done' })).toBe('not_found');
    });

    it('stores answers that arrive together in one call, each with the verdict it would get alone', async () => {
      const jobs = await fresh();
      const made = await Promise.all([1, 2, 3].map((i) => jobs.ensureJob(job(i))));
      expect(new Set(made.map((j) => j.id)).size).toBe(3);
      const claimed = await jobs.claim('faces', 'w1', 3);
      const [a, b, c] = claimed.map((x) => x.job);
      expect(
        await jobs.finishAll([
          { id: a!.id, claims: 1, answer: { state: 'done', result: { cost: 1 } } },
          { id: b!.id, claims: 1, answer: { state: 'failed', error: 'no', retryable: false } },
          { id: a!.id, claims: 1, answer: { state: 'done', result: { cost: 2 } } },
          { id: c!.id, claims: 2, answer: { state: 'done' } },
          { id: 999_999, claims: 1, answer: { state: 'done' } },
        ]),
      ).toEqual(['ok', 'ok', 'duplicate', 'lost', 'not_found']);
      expect(await jobs.finishAll([])).toEqual([]);
      // The jobs of one answers request, read at once: the ones there, as getJob has them.
      const read = await jobs.getJobs([c!.id, a!.id, 999_999]);
      expect(read.map((j) => j.id).sort()).toEqual([a!.id, c!.id].sort());
      expect(read.find((j) => j.id === a!.id)).toEqual(await jobs.getJob(a!.id));
      expect(await jobs.getJobs([])).toEqual([]);
      const answered = await jobs.finished([a!.id, b!.id, c!.id]);
      expect(answered.map((j) => [j.id, j.state, j.result ?? j.error]).sort()).toEqual(
        [
          [a!.id, 'done', { cost: 1 }],
          [b!.id, 'failed', 'no'],
        ].sort(),
      );
    });

    it('lists the workers seen since a time, with their queues and the jobs they hold, and counts each queue', async () => {
      const jobs = await fresh();
      const now = Date.now();
      await jobs.sawWorker('w1', 'faces', now - 120_000);
      await jobs.sawWorker('w1', 'other', now - 1000);
      await jobs.sawWorker('w2', 'faces', now - 500);
      await jobs.sawWorker('w2', 'faces', now - 5000); // an older note never moves it back
      await jobs.sawWorker('gone', 'faces', now - 2 * FORGET_WORKERS_MS);
      await jobs.sawWorker('w3', 'faces', now - 90_000);
      for (let i = 1; i <= 3; i++) await jobs.ensureJob(job(i));
      await jobs.claim('faces', 'w2', 2);
      expect(await jobs.workersSeen(now - 60_000)).toEqual([
        { workerId: 'w2', queues: ['faces'], jobsInFlight: 2, lastSeen: now - 500 },
        { workerId: 'w1', queues: ['other'], jobsInFlight: 0, lastSeen: now - 1000 },
      ]);
      expect((await jobs.workersSeen(now - 100_000)).map((w) => [w.workerId, w.queues])).toEqual([
        ['w2', ['faces']],
        ['w1', ['other']],
        ['w3', ['faces']],
      ]);
      expect((await jobs.workersSeen(0)).map((w) => w.workerId)).not.toContain('gone');
      expect(await jobs.queueCounts()).toEqual({ faces: { waiting: 1, inFlight: 2 } });
    });

    it('holds a pausing run’s queued item jobs, requeues them, cancels, releases and counts waiting ones', async () => {
      const jobs = await fresh();
      const a = await jobs.ensureJob(job(1));
      const b = await jobs.ensureJob(job(2));
      const load = await jobs.ensureJob(job(0, { kind: 'load', itemId: null, item: null, stage: 2, idempotencyKey: 'k:load' }));
      expect(await jobs.waitingByQueue()).toEqual({ faces: 3 });
      expect((await jobs.holdRun(a.runId)).sort()).toEqual([a.id, b.id].sort());
      const claimed = await jobs.claim('faces', 'w', 5);
      expect(claimed.map((c) => c.job.id)).toEqual([load.id]);
      expect(await jobs.requeue(a.id)).toBe(true);
      expect(await jobs.requeue(a.id)).toBe(false);
      const [c] = await jobs.claim('faces', 'w', 5);
      expect(c!.job.id).toBe(a.id);
      expect(await jobs.release(a.id, 1)).toBe('ok');
      const [back] = await jobs.claim('faces', 'w2', 1);
      expect(back!.job).toMatchObject({ id: a.id, claims: 2, attempt: 1 });
      expect(await jobs.cancel(a.id)).toBe(true);
      expect(await jobs.heartbeat(a.id, 2, null)).toBe('cancel');
      expect(await jobs.finish(a.id, 2, { state: 'done' })).toBe('cancelled');
      expect(await jobs.finish(load.id, 1, { state: 'failed', error: 'no list', retryable: false })).toBe('ok');
      expect(await jobs.cancel(load.id)).toBe(false);
      expect((await jobs.finished([a.id, b.id, load.id])).map((j) => [j.id, j.state, j.retryable]).sort()).toEqual(
        [
          [a.id, 'cancelled', null],
          [load.id, 'failed', false],
        ].sort(),
      );
      expect(await jobs.waitingByQueue()).toEqual({});
      const c3 = await jobs.ensureJob(job(3));
      await jobs.holdRun(c3.runId);
      expect(await jobs.cancelRun(c3.runId)).toBe(2);
      expect((await jobs.finished([b.id, c3.id])).map((j) => j.state)).toEqual(['cancelled', 'cancelled']);
    });
  });
}
