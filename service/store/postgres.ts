// The store on Postgres, for several instances on one database: SQL that executes commit plans,
// the ownership queries, and LISTEN/NOTIFY hints; its connections are made in pg-connection.ts
// (docs/operations.md).
import { TypeOverrides, types, type Pool, type PoolClient } from 'pg';
import {
  IdempotencyKeyTakenError,
  StoreConflictError,
  type CommandOutcome,
  type CommitBatch,
  type CommitResult,
  type Item,
  type LedgerEntry,
  type NewRun,
  type QueuedCommand,
  type RunFilter,
  type RunRecord,
  type Store,
  type StoredEvent,
} from './store.js';
import { keysToLookUp, ledgerConflict, planAsExpected, planCommit, type CommitPlan, type ExpectedPlan, type LedgerRowToInsert, type RunAtCommit } from './commit-plan.js';
import { createPool, inTransaction, listen, onConnection, prober, type PgTimeouts, type Prober } from './pg-connection.js';
import { LIVE_STATUS_SQL, toLedgerEntry, toRecord, type LedgerRow, type RunRow } from './rows.js';

/**
 * The channel every commit that appended events notifies, in the commit's own transaction, with
 * the payload `<run_id>:<last_seq>`. Postgres delivers it only if the commit lands, after it is
 * visible, and in commit order. It is a wake-up hint, not a message: a listener reads the events
 * with `readEvents(runId, lastSeenSeq)`. Run ids may contain `:`, so split on the last one.
 */
export const EVENTS_CHANNEL = 'runstate_events';

