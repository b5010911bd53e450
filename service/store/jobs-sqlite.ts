// Worker jobs on SQLite (the JobStore of jobs.ts), in the run database's file, beside the runs.
// One instance is all there is, so no hints; leases are timed by this process's clock.
import type Database from 'better-sqlite3';
import { FORGET_WORKERS_MS, type ClaimedJob, type FinishAnswer, type HeartbeatAnswer, type JobAnswer, type JobAnswerOf, type JobRecord, type JobState, type JobStore, type NewJob, type QueueCounts, type SeenWorker } from './jobs.js';

// A migration list of its own (schema_migrations_jobs), so the jobs schema grows without
// renumbering the runs schema's migrations in sqlite.ts.
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE worker_jobs (
     id              INTEGER PRIMARY KEY,
     run_id          TEXT NOT NULL,
     stage           INTEGER NOT NULL,
     stage_key       TEXT NOT NULL,
     kind            TEXT NOT NULL,
     item_id         TEXT NOT NULL,
     item            TEXT,
     attempt         INTEGER NOT NULL,
     queue           TEXT NOT NULL,
     site_id         TEXT NOT NULL,
     pipeline        TEXT NOT NULL,
     options         TEXT NOT NULL,
     idempotency_key TEXT NOT NULL,
     lease_ms        INTEGER NOT NULL,
     state           TEXT NOT NULL,
     claims          INTEGER NOT NULL DEFAULT 0,
     worker_id       TEXT,
     claimed_at      INTEGER,
     lease_until     INTEGER,
     result          TEXT,
     error           TEXT,
     retryable       INTEGER,
     message         TEXT,
     created_at      INTEGER NOT NULL,
     finished_at     INTEGER,
     UNIQUE (run_id, stage, kind, item_id, attempt)
   );
   CREATE INDEX worker_jobs_claimable ON worker_jobs (queue, id) WHERE state IN ('queued', 'claimed');
   CREATE INDEX worker_jobs_by_run ON worker_jobs (run_id, state);`,
  // The unique key's index already finds a run's jobs (run_id first); one keyed on the state too
  // was rewritten on every claim and answer, for nothing a query needed.
  `DROP INDEX worker_jobs_by_run;`,
  // Who talked to the service, for every instance to list (GET /api/v1/workers).
  `CREATE TABLE workers_seen (
     worker_id TEXT NOT NULL,
     queue     TEXT NOT NULL,
     last_seen INTEGER NOT NULL,
     PRIMARY KEY (worker_id, queue)
   );`,
];

export interface JobRow {
  id: number;
  run_id: string;
  stage: number;
  stage_key: string;
  kind: string;
  item_id: string;
  item: string | null;
  attempt: number;
  queue: string;
  site_id: string;
  pipeline: string;
  options: string;
  idempotency_key: string;
  lease_ms: number;
  state: string;
  claims: number;
  worker_id: string | null;
  claimed_at: number | null;
  result: string | null;
  error: string | null;
  retryable: number | boolean | null;
  message: string | null;
  finished_at: number | null;
}

/** The record of a row, the same for both adapters (item_id '' is a load job's). */
export function toJob(row: JobRow): JobRecord {
  return {
    id: Number(row.id),
    runId: row.run_id,
    stage: row.stage,
    stageKey: row.stage_key,
    kind: row.kind === 'load' ? 'load' : 'item',
    itemId: row.kind === 'load' ? null : row.item_id,
    item: row.item === null ? null : (JSON.parse(row.item) as JobRecord['item']),
    attempt: row.attempt,
    queue: row.queue,
    siteId: row.site_id,
    pipeline: row.pipeline,
    options: JSON.parse(row.options) as unknown,
    idempotencyKey: row.idempotency_key,
    leaseMs: row.lease_ms,
    state: row.state as JobState,
    claims: row.claims,
    workerId: row.worker_id,
    claimedAt: row.claimed_at === null ? null : Number(row.claimed_at),
    result: row.result === null ? null : (JSON.parse(row.result) as unknown),
    error: row.error,
    retryable: row.retryable === null ? null : Boolean(row.retryable),
    message: row.message,
    finishedAt: row.finished_at === null ? null : Number(row.finished_at),
  };
}

/** The record of a row just inserted from `job`: the values as stored (item and options as read back from their JSON). */
function newRecord(job: NewJob, id: number, state: JobState, item: string | null, options: string): JobRecord {
  // Spelled out as toJob has it (one shape for every record), not spread from `job`.
  return {
    id,
    runId: job.runId,
    stage: job.stage,
    stageKey: job.stageKey,
    kind: job.kind,
    itemId: job.kind === 'load' ? null : (job.itemId ?? ''),
    item: item === null ? null : (JSON.parse(item) as JobRecord['item']),
    attempt: job.attempt,
    queue: job.queue,
    siteId: job.siteId,
    pipeline: job.pipeline,
    options: JSON.parse(options) as unknown,
    idempotencyKey: job.idempotencyKey,
    leaseMs: job.leaseMs,
    state,
    claims: 0,
    workerId: null,
    claimedAt: null,
    result: null,
    error: null,
    retryable: null,
    message: null,
    finishedAt: null,
  };
}

interface PendingInsert {
  job: NewJob;
  held: boolean;
  resolve: (job: JobRecord) => void;
  reject: (err: unknown) => void;
}

/** How many records of unclaimed jobs the SQLite store keeps for their claims (jobs beyond are read back). */
const FRESH = 20_000;

const JOB_KEY = 'run_id = ? AND stage = ? AND kind = ? AND item_id = ? AND attempt = ?';

/** Every statement the store runs, prepared once: a job's life is a handful of them, run thousands of times a second. */
function statements(db: Database.Database) {
  return {
    insert: db.prepare<unknown[], { id: number }>(
      `INSERT INTO worker_jobs (run_id, stage, stage_key, kind, item_id, item, attempt, queue, site_id, pipeline, options,
                                idempotency_key, lease_ms, state, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id`,
    ),
    byKey: db.prepare<unknown[], JobRow>(`SELECT * FROM worker_jobs WHERE ${JOB_KEY}`),
    byId: db.prepare<[number], JobRow>('SELECT * FROM worker_jobs WHERE id = ?'),
    byIds: db.prepare<[string], JobRow>('SELECT * FROM worker_jobs WHERE id IN (SELECT value FROM json_each(?))'),
    latestLoad: db.prepare<[string, number], JobRow>(`SELECT * FROM worker_jobs WHERE run_id = ? AND stage = ? AND kind = 'load' ORDER BY attempt DESC LIMIT 1`),
    requeue: db.prepare<[number]>(`UPDATE worker_jobs SET state = 'queued' WHERE id = ? AND state = 'held'`),
    holdRun: db.prepare<[string], { id: number }>(`UPDATE worker_jobs SET state = 'held' WHERE run_id = ? AND kind = 'item' AND state = 'queued' RETURNING id`),
    cancelRun: db.prepare<[number, string]>(`UPDATE worker_jobs SET state = 'cancelled', finished_at = ? WHERE run_id = ? AND state IN ('queued', 'held', 'claimed')`),
    cancel: db.prepare<[number, number]>(`UPDATE worker_jobs SET state = 'cancelled', finished_at = ? WHERE id = ? AND state IN ('queued', 'held', 'claimed')`),
    // `state IN (…)` spelled out: without it SQLite cannot tell that the partial index
    // worker_jobs_claimable covers the query, and scans the whole table on every claim.
    claimable: db.prepare<[string, number, number], { id: number; state: string }>(
      `SELECT id, state FROM worker_jobs
       WHERE queue = ? AND state IN ('queued', 'claimed') AND (state = 'queued' OR lease_until <= ?)
       ORDER BY id LIMIT ?`,
    ),
    // One statement for the whole claim: the ids picked go in as a JSON list. Only the id and the
    // claim's number come back: building a row's every column is most of a claim's cost, and the
    // store has the rest of a job it inserted (#fresh); others are read (byIds).
    take: db.prepare<[string, number, number, string], { id: number; claims: number }>(
      `UPDATE worker_jobs SET state = 'claimed', claims = claims + 1, worker_id = ?, claimed_at = ?, lease_until = ? + lease_ms
       WHERE id IN (SELECT value FROM json_each(?)) RETURNING id, claims`,
    ),
    lease: db.prepare<[number], { state: string; claims: number; lease_until: number | null }>('SELECT state, claims, lease_until FROM worker_jobs WHERE id = ?'),
    extend: db.prepare<[number, string | null, number]>('UPDATE worker_jobs SET lease_until = ? + lease_ms, message = COALESCE(?, message) WHERE id = ?'),
    // Stored only while claim `claims` holds a live lease (finishAnswer's 'ok'): one statement
    // for the answer that counts; the lease is read for the verdict only when nothing changed.
    answer: db.prepare<[string, string | null, string | null, number | null, number, number, number, number]>(
      `UPDATE worker_jobs SET state = ?, result = ?, error = ?, retryable = ?, finished_at = ?
       WHERE id = ? AND claims = ? AND state = 'claimed' AND lease_until > ?`,
    ),
    release: db.prepare<[number]>(`UPDATE worker_jobs SET state = 'queued', lease_until = NULL WHERE id = ?`),
    finished: db.prepare<[string], JobRow>(`SELECT * FROM worker_jobs WHERE id IN (SELECT value FROM json_each(?)) AND state IN ('done', 'failed', 'cancelled')`),
    queueCounts: db.prepare<[number, number], { queue: string; waiting: number; in_flight: number }>(
      `SELECT queue, SUM(state = 'queued' OR lease_until <= ?) AS waiting, SUM(state = 'claimed' AND lease_until > ?) AS in_flight
       FROM worker_jobs WHERE state IN ('queued', 'claimed') GROUP BY queue`,
    ),
    saw: db.prepare<[string, string, number]>(
      `INSERT INTO workers_seen (worker_id, queue, last_seen) VALUES (?, ?, ?)
       ON CONFLICT (worker_id, queue) DO UPDATE SET last_seen = MAX(last_seen, excluded.last_seen)`,
    ),
    forget: db.prepare<[number]>('DELETE FROM workers_seen WHERE last_seen < ?'),
    seen: db.prepare<[number], { worker_id: string; queue: string; last_seen: number }>(
      'SELECT worker_id, queue, last_seen FROM workers_seen WHERE last_seen >= ?',
    ),
    held: db.prepare<[number], { worker_id: string; n: number }>(
      `SELECT worker_id, COUNT(*) AS n FROM worker_jobs WHERE state IN ('queued', 'claimed') AND state = 'claimed' AND lease_until > ? GROUP BY worker_id`,
    ),
    waiting: db.prepare<[number], { queue: string; n: number }>(
      `SELECT queue, COUNT(*) AS n FROM worker_jobs WHERE state IN ('queued', 'claimed') AND (state = 'queued' OR lease_until <= ?) GROUP BY queue`,
    ),
  };
}

export class SqliteJobStore implements JobStore {
  readonly #db: Database.Database;
  readonly #sql: ReturnType<typeof statements>;
  readonly #claimTx: (picked: readonly { id: number; state: string }[], workerId: string, now: number) => ClaimedJob[];
  /**
   * The records of jobs this store inserted and nobody claimed yet (at most FRESH, the newest), for
   * the claim that takes them: until its first claim only a job's state changes (held, queued,
   * cancelled), and its claim writes that. One process is all there is on SQLite, so no other
   * writer changes them behind its back.
   */
  readonly #fresh = new Map<number, JobRecord>();
  readonly #heartbeatTx: (id: number, claims: number, message: string | null, now: number) => HeartbeatAnswer;
  readonly #finishTx: (answers: readonly JobAnswerOf[], now: number) => FinishAnswer[];
  readonly #releaseTx: (id: number, claims: number, now: number) => FinishAnswer;
  readonly #insertTx: (batch: readonly PendingInsert[]) => JobRecord[];
  #toInsert: PendingInsert[] = [];

  constructor(db: Database.Database) {
    this.#db = db;
    this.#db.exec('CREATE TABLE IF NOT EXISTS schema_migrations_jobs (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)');
    const applied = new Set(this.#db.prepare<[], { version: number }>('SELECT version FROM schema_migrations_jobs').all().map((r) => r.version));
    MIGRATIONS.forEach((sql, i) => {
      if (applied.has(i + 1)) return;
      this.#db.transaction(() => {
        this.#db.exec(sql);
        this.#db.prepare('INSERT INTO schema_migrations_jobs (version, applied_at) VALUES (?, ?)').run(i + 1, new Date().toISOString());
      })();
    });
    const sql = (this.#sql = statements(db));
    this.#claimTx = db.transaction((picked: readonly { id: number; state: string }[], workerId: string, now: number): ClaimedJob[] => {
      const wasLost = new Set(picked.filter((r) => r.state === 'claimed').map((r) => r.id));
      const taken = sql.take.all(workerId, now, now, JSON.stringify(picked.map((r) => r.id)));
      const unknown = taken.filter((t) => !this.#fresh.has(t.id)).map((t) => t.id);
      const read = new Map((unknown.length === 0 ? [] : sql.byIds.all(JSON.stringify(unknown))).map((row) => [Number(row.id), toJob(row)]));
      return taken
        .map(({ id, claims }): ClaimedJob => {
          const fresh = this.#fresh.get(id);
          this.#fresh.delete(id);
          // A job never claimed before: as inserted, but for what this claim changed.
          const job = fresh ? { ...fresh, state: 'claimed' as const, claims, workerId, claimedAt: now } : read.get(id)!;
          return { job, leaseWasLost: wasLost.has(id) };
        })
        .sort((a, b) => a.job.id - b.job.id);
    });
    this.#heartbeatTx = db.transaction((id: number, claims: number, message: string | null, now: number): HeartbeatAnswer => {
      const lease = this.#lease(id, claims, now);
      if (!lease) return 'not_found';
      const answer = heartbeatAnswer(lease.state, lease.sameClaim, lease.live);
      if (answer === 'ok') sql.extend.run(now, message, id);
      return answer;
    });
    this.#finishTx = db.transaction((answers: readonly JobAnswerOf[], now: number): FinishAnswer[] =>
      answers.map(({ id, claims, answer }): FinishAnswer => {
        const stored = sql.answer.run(
          answer.state,
          answer.result === undefined ? null : JSON.stringify(answer.result),
          answer.error ?? null,
          answer.retryable === undefined ? null : answer.retryable ? 1 : 0,
          now,
          id,
          claims,
          now,
        );
        if (stored.changes > 0) return 'ok';
        const lease = this.#lease(id, claims, now);
        return lease ? finishAnswer(lease.state, lease.sameClaim, lease.live) : 'not_found';
      }),
    );
    this.#insertTx = db.transaction((batch: readonly PendingInsert[]): JobRecord[] => {
      const now = Date.now();
      return batch.map(({ job, held }) => {
        const itemId = job.itemId ?? '';
        const item = job.item === null ? null : JSON.stringify(job.item);
        const options = JSON.stringify(job.options ?? {});
        // One statement when the job is new (its record is the one given, not read back); the row
        // already there (a restarted owner's) otherwise.
        const inserted = sql.insert.get(
          job.runId, job.stage, job.stageKey, job.kind, itemId, item, job.attempt,
          job.queue, job.siteId, job.pipeline, options, job.idempotencyKey, job.leaseMs,
          held ? 'held' : 'queued', now,
        );
        if (!inserted) return toJob(sql.byKey.get(job.runId, job.stage, job.kind, itemId, job.attempt)!);
        const record = newRecord(job, Number(inserted.id), held ? 'held' : 'queued', item, options);
        this.#keepFresh(record);
        return record;
      });
    });
    this.#releaseTx = db.transaction((id: number, claims: number, now: number): FinishAnswer => {
      const lease = this.#lease(id, claims, now);
      if (!lease) return 'not_found';
      const verdict = finishAnswer(lease.state, lease.sameClaim, lease.live);
      if (verdict === 'ok') sql.release.run(id);
      return verdict;
    });
  }

  async ensureJob(job: NewJob, opts: { held?: boolean } = {}): Promise<JobRecord> {
    // Group commit: the jobs a stage starts in one turn of the event loop (items spawned
    // together) are inserted in one transaction, not one each.
    return new Promise<JobRecord>((resolve, reject) => {
      if (this.#toInsert.length === 0) setImmediate(() => this.#insertQueued());
      this.#toInsert.push({ job, held: opts.held === true, resolve, reject });
    });
  }

  #insertQueued(): void {
    const batch = this.#toInsert;
    this.#toInsert = [];
    let rows: JobRecord[];
    try {
      rows = this.#insertTx(batch);
    } catch (err) {
      for (const b of batch) b.reject(err);
      return;
    }
    batch.forEach((b, i) => b.resolve(rows[i]!));
  }

  async latestLoadJob(runId: string, stage: number): Promise<JobRecord | undefined> {
    const row = this.#sql.latestLoad.get(runId, stage);
    return row ? toJob(row) : undefined;
  }

  async requeue(id: number): Promise<boolean> {
    return this.#sql.requeue.run(id).changes > 0;
  }

  async holdRun(runId: string): Promise<number[]> {
    return this.#sql.holdRun.all(runId).map((r) => r.id);
  }

  async cancelRun(runId: string): Promise<number> {
    return this.#sql.cancelRun.run(Date.now(), runId).changes;
  }

  async cancel(id: number): Promise<boolean> {
    return this.#sql.cancel.run(Date.now(), id).changes > 0;
  }

  async claim(queue: string, workerId: string, max: number): Promise<ClaimedJob[]> {
    const now = Date.now();
    // The look outside a transaction: a claim that finds nothing (a long poll's first look, most
    // often) writes nothing. Nothing else runs between it and the transaction that takes the jobs.
    const picked = this.#sql.claimable.all(queue, now, max);
    return picked.length === 0 ? [] : this.#claimTx(picked, workerId, now);
  }

  #keepFresh(job: JobRecord): void {
    this.#fresh.delete(job.id); // a reused row id: the new job's record, at the end of the order
    this.#fresh.set(job.id, job);
    if (this.#fresh.size > FRESH) this.#fresh.delete(this.#fresh.keys().next().value!);
  }

  async getJob(id: number): Promise<JobRecord | undefined> {
    const row = this.#sql.byId.get(id);
    return row ? toJob(row) : undefined;
  }

  async getJobs(ids: readonly number[]): Promise<JobRecord[]> {
    return ids.length === 0 ? [] : this.#sql.byIds.all(JSON.stringify(ids)).map(toJob);
  }

  /** A job's state and whether `claims` is its current claim with a lease still running; undefined for an unknown job. */
  #lease(id: number, claims: number, now: number): { state: string; sameClaim: boolean; live: boolean } | undefined {
    const row = this.#sql.lease.get(id);
    return row && { state: row.state, sameClaim: row.claims === claims, live: row.lease_until !== null && row.lease_until > now };
  }

  async heartbeat(id: number, claims: number, message: string | null): Promise<HeartbeatAnswer> {
    return this.#heartbeatTx(id, claims, message, Date.now());
  }

  async finish(id: number, claims: number, answer: JobAnswer): Promise<FinishAnswer> {
    return this.#finishTx([{ id, claims, answer }], Date.now())[0]!;
  }

  async finishAll(answers: readonly JobAnswerOf[]): Promise<FinishAnswer[]> {
    return answers.length === 0 ? [] : this.#finishTx(answers, Date.now());
  }

  async release(id: number, claims: number): Promise<FinishAnswer> {
    return this.#releaseTx(id, claims, Date.now());
  }

  async finished(ids: readonly number[]): Promise<JobRecord[]> {
    if (ids.length === 0) return [];
    return this.#sql.finished.all(JSON.stringify(ids)).map(toJob);
  }

  async waitingByQueue(): Promise<Record<string, number>> {
    const rows = this.#sql.waiting.all(Date.now());
    return Object.fromEntries(rows.map((r) => [r.queue, r.n]));
  }

  async queueCounts(): Promise<Record<string, QueueCounts>> {
    const now = Date.now();
    return Object.fromEntries(this.#sql.queueCounts.all(now, now).map((r) => [r.queue, { waiting: r.waiting, inFlight: r.in_flight }]));
  }

  async sawWorker(workerId: string, queue: string, at: number): Promise<void> {
    this.#sql.saw.run(workerId, queue, at);
    this.#sql.forget.run(at - FORGET_WORKERS_MS);
  }

  async workersSeen(since: number): Promise<SeenWorker[]> {
    return seenWorkers(this.#sql.seen.all(since), this.#sql.held.all(Date.now()));
  }
}

/** The rows of workers_seen and the jobs each worker holds, as a list newest first (both adapters). */
export function seenWorkers(rows: readonly { worker_id: string; queue: string; last_seen: number | string }[], held: readonly { worker_id: string; n: number }[]): SeenWorker[] {
  const holding = new Map(held.map((h) => [h.worker_id, Number(h.n)]));
  const byId = new Map<string, SeenWorker>();
  for (const r of rows) {
    const w = byId.get(r.worker_id) ?? { workerId: r.worker_id, queues: [], jobsInFlight: holding.get(r.worker_id) ?? 0, lastSeen: 0 };
    w.queues.push(r.queue);
    w.lastSeen = Math.max(w.lastSeen, Number(r.last_seen));
    byId.set(r.worker_id, w);
  }
  const out = [...byId.values()];
  for (const w of out) w.queues.sort();
  return out.sort((a, b) => b.lastSeen - a.lastSeen || (a.workerId < b.workerId ? -1 : 1));
}

/**
 * What a heartbeat of one claim gets, from the job's state: both adapters ask this. A claim
 * that is not the job's latest, or whose lease ran out, has lost the job.
 */
export function heartbeatAnswer(state: string, latestClaim: boolean, leaseHeld: boolean): HeartbeatAnswer {
  if (!latestClaim) return 'lost';
  if (state === 'cancelled') return 'cancel';
  if (state === 'done' || state === 'failed') return 'finished';
  if (state !== 'claimed' || !leaseHeld) return 'lost';
  return 'ok';
}

/** What a completion (or fail) of one claim gets: recorded once, a repeat is a duplicate. */
export function finishAnswer(state: string, latestClaim: boolean, leaseHeld: boolean): FinishAnswer {
  if (!latestClaim) return 'lost';
  if (state === 'cancelled') return 'cancelled';
  if (state === 'done' || state === 'failed') return 'duplicate';
  if (state !== 'claimed' || !leaseHeld) return 'lost';
  return 'ok';
}
