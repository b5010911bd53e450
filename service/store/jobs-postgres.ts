// Worker jobs on Postgres (the JobStore of jobs.ts): any instance claims with FOR UPDATE SKIP
// LOCKED, leases are timed by the database's clock, and hints go over NOTIFY runstate_jobs.
import { Client, type Pool } from 'pg';
import { FORGET_WORKERS_MS, type ClaimedJob, type FinishAnswer, type HeartbeatAnswer, type JobAnswer, type JobAnswerOf, type JobRecord, type JobStore, type NewJob, type QueueCounts, type SeenWorker } from './jobs.js';
import { inTransaction } from './pg-connection.js';
import { finishAnswer, heartbeatAnswer, seenWorkers, toJob, type JobRow } from './jobs-sqlite.js';

/** `answered:<run_id>` (a job of the run was answered) or `queued:<queue>` (a job became claimable). */
export const JOBS_CHANNEL = 'runstate_jobs';

// A migration list of its own (schema_migrations_jobs), applied under its own advisory lock.
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE worker_jobs (
     id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     run_id          TEXT COLLATE "C" NOT NULL,
     stage           INTEGER NOT NULL,
     stage_key       TEXT NOT NULL,
     kind            TEXT NOT NULL,
     item_id         TEXT COLLATE "C" NOT NULL,
     item            TEXT,
     attempt         INTEGER NOT NULL,
     queue           TEXT COLLATE "C" NOT NULL,
     site_id         TEXT NOT NULL,
     pipeline        TEXT NOT NULL,
     options         TEXT NOT NULL,
     idempotency_key TEXT NOT NULL,
     lease_ms        INTEGER NOT NULL,
     state           TEXT NOT NULL,
     claims          INTEGER NOT NULL DEFAULT 0,
     worker_id       TEXT,
     claimed_at      BIGINT,
     lease_until     TIMESTAMPTZ,
     result          TEXT,
     error           TEXT,
     retryable       BOOLEAN,
     message         TEXT,
     created_at      BIGINT NOT NULL,
     finished_at     BIGINT,
     UNIQUE (run_id, stage, kind, item_id, attempt)
   );
   CREATE INDEX worker_jobs_claimable ON worker_jobs (queue, id) WHERE state IN ('queued', 'claimed');
   CREATE INDEX worker_jobs_by_run ON worker_jobs (run_id, state);`,
  // The unique key's index already finds a run's jobs (run_id first); one keyed on the state too
  // was rewritten on every claim and answer, for nothing a query needed.
  `DROP INDEX worker_jobs_by_run;`,
  // Who talked to the service, for every instance to list (GET /api/v1/workers).
  `CREATE TABLE workers_seen (
     worker_id TEXT COLLATE "C" NOT NULL,
     queue     TEXT COLLATE "C" NOT NULL,
     last_seen BIGINT NOT NULL,
     PRIMARY KEY (worker_id, queue)
   );`,
];

const MIGRATION_LOCK = 7_262_111_906_245_441_537n; // the runs schema's lock + 1

const COLUMNS = `id, run_id, stage, stage_key, kind, item_id, item, attempt, queue, site_id, pipeline, options, idempotency_key,
                 lease_ms, state, claims, worker_id, claimed_at, result, error, retryable, message, finished_at`;

export class PostgresJobStore implements JobStore {
  readonly #pool: Pool;
  readonly #url: string;

  private constructor(pool: Pool, url: string) {
    this.#pool = pool;
    this.#url = url;
  }

  static async open(pool: Pool, url: string): Promise<PostgresJobStore> {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK.toString()]);
      await client.query('CREATE TABLE IF NOT EXISTS schema_migrations_jobs (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)');
      const applied = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations_jobs')).rows.map((r) => r.version));
      for (const [i, sql] of MIGRATIONS.entries()) {
        if (applied.has(i + 1)) continue;
        await client.query(sql);
        await client.query('INSERT INTO schema_migrations_jobs (version, applied_at) VALUES ($1, $2)', [i + 1, new Date().toISOString()]);
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
    return new PostgresJobStore(pool, url);
  }

  async ensureJob(job: NewJob, opts: { held?: boolean } = {}): Promise<JobRecord> {
    const itemId = job.itemId ?? '';
    const inserted = await this.#pool.query<JobRow>(
      `INSERT INTO worker_jobs (run_id, stage, stage_key, kind, item_id, item, attempt, queue, site_id, pipeline, options,
                                idempotency_key, lease_ms, state, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT DO NOTHING RETURNING ${COLUMNS}`,
      [
        job.runId, job.stage, job.stageKey, job.kind, itemId, job.item === null ? null : JSON.stringify(job.item), job.attempt,
        job.queue, job.siteId, job.pipeline, JSON.stringify(job.options ?? {}), job.idempotencyKey, job.leaseMs,
        opts.held ? 'held' : 'queued', Date.now(),
      ],
    );
    if (inserted.rows[0]) return toJob(inserted.rows[0]);
    // A new statement: its snapshot sees the row a concurrent insert kept.
    const res = await this.#pool.query<JobRow>(
      `SELECT ${COLUMNS} FROM worker_jobs WHERE run_id = $1 AND stage = $2 AND kind = $3 AND item_id = $4 AND attempt = $5`,
      [job.runId, job.stage, job.kind, itemId, job.attempt],
    );
    return toJob(res.rows[0]!);
  }

  async latestLoadJob(runId: string, stage: number): Promise<JobRecord | undefined> {
    const res = await this.#pool.query<JobRow>(
      `SELECT ${COLUMNS} FROM worker_jobs WHERE run_id = $1 AND stage = $2 AND kind = 'load' ORDER BY attempt DESC LIMIT 1`,
      [runId, stage],
    );
    return res.rows[0] ? toJob(res.rows[0]) : undefined;
  }

  async requeue(id: number): Promise<boolean> {
    const res = await this.#pool.query(`UPDATE worker_jobs SET state = 'queued' WHERE id = $1 AND state = 'held'`, [id]);
    return (res.rowCount ?? 0) > 0;
  }

  async holdRun(runId: string): Promise<number[]> {
    const res = await this.#pool.query<{ id: number }>(`UPDATE worker_jobs SET state = 'held' WHERE run_id = $1 AND kind = 'item' AND state = 'queued' RETURNING id`, [runId]);
    return res.rows.map((r) => Number(r.id));
  }

  async cancelRun(runId: string): Promise<number> {
    const res = await this.#pool.query(
      `UPDATE worker_jobs SET state = 'cancelled', finished_at = $2 WHERE run_id = $1 AND state IN ('queued', 'held', 'claimed')`,
      [runId, Date.now()],
    );
    return res.rowCount ?? 0;
  }

  async cancel(id: number): Promise<boolean> {
    const res = await this.#pool.query(
      `UPDATE worker_jobs SET state = 'cancelled', finished_at = $2 WHERE id = $1 AND state IN ('queued', 'held', 'claimed')`,
      [id, Date.now()],
    );
    return (res.rowCount ?? 0) > 0;
  }

  async claim(queue: string, workerId: string, max: number): Promise<ClaimedJob[]> {
    // SKIP LOCKED: workers claiming through different instances at once each get other jobs.
    const res = await this.#pool.query<JobRow & { was_lost: boolean }>(
      `WITH picked AS (
         SELECT id, state = 'claimed' AS was_lost FROM worker_jobs
         WHERE queue = $1 AND state IN ('queued', 'claimed') AND (state = 'queued' OR lease_until <= now())
         ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
       UPDATE worker_jobs j SET state = 'claimed', claims = claims + 1, worker_id = $2, claimed_at = $4,
              lease_until = now() + make_interval(secs => j.lease_ms::float8 / 1000)
       FROM picked WHERE j.id = picked.id
       RETURNING ${COLUMNS.split(',').map((c) => `j.${c.trim()}`).join(', ')}, picked.was_lost`,
      [queue, workerId, max, Date.now()],
    );
    return res.rows.map((r) => ({ job: toJob(r), leaseWasLost: r.was_lost })).sort((a, b) => a.job.id - b.job.id);
  }

  async getJob(id: number): Promise<JobRecord | undefined> {
    const res = await this.#pool.query<JobRow>(`SELECT ${COLUMNS} FROM worker_jobs WHERE id = $1`, [id]);
    return res.rows[0] ? toJob(res.rows[0]) : undefined;
  }

  async getJobs(ids: readonly number[]): Promise<JobRecord[]> {
    if (ids.length === 0) return [];
    const res = await this.#pool.query<JobRow>(`SELECT ${COLUMNS} FROM worker_jobs WHERE id = ANY($1::bigint[])`, [[...ids]]);
    return res.rows.map(toJob);
  }

  async heartbeat(id: number, claims: number, message: string | null): Promise<HeartbeatAnswer> {
    const client = await this.#pool.connect();
    try {
      await client.query('BEGIN');
      const res = await client.query<{ state: string; claims: number; held: boolean }>(
        'SELECT state, claims, lease_until > now() AS held FROM worker_jobs WHERE id = $1 FOR UPDATE',
        [id],
      );
      const row = res.rows[0];
      const answer = row ? heartbeatAnswer(row.state, row.claims === claims, row.held === true) : 'not_found';
      if (answer === 'ok') {
        await client.query(
          `UPDATE worker_jobs SET lease_until = now() + make_interval(secs => lease_ms::float8 / 1000), message = COALESCE($2, message) WHERE id = $1`,
          [id, message],
        );
      }
      await client.query('COMMIT');
      return answer;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async finish(id: number, claims: number, answer: JobAnswer): Promise<FinishAnswer> {
    const [verdict] = await this.finishAll([{ id, claims, answer }]);
    return verdict!;
  }

  async finishAll(answers: readonly JobAnswerOf[]): Promise<FinishAnswer[]> {
    if (answers.length === 0) return [];
    return inTransaction(this.#pool, async (client) => {
      const verdicts: FinishAnswer[] = [];
      const runs = new Set<string>();
      for (const { id, claims, answer } of answers) {
        const res = await client.query<{ state: string; claims: number; held: boolean; run_id: string }>(
          'SELECT state, claims, lease_until > now() AS held, run_id FROM worker_jobs WHERE id = $1 FOR UPDATE',
          [id],
        );
        const row = res.rows[0];
        const verdict = row ? finishAnswer(row.state, row.claims === claims, row.held === true) : 'not_found';
        if (verdict === 'ok') {
          await client.query(
            `UPDATE worker_jobs SET state = $2, result = $3, error = $4, retryable = $5, finished_at = $6 WHERE id = $1`,
            [id, answer.state, answer.result === undefined ? null : JSON.stringify(answer.result), answer.error ?? null, answer.retryable ?? null, Date.now()],
          );
          runs.add(row!.run_id);
        }
        verdicts.push(verdict);
      }
      // The owner of a run may be another instance: the hint goes with the answers, one per run.
      for (const runId of runs) await client.query('SELECT pg_notify($1, $2)', [JOBS_CHANNEL, `answered:${runId}`]);
      return verdicts;
    });
  }

  async release(id: number, claims: number): Promise<FinishAnswer> {
    const res = await this.#pool.query<{ state: string; claims: number; held: boolean; released: boolean }>(
      `WITH cur AS (SELECT id, state, claims, lease_until > now() AS held FROM worker_jobs WHERE id = $1 FOR UPDATE),
            upd AS (UPDATE worker_jobs j SET state = 'queued', lease_until = NULL FROM cur
                    WHERE j.id = cur.id AND cur.state = 'claimed' AND cur.claims = $2 AND cur.held RETURNING j.id)
       SELECT cur.state, cur.claims, cur.held, EXISTS (SELECT 1 FROM upd) AS released FROM cur`,
      [id, claims],
    );
    const row = res.rows[0];
    if (!row) return 'not_found';
    return row.released ? 'ok' : finishAnswer(row.state, row.claims === claims, row.held === true);
  }

  async finished(ids: readonly number[]): Promise<JobRecord[]> {
    if (ids.length === 0) return [];
    const res = await this.#pool.query<JobRow>(
      `SELECT ${COLUMNS} FROM worker_jobs WHERE id = ANY($1::bigint[]) AND state IN ('done', 'failed', 'cancelled')`,
      [[...ids]],
    );
    return res.rows.map(toJob);
  }

  async waitingByQueue(): Promise<Record<string, number>> {
    const res = await this.#pool.query<{ queue: string; n: number }>(
      `SELECT queue, COUNT(*)::int AS n FROM worker_jobs WHERE state IN ('queued', 'claimed') AND (state = 'queued' OR lease_until <= now()) GROUP BY queue`,
    );
    return Object.fromEntries(res.rows.map((r) => [r.queue, r.n]));
  }

  async queueCounts(): Promise<Record<string, QueueCounts>> {
    const res = await this.#pool.query<{ queue: string; waiting: number; in_flight: number }>(
      `SELECT queue, COUNT(*) FILTER (WHERE state = 'queued' OR lease_until <= now())::int AS waiting,
              COUNT(*) FILTER (WHERE state = 'claimed' AND lease_until > now())::int AS in_flight
       FROM worker_jobs WHERE state IN ('queued', 'claimed') GROUP BY queue`,
    );
    return Object.fromEntries(res.rows.map((r) => [r.queue, { waiting: r.waiting, inFlight: r.in_flight }]));
  }

  async sawWorker(workerId: string, queue: string, at: number): Promise<void> {
    await this.#pool.query(
      `WITH gone AS (DELETE FROM workers_seen WHERE last_seen < $4)
       INSERT INTO workers_seen (worker_id, queue, last_seen) VALUES ($1, $2, $3)
       ON CONFLICT (worker_id, queue) DO UPDATE SET last_seen = GREATEST(workers_seen.last_seen, EXCLUDED.last_seen)`,
      [workerId, queue, at, at - FORGET_WORKERS_MS],
    );
  }

  async workersSeen(since: number): Promise<SeenWorker[]> {
    const [rows, held] = await Promise.all([
      this.#pool.query<{ worker_id: string; queue: string; last_seen: string }>('SELECT worker_id, queue, last_seen FROM workers_seen WHERE last_seen >= $1', [since]),
      this.#pool.query<{ worker_id: string; n: number }>(
        `SELECT worker_id, COUNT(*)::int AS n FROM worker_jobs WHERE state IN ('queued', 'claimed') AND state = 'claimed' AND lease_until > now() GROUP BY worker_id`,
      ),
    ]);
    return seenWorkers(rows.rows, held.rows);
  }

  async notifyJobs(h: { answered?: string; queue?: string }): Promise<void> {
    const payload = h.answered !== undefined ? `answered:${h.answered}` : `queued:${h.queue ?? ''}`;
    await this.#pool.query('SELECT pg_notify($1, $2)', [JOBS_CHANNEL, payload]);
  }

  /** LISTEN on a connection of its own; hints only, so a lost connection is reopened and polling covers the gap. */
  async listenJobs(hint: (h: { answered?: string; queue?: string }) => void): Promise<() => Promise<void>> {
    let client: Client | null = null;
    let stopped = false;
    const open = async (): Promise<void> => {
      const c = new Client({ connectionString: this.#url, application_name: 'runstate-jobs' });
      c.on('notification', (n) => {
        if (n.channel !== JOBS_CHANNEL || !n.payload) return;
        const cut = n.payload.indexOf(':');
        const kind = n.payload.slice(0, cut);
        const value = n.payload.slice(cut + 1);
        if (kind === 'answered') hint({ answered: value });
        else if (kind === 'queued') hint({ queue: value });
      });
      c.on('error', () => undefined);
      c.on('end', () => {
        client = null;
        if (!stopped) setTimeout(() => void open().catch(() => undefined), 1000).unref();
      });
      await c.connect();
      await c.query(`LISTEN ${JOBS_CHANNEL}`);
      client = c;
    };
    await open();
    return async () => {
      stopped = true;
      await client?.end().catch(() => undefined);
    };
  }
}