// Text columns that are compared or ordered use the "C" collation: byte order, as SQLite's
// BINARY, whatever locale the database was created with. JSON is kept as text (not JSONB, which
// reorders keys) so that an event's body is byte for byte the JSON of the event returned.
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE runs (
     run_id       TEXT COLLATE "C" PRIMARY KEY,
     account_id   TEXT COLLATE "C" NOT NULL,
     site_id      TEXT COLLATE "C" NOT NULL,
     pipeline     TEXT NOT NULL,
     trigger      TEXT NOT NULL,
     machine_name TEXT,
     options      TEXT NOT NULL,
     status       TEXT COLLATE "C" NOT NULL,
     error        TEXT,
     snapshot     TEXT,
     last_seq     BIGINT NOT NULL DEFAULT 0,
     created_at   TEXT COLLATE "C" NOT NULL,
     updated_at   TEXT NOT NULL,
     closed_at    TEXT,
     traced_seq   BIGINT NOT NULL DEFAULT 0
   );
   CREATE INDEX runs_untraced ON runs (run_id) WHERE traced_seq < last_seq;
   CREATE INDEX runs_by_site ON runs (site_id, created_at DESC);
   CREATE INDEX runs_by_status ON runs (status);
   CREATE TABLE events (
     run_id    TEXT COLLATE "C" NOT NULL,
     seq       BIGINT NOT NULL,
     body      TEXT NOT NULL,
     event_key TEXT COLLATE "C",
     PRIMARY KEY (run_id, seq)
   );
   CREATE UNIQUE INDEX events_by_key ON events (run_id, event_key) WHERE event_key IS NOT NULL;
   CREATE TABLE stage_items (
     run_id TEXT COLLATE "C" NOT NULL,
     stage  INTEGER NOT NULL,
     items  TEXT NOT NULL,
     PRIMARY KEY (run_id, stage)
   );
   CREATE TABLE ledger (
     position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     run_id   TEXT COLLATE "C" NOT NULL,
     stage    INTEGER NOT NULL,
     item_id  TEXT COLLATE "C" NOT NULL,
     item     TEXT NOT NULL,
     status   TEXT NOT NULL,
     attempts INTEGER NOT NULL,
     cost     DOUBLE PRECISION NOT NULL,
     error    TEXT,
     UNIQUE (run_id, stage, item_id)
   );`,
  // Ownership (leases, fencing) and commands for runs another instance holds.
  `ALTER TABLE runs ADD COLUMN owner TEXT COLLATE "C";
   ALTER TABLE runs ADD COLUMN lease_until TIMESTAMPTZ;
   CREATE INDEX runs_by_owner ON runs (owner);
   CREATE TABLE commands (
     id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     run_id     TEXT COLLATE "C" NOT NULL,
     command    TEXT NOT NULL,
     by_name    TEXT NOT NULL,
     reason     TEXT,
     created_at TEXT NOT NULL,
     taken_by   TEXT,
     outcome    TEXT,
     expired    BOOLEAN NOT NULL DEFAULT false
   );
   CREATE INDEX commands_pending ON commands (run_id) WHERE taken_by IS NULL AND NOT expired;`,
  // Whether an instance of this service works the run (NewRun.hosted). The rows there are: an
  // external run, and only an external run, has a machine name.
  `ALTER TABLE runs ADD COLUMN hosted BOOLEAN NOT NULL DEFAULT true;
   UPDATE runs SET hosted = false WHERE machine_name IS NOT NULL;`,
  // Webhooks (service/webhooks/): the outbox each commit writes with the events it reports, the
  // subscriptions, and the deliveries the sender fans the outbox out to, with each attempt; the
  // indexes retention (service/retention/) finds and deletes old runs by; and the caller's trace
  // a run's OpenTelemetry spans belong to (service/telemetry/).
  `CREATE TABLE outbox (
     id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     run_id     TEXT COLLATE "C" NOT NULL,
     seq        BIGINT NOT NULL,
     kind       TEXT NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE INDEX outbox_by_run ON outbox (run_id);
   CREATE TABLE webhooks (
     webhook_id TEXT COLLATE "C" PRIMARY KEY,
     account_id TEXT COLLATE "C",
     site_id    TEXT COLLATE "C",
     url        TEXT NOT NULL,
     events     TEXT NOT NULL,
     secret     TEXT NOT NULL,
     created_by TEXT NOT NULL,
     created_at TEXT COLLATE "C" NOT NULL
   );
   CREATE TABLE webhook_deliveries (
     delivery_id  TEXT COLLATE "C" PRIMARY KEY,
     webhook_id   TEXT COLLATE "C" NOT NULL,
     run_id       TEXT COLLATE "C" NOT NULL,
     seq          BIGINT NOT NULL,
     kind         TEXT NOT NULL,
     body         TEXT NOT NULL,
     status       TEXT NOT NULL DEFAULT 'pending',
     attempts     INTEGER NOT NULL DEFAULT 0,
     first_at     BIGINT NOT NULL,
     next_at      BIGINT NOT NULL,
     lease_owner  TEXT,
     lease_until  BIGINT,
     delivered_at TEXT,
     last_error   TEXT,
     created_at   TEXT COLLATE "C" NOT NULL,
     UNIQUE (webhook_id, run_id, seq)
   );
   CREATE INDEX deliveries_due ON webhook_deliveries (next_at) WHERE status = 'pending';
   CREATE INDEX deliveries_by_run ON webhook_deliveries (run_id);
   CREATE INDEX deliveries_by_webhook ON webhook_deliveries (webhook_id, created_at);
   CREATE TABLE webhook_attempts (
     delivery_id TEXT COLLATE "C" NOT NULL,
     attempt     INTEGER NOT NULL,
     at          TEXT NOT NULL,
     status_code INTEGER,
     error       TEXT,
     duration_ms DOUBLE PRECISION NOT NULL,
     PRIMARY KEY (delivery_id, attempt)
   );
   CREATE INDEX commands_by_run ON commands (run_id);
   CREATE INDEX runs_by_updated ON runs (updated_at);
   ALTER TABLE runs ADD COLUMN trace_parent TEXT;`,
  // Idempotent starts (docs/api.md): one row per key and scope, written with the run it made.
  `CREATE TABLE idempotency_keys (
     scope       TEXT COLLATE "C" NOT NULL,
     key         TEXT COLLATE "C" NOT NULL,
     fingerprint TEXT NOT NULL,
     run_id      TEXT COLLATE "C" NOT NULL,
     created_ms  BIGINT NOT NULL,
     PRIMARY KEY (scope, key)
   );
   CREATE INDEX idempotency_keys_by_run ON idempotency_keys (run_id);`,
];

/** Taken by every instance that migrates, so that instances starting together apply each migration once. */
const MIGRATION_LOCK = 7_262_111_906_245_441_536n; // 'runstate' in ASCII, as a bigint

// BIGINT (seq, counts) comes back as a JS number rather than pg's default string: seqs stay far
// below 2^53. Set on this store's connections only, not on pg's global parsers.
const INT8_OID = 20;
const typeParsers = new TypeOverrides(types);
typeParsers.setTypeParser(INT8_OID, (value: string) => Number(value));

const UNIQUE_VIOLATION = '23505';

const RUN_COLUMNS = `run_id, account_id, site_id, pipeline, trigger, machine_name, hosted, options, status, error,
                     snapshot, last_seq, created_at, updated_at, closed_at, owner, trace_parent`;

export interface PostgresStoreOptions extends PgTimeouts {
  /** Connections in the pool. [poolSize=10] */
  poolSize?: number;
  /**
   * Called with an error of a connection that no call is waiting on (the server restarted, the
   * network dropped it), pooled or the LISTEN one. pg has already discarded that connection;
   * the next query opens a new one. [onIdleError=ignore]
   */
  onIdleError?: (err: Error) => void;
}

const defaults: Required<Pick<PostgresStoreOptions, 'poolSize' | 'onIdleError'>> = {
  poolSize: 10,
  onIdleError: () => {},
};

/**
 * Postgres, for when `DATABASE_URL` is set; several service instances may share one database.
 *
 * A journal's batch (expected seq, owner, no event keys) is planned on the run as it expects
 * it and written in one statement gated on the run's row being so (`WRITE_IF_EXPECTED`): one
 * round trip. Any other batch, and one whose gate did not hold, is a transaction that locks the
 * run's row (`SELECT … FOR UPDATE`), reads its `last_seq`, lease and the keys seen before, and
 * writes the plan of commit-plan.ts: it throws what the plan decides on the row it finds. Either
 * way the row lock serializes commits to one run, from this pool or any other, and a commit that
 * fails leaves no gap. Leases are timed by the database's clock, never an instance's. Every
 * commit that appends events also sends `NOTIFY runstate_events, '<run_id>:<last_seq>'`
 * ({@link EVENTS_CHANNEL}).
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  readonly #pool: Pool;
  readonly #url: string;
  readonly #onError: (err: Error) => void;
  readonly #prober: Prober;
  #closed = false;

  private constructor(pool: Pool, url: string, onError: (err: Error) => void) {
    this.#pool = pool;
    this.#url = url;
    this.#onError = onError;
    this.#prober = prober({ connectionString: url, types: typeParsers, onError });
  }

  /**
   * Opens a pool on `connectionString` and applies the migrations not yet applied, in one
   * transaction under an advisory lock, so instances starting at once do not race.
   */
  static async connect(connectionString: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const opts: Required<Pick<PostgresStoreOptions, 'poolSize' | 'onIdleError'>> = {
      poolSize: options.poolSize ?? defaults.poolSize,
      onIdleError: options.onIdleError ?? defaults.onIdleError,
    };
    if (typeof connectionString !== 'string' || connectionString === '') {
      throw new TypeError('Expected `connectionString` to be a non-empty string.');
    }
    if (!Number.isInteger(opts.poolSize) || opts.poolSize < 1) {
      throw new TypeError(`Expected \`poolSize\` to be a positive integer, got ${String(opts.poolSize)}.`);
    }
    if (typeof opts.onIdleError !== 'function') {
      throw new TypeError('Expected `onIdleError` to be a function.');
    }
    const pool = createPool({
      connectionString,
      max: opts.poolSize,
      types: typeParsers,
      onError: opts.onIdleError,
      ...(options.acquireMs === undefined ? {} : { acquireMs: options.acquireMs }),
      ...(options.statementMs === undefined ? {} : { statementMs: options.statementMs }),
    });
    try {
      await migrate(pool);
    } catch (err) {
      await pool.end();
      throw err;
    }
    return new PostgresStore(pool, connectionString, opts.onIdleError);
  }

  /** The pool, for the tables of service/webhooks/ and service/retention/, which keep their SQL there. */
  get pool(): Pool {
    return this.#pool;
  }

  /** The pool and URL, for the worker jobs kept in the same database (jobs-postgres.ts). */
  get connection(): { pool: Pool; url: string } {
    return { pool: this.#pool, url: this.#url };
  }

  async createRun(run: NewRun): Promise<RunRecord> {
    const claim = run.idempotency;
    if (!claim) return insertRun(this.#pool, run);
    const created = await inTransaction(this.#pool, async (client) => {
      await client.query('DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND created_ms <= $3', [claim.scope, claim.key, claim.atMs - claim.windowMs]);
      // A concurrent claim of the same key makes this wait for it to commit or roll back; then
      // the key is either held (nothing inserted) or free.
      const claimed = await client.query(
        `INSERT INTO idempotency_keys (scope, key, fingerprint, run_id, created_ms) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (scope, key) DO NOTHING RETURNING run_id`,
        [claim.scope, claim.key, claim.fingerprint, run.runId, claim.atMs],
      );
      if (claimed.rowCount === 0) return undefined;
      return insertRun(client, run);
    });
    if (created) return created;
    const held = await this.#pool.query<{ run_id: string; fingerprint: string }>('SELECT run_id, fingerprint FROM idempotency_keys WHERE scope = $1 AND key = $2', [
      claim.scope,
      claim.key,
    ]);
    const row = held.rows[0];
    // Held a moment ago and expired or released since: the caller tries again.
    if (!row) throw new StoreConflictError(`the idempotency key was released while run ${run.runId} was made`);
    throw new IdempotencyKeyTakenError(row.run_id, row.fingerprint);
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    const res = await this.#pool.query<RunRow>({ name: 'runstate_get_run', text: `SELECT ${RUN_COLUMNS} FROM runs WHERE run_id = $1`, values: [runId] });
    const row = res.rows[0];
    return row ? toRecord(row) : undefined;
  }

  async listRuns(filter: RunFilter): Promise<RunRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const param = (value: unknown): string => {
      params.push(value);
      return `$${params.length}`;
    };
    if (filter.siteIds) {
      if (filter.siteIds.length === 0) return [];
      where.push(`site_id = ANY(${param([...filter.siteIds])}::text[])`);
    }
    if (filter.status !== undefined) where.push(`status = ${param(filter.status)}`);
    if (filter.open) where.push('closed_at IS NULL');
    if (filter.before) {
      const created = param(filter.before.createdAt);
      where.push(`(created_at < ${created} OR (created_at = ${created} AND run_id < ${param(filter.before.runId)}))`);
    }
    const sql = `SELECT ${RUN_COLUMNS} FROM runs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
                 ORDER BY created_at DESC, run_id DESC LIMIT ${param(filter.limit ?? 100)}`;
    const res = await this.#pool.query<RunRow>(sql, params);
    return res.rows.map(toRecord);
  }

  async countRunsByStatus(): Promise<Record<string, number>> {
    const res = await this.#pool.query<{ status: string; n: number }>('SELECT status, COUNT(*) AS n FROM runs GROUP BY status');
    return Object.fromEntries(res.rows.map((r) => [r.status, r.n]));
  }

  async commit(runId: string, batch: CommitBatch): Promise<CommitResult> {
    const now = new Date().toISOString();
    // A journal's batch, planned on the run as it expects it, is one round trip when the run is
    // so; otherwise nothing was written and the transaction below finds out why.
    const expected = planAsExpected(runId, batch, now);
    if (expected && (await onConnection(this.#pool, (client) => writeIfExpected(client, runId, expected)))) return expected.result;
    return inTransaction(this.#pool, (client) => commitIn(client, runId, batch, now));
  }

  async eventKeys(runId: string): Promise<Map<string, number>> {
    const res = await this.#pool.query<{ event_key: string; seq: number }>(
      'SELECT event_key, seq FROM events WHERE run_id = $1 AND event_key IS NOT NULL ORDER BY seq',
      [runId],
    );
    return new Map(res.rows.map((r) => [r.event_key, r.seq]));
  }

  async readEvents(runId: string, afterSeq: number, limit = 10_000): Promise<StoredEvent[]> {
    const res = await this.#pool.query<{ body: string }>({
      name: 'runstate_read_events',
      text: 'SELECT body FROM events WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3',
      values: [runId, afterSeq, limit],
    });
    return res.rows.map((r) => JSON.parse(r.body) as StoredEvent);
  }

  async saveStageItems(runId: string, stage: number, items: readonly Item[]): Promise<Item[]> {
    const json = JSON.stringify(items);
    // Two statements, not one: after waiting on a concurrent first save, ON CONFLICT DO NOTHING
    // skips the row, and only a new statement's snapshot sees the list that was kept.
    const inserted = await this.#pool.query(
      'INSERT INTO stage_items (run_id, stage, items) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
      [runId, stage, json],
    );
    if (inserted.rowCount === 1) return JSON.parse(json) as Item[];
    return (await this.getStageItems(runId, stage))!;
  }

  async getStageItems(runId: string, stage: number): Promise<Item[] | undefined> {
    const res = await this.#pool.query<{ items: string }>('SELECT items FROM stage_items WHERE run_id = $1 AND stage = $2', [
      runId,
      stage,
    ]);
    const row = res.rows[0];
    return row ? (JSON.parse(row.items) as Item[]) : undefined;
  }

  async ledger(runId: string, stage?: number): Promise<LedgerEntry[]> {
    const res = await this.#pool.query<LedgerRow>(
      stage === undefined
        ? 'SELECT item, stage, status, attempts, cost, error FROM ledger WHERE run_id = $1 ORDER BY position'
        : 'SELECT item, stage, status, attempts, cost, error FROM ledger WHERE run_id = $1 AND stage = $2 ORDER BY position',
      stage === undefined ? [runId] : [runId, stage],
    );
    return res.rows.map(toLedgerEntry);
  }

  async markTraced(runId: string, seq: number): Promise<void> {
    await this.#pool.query('UPDATE runs SET traced_seq = GREATEST(traced_seq, $1) WHERE run_id = $2', [seq, runId]);
  }

  async listUntraced(): Promise<RunRecord[]> {
    const res = await this.#pool.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM runs WHERE traced_seq < last_seq ORDER BY created_at, run_id`);
    return res.rows.map(toRecord);
  }

  async claimRuns(owner: string, leaseMs: number, limit: number, opts: { all?: boolean } = {}): Promise<RunRecord[]> {
    // SKIP LOCKED: instances scanning at once each take different runs, none waits on another.
    const res = await this.#pool.query<RunRow>(
      `UPDATE runs SET owner = $1, lease_until = now() + make_interval(secs => $2::float8 / 1000)
       WHERE run_id IN (SELECT run_id FROM runs
                        WHERE ${LIVE_STATUS_SQL} AND hosted
                          AND ($4::boolean OR owner IS NULL OR lease_until IS NULL OR lease_until <= now())
                        ORDER BY created_at LIMIT $3 FOR UPDATE SKIP LOCKED)
       RETURNING ${RUN_COLUMNS}`,
      [owner, leaseMs, limit, opts.all === true],
    );
    return res.rows.map(toRecord).sort((a, b) => (a.createdAt < b.createdAt ? -1 : 1));
  }

  async leaseFinishedRun(runId: string, owner: string, leaseMs: number): Promise<RunRecord | undefined> {
    const res = await this.#pool.query<RunRow>(
      `UPDATE runs SET owner = $2, lease_until = now() + make_interval(secs => $3::float8 / 1000)
       WHERE run_id = $1 AND hosted AND status = 'completed' AND closed_at IS NULL
         AND (owner IS NULL OR owner = $2 OR lease_until IS NULL OR lease_until <= now())
       RETURNING ${RUN_COLUMNS}`,
      [runId, owner, leaseMs],
    );
    const row = res.rows[0];
    return row ? toRecord(row) : undefined;
  }

  async renewLeases(owner: string, leaseMs: number): Promise<string[]> {
    const res = await this.#pool.query<{ run_id: string }>(
      `UPDATE runs SET lease_until = now() + make_interval(secs => $2::float8 / 1000)
       WHERE owner = $1 AND lease_until > now() AND ${LIVE_STATUS_SQL} RETURNING run_id`,
      [owner, leaseMs],
    );
    return res.rows.map((r) => r.run_id);
  }

  async releaseLeases(owner: string, runIds?: readonly string[]): Promise<void> {
    await this.#pool.query(
      'UPDATE runs SET owner = NULL, lease_until = NULL WHERE owner = $1 AND ($2::text[] IS NULL OR run_id = ANY($2::text[]))',
      [owner, runIds === undefined ? null : [...runIds]],
    );
  }

  async enqueueCommand(cmd: { runId: string; command: string; by: string; reason?: string | undefined }): Promise<number> {
    const res = await this.#pool.query<{ id: number }>(
      'INSERT INTO commands (run_id, command, by_name, reason, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id',
      [cmd.runId, cmd.command, cmd.by, cmd.reason ?? null, new Date().toISOString()],
    );
    return res.rows[0]!.id;
  }

  async takeCommands(owner: string): Promise<QueuedCommand[]> {
    const res = await this.#pool.query<{ id: number; run_id: string; command: string; by_name: string; reason: string | null }>(
      `UPDATE commands SET taken_by = $1
       WHERE id IN (SELECT c.id FROM commands c JOIN runs r ON r.run_id = c.run_id
                    WHERE r.owner = $1 AND c.taken_by IS NULL AND NOT c.expired
                    ORDER BY c.id FOR UPDATE OF c SKIP LOCKED)
       RETURNING id, run_id, command, by_name, reason`,
      [owner],
    );
    return res.rows
      .sort((a, b) => a.id - b.id)
      .map((r) => ({ id: r.id, runId: r.run_id, command: r.command, by: r.by_name, reason: r.reason }));
  }

  async finishCommand(id: number, outcome: CommandOutcome): Promise<void> {
    await this.#pool.query('UPDATE commands SET outcome = $2 WHERE id = $1', [id, JSON.stringify(outcome)]);
  }

  async commandOutcome(id: number): Promise<CommandOutcome | 'pending' | 'expired'> {
    const res = await this.#pool.query<{ outcome: string | null; expired: boolean }>('SELECT outcome, expired FROM commands WHERE id = $1', [id]);
    const row = res.rows[0];
    if (!row || row.expired) return 'expired';
    return row.outcome === null ? 'pending' : (JSON.parse(row.outcome) as CommandOutcome);
  }

  async expireCommand(id: number): Promise<boolean> {
    const res = await this.#pool.query('UPDATE commands SET expired = true WHERE id = $1 AND taken_by IS NULL', [id]);
    return (res.rowCount ?? 0) > 0;
  }

  /**
   * LISTEN on a connection of its own (outside the pool, see pg-connection.ts). NOTIFY is a hint
   * only: a listener that was disconnected missed some, so after every reconnect `onResync`
   * says to re-read.
   */
  async listen(onAppended: (runId: string, lastSeq: number) => void, onResync: () => void): Promise<() => Promise<void>> {
    return listen({
      connectionString: this.#url,
      types: typeParsers,
      channel: EVENTS_CHANNEL,
      onNotification: (payload) => {
        const cut = payload.lastIndexOf(':');
        const seq = Number(payload.slice(cut + 1));
        if (cut > 0 && Number.isSafeInteger(seq)) onAppended(payload.slice(0, cut), seq);
      },
      onResync,
      onError: this.#onError,
    });
  }

  async ping(timeoutMs: number): Promise<void> {
    await this.#prober.ping(timeoutMs);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#prober.close();
    await this.#pool.end();
  }
}

/** Inserts the run row; a taken id is `StoreConflictError`. */
async function insertRun(db: Pool | PoolClient, run: NewRun): Promise<RunRecord> {
  try {
    const res = await db.query<RunRow>(
      `INSERT INTO runs (run_id, account_id, site_id, pipeline, trigger, machine_name, options, status, created_at, updated_at, owner, lease_until, hosted, trace_parent)
       VALUES ($1, $2, $3, $4, $5, $6, $7, 'idle', $8, $8, $9::text,
               CASE WHEN $9::text IS NULL THEN NULL ELSE now() + make_interval(secs => $10::float8 / 1000) END, $11, $12)
       RETURNING ${RUN_COLUMNS}`,
      [
        run.runId,
        run.accountId,
        run.siteId,
        run.pipeline,
        run.trigger,
        run.machineName ?? null,
        JSON.stringify(run.options),
        run.createdAt,
        run.lease?.owner ?? null,
        run.lease?.ms ?? 0,
        run.hosted !== false,
        run.traceParent ?? null,
      ],
    );
    return toRecord(res.rows[0]!);
  } catch (err) {
    if (isUniqueViolation(err, 'runs_pkey')) throw new StoreConflictError(`run ${run.runId} already exists`);
    throw err;
  }
}

async function migrate(pool: Pool): Promise<void> {
  await inTransaction(pool, async (client) => {
    // Released at COMMIT or ROLLBACK, and by the server if this connection dies.
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK.toString()]);
    await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)');
    const applied = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
    for (const [i, sql] of MIGRATIONS.entries()) {
      const version = i + 1;
      if (applied.has(version)) continue;
      await client.query(sql);
      await client.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [version, new Date().toISOString()]);
    }
  });
}

/** Reads what the plan needs under the run's row lock, then executes the plan. */
async function commitIn(client: PoolClient, runId: string, batch: CommitBatch, now: string): Promise<CommitResult> {
  const locked = await client.query<{ last_seq: number; owner: string | null; lease_until_ms: number | null; now_ms: number }>({
    name: 'runstate_commit_lock',
    text: `SELECT last_seq, owner, (extract(epoch FROM lease_until) * 1000)::float8 AS lease_until_ms,
                  (extract(epoch FROM now()) * 1000)::float8 AS now_ms
           FROM runs WHERE run_id = $1 FOR UPDATE`,
    values: [runId],
  });
  const row = locked.rows[0];
  const run: RunAtCommit | undefined = row && { lastSeq: row.last_seq, owner: row.owner, leaseUntilMs: row.lease_until_ms };
  const seen = new Map<string, number>();
  const keys = keysToLookUp(batch);
  if (row && keys.length > 0) {
    // A statement of its own, after the lock: a concurrent commit of the same key has then either
    // committed (and this statement's snapshot sees it) or waits behind this one.
    const res = await client.query<{ event_key: string; seq: number }>(
      'SELECT event_key, seq FROM events WHERE run_id = $1 AND event_key = ANY($2::text[])',
      [runId, keys],
    );
    for (const r of res.rows) seen.set(r.event_key, r.seq);
  }
  const plan = planCommit({ runId, batch, run, seen, nowMs: row?.now_ms ?? 0, now });
  await writePlan(client, runId, plan);
  return plan.result;
}

/**
 * The rows a plan writes, as common table expressions for one statement (data-modifying CTEs,
 * all executed, in one snapshot) rather than a round trip per table: the run's row, updated
 * where `gate` holds too (`u`), then its events, outbox rows and new ledger rows, each inserted
 * only if it was. Their parameters are $1–$22 of {@link planValues}.
 */
function planWrites(gate: string, onLedgerConflict: string): string {
  return `u AS (
       UPDATE runs SET last_seq = $2,
         snapshot = COALESCE($3::text, snapshot), status = COALESCE($4::text, status),
         error = CASE WHEN $5::boolean THEN $6::text ELSE error END,
         closed_at = COALESCE($7::text, closed_at), updated_at = $8
       WHERE run_id = $1 ${gate}
       RETURNING run_id),
     e AS (INSERT INTO events (run_id, seq, body, event_key)
           SELECT $1, s, b, k FROM unnest($9::bigint[], $10::text[], $11::text[]) AS e (s, b, k)
           WHERE EXISTS (SELECT 1 FROM u)),
     o AS (INSERT INTO outbox (run_id, seq, kind, created_at)
           SELECT $1, s, k, $8 FROM unnest($12::bigint[], $13::text[]) AS o (s, k)
           WHERE EXISTS (SELECT 1 FROM u)),
     l AS (INSERT INTO ledger (run_id, stage, item_id, item, status, attempts, cost, error)
           SELECT $1, stage, item_id, item, status, attempts, cost, error
           FROM unnest($14::int[], $15::text[], $16::text[], $17::text[], $18::int[], $19::float8[], $20::text[])
             WITH ORDINALITY AS l (stage, item_id, item, status, attempts, cost, error, n)
           WHERE EXISTS (SELECT 1 FROM u)
           ORDER BY n
           ${onLedgerConflict}
           RETURNING stage, item_id)`;
}

/**
 * The plan of a commit that holds the run's row lock (the row is there, and is what the plan was
 * made on), prepared once per connection (a named query): with the lock's SELECT, BEGIN and
 * COMMIT, four round trips. An item recorded before is skipped and named in `recorded`'s
 * absence, a retried one replaces its failed row (`replaced`).
 */
const WRITE_PLAN = {
  name: 'runstate_write_plan',
  text: `WITH ${planWrites('', 'ON CONFLICT DO NOTHING')},
     r AS (UPDATE ledger SET status = x.status, attempts = x.attempts, cost = x.cost, error = x.error
           FROM unnest($23::int[], $24::text[], $25::text[], $26::int[], $27::float8[], $28::text[]) AS x (stage, item_id, status, attempts, cost, error)
           WHERE ledger.run_id = $1 AND ledger.stage = x.stage AND ledger.item_id = x.item_id AND ledger.status = 'failed'
           RETURNING ledger.stage, ledger.item_id)
   SELECT CASE WHEN cardinality($9::bigint[]) > 0 THEN pg_notify($21, $22) END AS notified,
          (SELECT COALESCE(json_agg(json_build_array(stage, item_id)), '[]'::json) FROM l)::text AS recorded,
          (SELECT COALESCE(json_agg(json_build_array(stage, item_id)), '[]'::json) FROM r)::text AS replaced`,
};

/**
 * The plan of `planAsExpected` in one autocommit statement, one round trip: the run's row is
 * updated only if it is at the expected seq, leased to the expected owner, the lease unexpired by
 * the database's clock, and every other row is written only if it was. READ COMMITTED: a
 * concurrent commit of the run holds the row until it ends, and this UPDATE then re-checks its
 * WHERE on the row that commit left, so of two commits expecting one seq one writes. A ledger
 * row already there fails the statement (no ON CONFLICT), so nothing is written either. $23 is
 * the expected seq, $24 the owner.
 */
const WRITE_IF_EXPECTED = {
  name: 'runstate_write_if_expected',
  text: `WITH ${planWrites('AND last_seq = $23 AND owner = $24 AND lease_until > now()', '')}
   SELECT EXISTS (SELECT 1 FROM u) AS written,
          CASE WHEN EXISTS (SELECT 1 FROM u) AND cardinality($9::bigint[]) > 0 THEN pg_notify($21, $22) END AS notified`,
};

/** The ledger's unique key (run, stage, item). */
const LEDGER_ITEM_KEY = 'ledger_run_id_stage_item_id_key';

/**
 * Writes an expected plan if the run is as expected: true once written, false when nothing was
 * (the run is not at that seq, not so leased, not there, or an item is recorded already), for
 * the caller to find out why in a transaction.
 */
async function writeIfExpected(client: PoolClient, runId: string, plan: ExpectedPlan): Promise<boolean> {
  try {
    const res = await client.query<{ written: boolean }>({
      ...WRITE_IF_EXPECTED,
      values: [...planValues(runId, plan, plan.ledger), plan.expected.lastSeq, plan.expected.owner],
    });
    return res.rows[0]!.written;
  } catch (err) {
    if (isUniqueViolation(err, LEDGER_ITEM_KEY)) return false;
    throw err;
  }
}

/** $1–$22 of {@link planWrites}: the run, its row's update, events, outbox rows, new ledger rows (`fresh`), and the hint. */
function planValues(runId: string, plan: CommitPlan, fresh: readonly LedgerRowToInsert[]): unknown[] {
  const u = plan.run;
  return [
    runId,
    u.lastSeq,
    u.snapshot,
    u.status,
    u.setError,
    u.error,
    u.closedAt,
    u.updatedAt,
    plan.events.map((e) => e.seq),
    plan.events.map((e) => e.body),
    plan.events.map((e) => e.key),
    plan.outbox.map((o) => o.seq),
    plan.outbox.map((o) => o.kind),
    fresh.map((l) => l.stage),
    fresh.map((l) => l.itemId),
    fresh.map((l) => l.item),
    fresh.map((l) => l.status),
    fresh.map((l) => l.attempts),
    fresh.map((l) => l.cost),
    fresh.map((l) => l.error),
    EVENTS_CHANNEL,
    `${runId}:${u.lastSeq}`,
  ];
}

async function writePlan(client: PoolClient, runId: string, plan: CommitPlan): Promise<void> {
  // A retried item replaces its failed row (retry_failed); every other entry is a new row.
  const fresh = plan.ledger.filter((l) => !l.retried);
  const retried = plan.ledger.filter((l) => l.retried);
  // The hint goes with the insert; Postgres delivers it only if the transaction commits.
  const res = await client.query<{ recorded: string; replaced: string }>({
    ...WRITE_PLAN,
    values: [
      ...planValues(runId, plan, fresh),
      retried.map((l) => l.stage),
      retried.map((l) => l.itemId),
      retried.map((l) => l.status),
      retried.map((l) => l.attempts),
      retried.map((l) => l.cost),
      retried.map((l) => l.error),
    ],
  });
  // The plan has refused an item repeated in the batch, so a new entry missing from RETURNING was
  // recorded by an earlier commit, and a retried one had no failed row to replace (or it was done).
  const row = res.rows[0]!;
  for (const [entries, written] of [[fresh, row.recorded], [retried, row.replaced]] as const) {
    const done = JSON.parse(written) as [number, string][];
    if (done.length === entries.length) continue;
    const hit = new Set(done.map(([stage, itemId]) => `${stage}\u0000${itemId}`));
    const skipped = entries.find((l) => !hit.has(`${l.stage}\u0000${l.itemId}`)) ?? entries[0]!;
    throw ledgerConflict(runId, skipped.entry);
  }
}

function isUniqueViolation(err: unknown, constraint: string): boolean {
  const e = err as { code?: string; constraint?: string };
  return e.code === UNIQUE_VIOLATION && e.constraint === constraint;
}

