// The embedded store (better-sqlite3, WAL): SQL that executes commit plans and the ownership
// queries, for one instance on one file (docs/architecture.md, "The store").
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  IdempotencyKeyTakenError,
  StoreConflictError,
  type CommandOutcome,
  type CommitBatch,
  type CommitResult,
  type QueuedCommand,
  type Item,
  type LedgerEntry,
  type NewRun,
  type RunFilter,
  type RunRecord,
  type Store,
  type StoredEvent,
} from './store.js';
import { keysToLookUp, ledgerConflict, planCommit, type RunAtCommit } from './commit-plan.js';
import { LIVE_STATUS_SQL, toLedgerEntry, toRecord, type LedgerRow, type RunRow } from './rows.js';

/** The schema, one step per version (version = index + 1); exported for the tests that open an older file. */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE runs (
     run_id       TEXT PRIMARY KEY,
     account_id   TEXT NOT NULL,
     site_id      TEXT NOT NULL,
     pipeline     TEXT NOT NULL,
     trigger      TEXT NOT NULL,
     machine_name TEXT,
     options      TEXT NOT NULL,
     status       TEXT NOT NULL,
     error        TEXT,
     snapshot     TEXT,
     last_seq     INTEGER NOT NULL DEFAULT 0,
     created_at   TEXT NOT NULL,
     updated_at   TEXT NOT NULL,
     closed_at    TEXT,
     traced_seq   INTEGER NOT NULL DEFAULT 0
   );
   CREATE INDEX runs_untraced ON runs (run_id) WHERE traced_seq < last_seq;
   CREATE INDEX runs_by_site ON runs (site_id, created_at DESC);
   CREATE INDEX runs_by_status ON runs (status);
   CREATE TABLE events (
     run_id    TEXT NOT NULL,
     seq       INTEGER NOT NULL,
     body      TEXT NOT NULL,
     event_key TEXT,
     PRIMARY KEY (run_id, seq)
   ) WITHOUT ROWID;
   CREATE UNIQUE INDEX events_by_key ON events (run_id, event_key) WHERE event_key IS NOT NULL;
   CREATE TABLE stage_items (
     run_id TEXT NOT NULL,
     stage  INTEGER NOT NULL,
     items  TEXT NOT NULL,
     PRIMARY KEY (run_id, stage)
   ) WITHOUT ROWID;
   CREATE TABLE ledger (
     position INTEGER PRIMARY KEY,
     run_id   TEXT NOT NULL,
     stage    INTEGER NOT NULL,
     item_id  TEXT NOT NULL,
     item     TEXT NOT NULL,
     status   TEXT NOT NULL,
     attempts INTEGER NOT NULL,
     cost     REAL NOT NULL,
     error    TEXT,
     UNIQUE (run_id, stage, item_id)
   );`,
  // Ownership (leases, fencing) and commands for runs another instance holds: the same schema
  // as Postgres, though with SQLite one instance is all there is.
  `ALTER TABLE runs ADD COLUMN owner TEXT;
   ALTER TABLE runs ADD COLUMN lease_until INTEGER;
   CREATE TABLE commands (
     id         INTEGER PRIMARY KEY,
     run_id     TEXT NOT NULL,
     command    TEXT NOT NULL,
     by_name    TEXT NOT NULL,
     reason     TEXT,
     created_at TEXT NOT NULL,
     taken_by   TEXT,
     outcome    TEXT,
     expired    INTEGER NOT NULL DEFAULT 0
   );
   CREATE INDEX commands_pending ON commands (run_id) WHERE taken_by IS NULL AND expired = 0;`,
  // Whether an instance of this service works the run (NewRun.hosted). The rows there are: an
  // external run, and only an external run, has a machine name.
  `ALTER TABLE runs ADD COLUMN hosted INTEGER NOT NULL DEFAULT 1;
   UPDATE runs SET hosted = 0 WHERE machine_name IS NOT NULL;`,
  // Webhooks (service/webhooks/): the outbox each commit writes with the events it reports, the
  // subscriptions, and the deliveries the sender fans the outbox out to, with each attempt; the
  // indexes retention (service/retention/) finds and deletes old runs by; and the caller's trace
  // a run's OpenTelemetry spans belong to (service/telemetry/).
  `CREATE TABLE outbox (
     id         INTEGER PRIMARY KEY,
     run_id     TEXT NOT NULL,
     seq        INTEGER NOT NULL,
     kind       TEXT NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE INDEX outbox_by_run ON outbox (run_id);
   CREATE TABLE webhooks (
     webhook_id TEXT PRIMARY KEY,
     account_id TEXT,
     site_id    TEXT,
     url        TEXT NOT NULL,
     events     TEXT NOT NULL,
     secret     TEXT NOT NULL,
     created_by TEXT NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE TABLE webhook_deliveries (
     delivery_id  TEXT PRIMARY KEY,
     webhook_id   TEXT NOT NULL,
     run_id       TEXT NOT NULL,
     seq          INTEGER NOT NULL,
     kind         TEXT NOT NULL,
     body         TEXT NOT NULL,
     status       TEXT NOT NULL DEFAULT 'pending',
     attempts     INTEGER NOT NULL DEFAULT 0,
     first_at     INTEGER NOT NULL,
     next_at      INTEGER NOT NULL,
     lease_owner  TEXT,
     lease_until  INTEGER,
     delivered_at TEXT,
     last_error   TEXT,
     created_at   TEXT NOT NULL,
     UNIQUE (webhook_id, run_id, seq)
   );
   CREATE INDEX deliveries_due ON webhook_deliveries (next_at) WHERE status = 'pending';
   CREATE INDEX deliveries_by_run ON webhook_deliveries (run_id);
   CREATE INDEX deliveries_by_webhook ON webhook_deliveries (webhook_id, created_at);
   CREATE TABLE webhook_attempts (
     delivery_id TEXT NOT NULL,
     attempt     INTEGER NOT NULL,
     at          TEXT NOT NULL,
     status_code INTEGER,
     error       TEXT,
     duration_ms REAL NOT NULL,
     PRIMARY KEY (delivery_id, attempt)
   ) WITHOUT ROWID;
   CREATE INDEX commands_by_run ON commands (run_id);
   CREATE INDEX runs_by_updated ON runs (updated_at);
   ALTER TABLE runs ADD COLUMN trace_parent TEXT;`,
  // Idempotent starts (docs/api.md): one row per key and scope, written with the run it made.
  `CREATE TABLE idempotency_keys (
     scope       TEXT NOT NULL,
     key         TEXT NOT NULL,
     fingerprint TEXT NOT NULL,
     run_id      TEXT NOT NULL,
     created_ms  INTEGER NOT NULL,
     PRIMARY KEY (scope, key)
   ) WITHOUT ROWID;
   CREATE INDEX idempotency_keys_by_run ON idempotency_keys (run_id);`,
  // The runs an instance holds, read from the index alone: renewing thousands of leases must
  // not read every wide run row (docs/architecture.md, "ownership").
  `CREATE INDEX runs_by_owner ON runs (owner, lease_until, status, run_id);`,
  // Leases in a narrow table of their own: renewing one rewrote the whole run row (its snapshot
  // spills to overflow pages) and its index, 400–770 ms for 10,000 runs. Live runs keep theirs;
  // a run deleted (retention) takes its lease with it (docs/architecture.md, "ownership").
  // Whether a leased run is live is read from the narrow index runs_status_by_id, not the row.
  `CREATE TABLE run_leases (
     run_id      TEXT PRIMARY KEY,
     owner       TEXT NOT NULL,
     lease_until INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE INDEX run_leases_by_owner ON run_leases (owner, lease_until);
   CREATE INDEX runs_status_by_id ON runs (run_id, status);
   INSERT INTO run_leases (run_id, owner, lease_until)
     SELECT run_id, owner, lease_until FROM runs
      WHERE owner IS NOT NULL AND lease_until IS NOT NULL AND ${LIVE_STATUS_SQL};
   DROP INDEX runs_by_owner;
   ALTER TABLE runs DROP COLUMN owner;
   ALTER TABLE runs DROP COLUMN lease_until;
   CREATE TRIGGER runs_drop_lease AFTER DELETE ON runs BEGIN
     DELETE FROM run_leases WHERE run_id = OLD.run_id;
   END;`,
];

/** The run's row with its lease's owner, as `toRecord` reads it. */
const RUN_SELECT = 'SELECT r.*, l.owner FROM runs r LEFT JOIN run_leases l ON l.run_id = r.run_id';

/**
 * How many leases one statement of `renewLeases` renews before it lets the event loop go on:
 * a narrow lease row is cheap to rewrite, so a chunk bounds only a very large holding.
 */
const RENEW_CHUNK = 1_000;

export interface SqliteStoreOptions {
  /** Database file; `:memory:` for a private in-memory store. */
  filename: string;
}

/**
 * The embedded default. better-sqlite3 is synchronous, so every method does its work in
 * one transaction before the returned promise resolves; WAL lets readers run beside the writer.
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly #db: Database.Database;
  readonly #stmt;
  readonly #commitTx;

  constructor(options: SqliteStoreOptions) {
    if (options.filename !== ':memory:') mkdirSync(dirname(options.filename), { recursive: true });
    this.#db = new Database(options.filename);
    // Before WAL and before any table, or it does not take: a new file can give back the pages
    // retention frees (service/retention/); an older file is converted once by the sweep's VACUUM.
    this.#db.pragma('auto_vacuum = INCREMENTAL');
    this.#db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: a commit survives a process crash; only an OS crash may lose the last ones.
    this.#db.pragma('synchronous = NORMAL');
    this.#db.pragma('busy_timeout = 5000');
    this.#migrate();
    const db = this.#db;
    this.#stmt = {
      insertRun: db.prepare(
        `INSERT INTO runs (run_id, account_id, site_id, pipeline, trigger, machine_name, hosted, options, status, created_at, updated_at, trace_parent)
         VALUES (@run_id, @account_id, @site_id, @pipeline, @trigger, @machine_name, @hosted, @options, 'idle', @created_at, @created_at, @trace_parent)`,
      ),
      insertLease: db.prepare(
        `INSERT INTO run_leases (run_id, owner, lease_until) VALUES (?, ?, ?)
         ON CONFLICT (run_id) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until`,
      ),
      getRun: db.prepare<[string], RunRow>(`${RUN_SELECT} WHERE r.run_id = ?`),
      runsIn: db.prepare<[string], RunRow>(`${RUN_SELECT} WHERE r.run_id IN (SELECT value FROM json_each(?)) ORDER BY r.created_at, r.run_id`),
      runAtCommit: db.prepare<[string], { last_seq: number; owner: string | null; lease_until: number | null }>(
        'SELECT r.last_seq, l.owner, l.lease_until FROM runs r LEFT JOIN run_leases l ON l.run_id = r.run_id WHERE r.run_id = ?',
      ),
      updateRun: db.prepare(
        `UPDATE runs SET last_seq = @last_seq,
           snapshot = COALESCE(@snapshot, snapshot), status = COALESCE(@status, status),
           error = CASE WHEN @set_error THEN @error ELSE error END,
           closed_at = COALESCE(@closed_at, closed_at), updated_at = @updated_at
         WHERE run_id = @run_id`,
      ),
      insertEvent: db.prepare('INSERT INTO events (run_id, seq, body, event_key) VALUES (?, ?, ?, ?)'),
      insertOutbox: db.prepare('INSERT INTO outbox (run_id, seq, kind, created_at) VALUES (?, ?, ?, ?)'),
      seqByKey: db.prepare<[string, string], { seq: number }>('SELECT seq FROM events WHERE run_id = ? AND event_key = ?'),
      readEvents: db.prepare<[string, number, number], { body: string }>(
        'SELECT body FROM events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?',
      ),
      insertLedger: db.prepare(
        `INSERT INTO ledger (run_id, stage, item_id, item, status, attempts, cost, error)
         VALUES (@run_id, @stage, @item_id, @item, @status, @attempts, @cost, @error)
         ON CONFLICT DO NOTHING`,
      ),
      retryLedger: db.prepare(
        `UPDATE ledger SET status = @status, attempts = @attempts, cost = @cost, error = @error
         WHERE run_id = @run_id AND stage = @stage AND item_id = @item_id AND status = 'failed'`,
      ),
      ledger: db.prepare<[string], LedgerRow>(
        'SELECT item, stage, status, attempts, cost, error FROM ledger WHERE run_id = ? ORDER BY position',
      ),
      stageLedger: db.prepare<[string, number], LedgerRow>(
        'SELECT item, stage, status, attempts, cost, error FROM ledger WHERE run_id = ? AND stage = ? ORDER BY position',
      ),
      markTraced: db.prepare('UPDATE runs SET traced_seq = MAX(traced_seq, ?) WHERE run_id = ?'),
      untraced: db.prepare<[], RunRow>(`${RUN_SELECT} WHERE r.traced_seq < r.last_seq ORDER BY r.created_at`),
      insertItems: db.prepare('INSERT INTO stage_items (run_id, stage, items) VALUES (?, ?, ?) ON CONFLICT DO NOTHING'),
      getItems: db.prepare<[string, number], { items: string }>('SELECT items FROM stage_items WHERE run_id = ? AND stage = ?'),
    };
    // Executes the plan of commit-plan.ts. Run with `.immediate` (BEGIN IMMEDIATE): the write lock
    // is taken before the run's row is read, so nothing writes between that read and the plan.
    this.#commitTx = db.transaction((runId: string, batch: CommitBatch, now: string): CommitResult => {
      const row = this.#stmt.runAtCommit.get(runId);
      const run: RunAtCommit | undefined = row && { lastSeq: row.last_seq, owner: row.owner, leaseUntilMs: row.lease_until };
      const seen = new Map<string, number>();
      if (row) {
        for (const key of keysToLookUp(batch)) {
          const hit = this.#stmt.seqByKey.get(runId, key);
          if (hit) seen.set(key, hit.seq);
        }
      }
      const plan = planCommit({ runId, batch, run, seen, nowMs: Date.now(), now });
      this.#stmt.updateRun.run({
        run_id: runId,
        last_seq: plan.run.lastSeq,
        snapshot: plan.run.snapshot,
        status: plan.run.status,
        set_error: plan.run.setError ? 1 : 0,
        error: plan.run.error,
        closed_at: plan.run.closedAt,
        updated_at: plan.run.updatedAt,
      });
      for (const e of plan.events) this.#stmt.insertEvent.run(runId, e.seq, e.body, e.key);
      for (const o of plan.outbox) this.#stmt.insertOutbox.run(runId, o.seq, o.kind, now);
      for (const l of plan.ledger) {
        const row = { run_id: runId, stage: l.stage, item_id: l.itemId, status: l.status, attempts: l.attempts, cost: l.cost, error: l.error };
        // A retried item replaces its failed row; any other is new, once.
        const res = l.retried ? this.#stmt.retryLedger.run(row) : this.#stmt.insertLedger.run({ ...row, item: l.item });
        if (res.changes === 0) throw ledgerConflict(runId, l.entry);
      }
      return plan.result;
    });
  }

  /** The connection, for the tables of service/webhooks/, service/retention/ and service/workers/ (jobs-sqlite.ts), which keep their SQL there. */
  get connection(): Database.Database {
    return this.#db;
  }

  #migrate(): void {
    this.#db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)');
    const applied = new Set(
      this.#db.prepare<[], { version: number }>('SELECT version FROM schema_migrations').all().map((r) => r.version),
    );
    MIGRATIONS.forEach((sql, i) => {
      const version = i + 1;
      if (applied.has(version)) return;
      this.#db.transaction(() => {
        this.#db.exec(sql);
        this.#db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(version, new Date().toISOString());
      })();
    });
  }

  async createRun(run: NewRun): Promise<RunRecord> {
    const claim = run.idempotency;
    if (!claim) {
      this.#db.transaction(() => this.#insertRun(run))();
    } else {
      this.#db.transaction(() => {
        this.#db.prepare('DELETE FROM idempotency_keys WHERE scope = ? AND key = ? AND created_ms <= ?').run(claim.scope, claim.key, claim.atMs - claim.windowMs);
        try {
          this.#db
            .prepare('INSERT INTO idempotency_keys (scope, key, fingerprint, run_id, created_ms) VALUES (?, ?, ?, ?, ?)')
            .run(claim.scope, claim.key, claim.fingerprint, run.runId, claim.atMs);
        } catch (err) {
          if ((err as { code?: string }).code !== 'SQLITE_CONSTRAINT_PRIMARYKEY') throw err;
          const held = this.#db
            .prepare<[string, string], { run_id: string; fingerprint: string }>('SELECT run_id, fingerprint FROM idempotency_keys WHERE scope = ? AND key = ?')
            .get(claim.scope, claim.key)!;
          throw new IdempotencyKeyTakenError(held.run_id, held.fingerprint);
        }
        this.#insertRun(run);
      })();
    }
    return toRecord(this.#stmt.getRun.get(run.runId)!);
  }

  #insertRun(run: NewRun): void {
    try {
      this.#stmt.insertRun.run({
        run_id: run.runId,
        account_id: run.accountId,
        site_id: run.siteId,
        pipeline: run.pipeline,
        trigger: run.trigger,
        machine_name: run.machineName ?? null,
        hosted: run.hosted === false ? 0 : 1,
        options: JSON.stringify(run.options),
        created_at: run.createdAt,
        trace_parent: run.traceParent ?? null,
      });
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
        throw new StoreConflictError(`run ${run.runId} already exists`);
      }
      throw err;
    }
    if (run.lease) this.#stmt.insertLease.run(run.runId, run.lease.owner, Date.now() + run.lease.ms);
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    const row = this.#stmt.getRun.get(runId);
    return row ? toRecord(row) : undefined;
  }

  async listRuns(filter: RunFilter): Promise<RunRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.siteIds) {
      if (filter.siteIds.length === 0) return [];
      where.push(`r.site_id IN (${filter.siteIds.map(() => '?').join(', ')})`);
      params.push(...filter.siteIds);
    }
    if (filter.status !== undefined) {
      where.push('r.status = ?');
      params.push(filter.status);
    }
    if (filter.open) where.push('r.closed_at IS NULL');
    if (filter.before) {
      where.push('(r.created_at < ? OR (r.created_at = ? AND r.run_id < ?))');
      params.push(filter.before.createdAt, filter.before.createdAt, filter.before.runId);
    }
    const sql = `${RUN_SELECT} ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
                 ORDER BY r.created_at DESC, r.run_id DESC LIMIT ?`;
    params.push(filter.limit ?? 100);
    return this.#db.prepare<unknown[], RunRow>(sql).all(...params).map(toRecord);
  }

  async countRunsByStatus(): Promise<Record<string, number>> {
    const rows = this.#db.prepare<[], { status: string; n: number }>('SELECT status, COUNT(*) AS n FROM runs GROUP BY status').all();
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  async commit(runId: string, batch: CommitBatch): Promise<CommitResult> {
    return this.#commitTx.immediate(runId, batch, new Date().toISOString());
  }

  async eventKeys(runId: string): Promise<Map<string, number>> {
    const rows = this.#db
      .prepare<[string], { event_key: string; seq: number }>('SELECT event_key, seq FROM events WHERE run_id = ? AND event_key IS NOT NULL')
      .all(runId);
    return new Map(rows.map((r) => [r.event_key, r.seq]));
  }

  async readEvents(runId: string, afterSeq: number, limit = 10_000): Promise<StoredEvent[]> {
    return this.#stmt.readEvents.all(runId, afterSeq, limit).map((r) => JSON.parse(r.body) as StoredEvent);
  }

  async saveStageItems(runId: string, stage: number, items: readonly Item[]): Promise<Item[]> {
    return this.#db.transaction(() => {
      this.#stmt.insertItems.run(runId, stage, JSON.stringify(items));
      return JSON.parse(this.#stmt.getItems.get(runId, stage)!.items) as Item[];
    })();
  }

  async getStageItems(runId: string, stage: number): Promise<Item[] | undefined> {
    const row = this.#stmt.getItems.get(runId, stage);
    return row ? (JSON.parse(row.items) as Item[]) : undefined;
  }

  async ledger(runId: string, stage?: number): Promise<LedgerEntry[]> {
    const rows = stage === undefined ? this.#stmt.ledger.all(runId) : this.#stmt.stageLedger.all(runId, stage);
    return rows.map(toLedgerEntry);
  }

  async markTraced(runId: string, seq: number): Promise<void> {
    this.#stmt.markTraced.run(seq, runId);
  }

  async listUntraced(): Promise<RunRecord[]> {
    return this.#stmt.untraced.all().map(toRecord);
  }

  async claimRuns(owner: string, leaseMs: number, limit: number, opts: { all?: boolean } = {}): Promise<RunRecord[]> {
    const now = Date.now();
    // `WHERE true`: SQLite's upsert after a SELECT needs a WHERE to parse its ON CONFLICT.
    const claimed = this.#db
      .prepare<unknown[], { run_id: string }>(
        `INSERT INTO run_leases (run_id, owner, lease_until)
         SELECT run_id, ?, ? FROM (
           SELECT r.run_id FROM runs r LEFT JOIN run_leases l ON l.run_id = r.run_id
            WHERE ${LIVE_STATUS_SQL} AND r.hosted = 1
              AND (? OR l.run_id IS NULL OR l.lease_until <= ?)
            ORDER BY r.created_at LIMIT ?) WHERE true
         ON CONFLICT (run_id) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
         RETURNING run_id`,
      )
      .all(owner, now + leaseMs, opts.all ? 1 : 0, now, limit);
    return claimed.length === 0 ? [] : this.#runsIn(claimed.map((r) => r.run_id));
  }

  async leaseFinishedRun(runId: string, owner: string, leaseMs: number): Promise<RunRecord | undefined> {
    const now = Date.now();
    const leased = this.#db
      .prepare<unknown[], { run_id: string }>(
        `INSERT INTO run_leases (run_id, owner, lease_until)
         SELECT r.run_id, ?, ? FROM runs r LEFT JOIN run_leases l ON l.run_id = r.run_id
          WHERE r.run_id = ? AND r.hosted = 1 AND r.status = 'completed' AND r.closed_at IS NULL
            AND (l.run_id IS NULL OR l.owner = ? OR l.lease_until <= ?)
         ON CONFLICT (run_id) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
         RETURNING run_id`,
      )
      .get(owner, now + leaseMs, runId, owner, now);
    return leased ? this.getRun(runId) : undefined;
  }

  /**
   * Renews in chunks of `RENEW_CHUNK` leases, yielding between them (10,000 narrow rows take tens
   * of ms; docs/operations.md, "ownership"). Each chunk takes leases of live runs that do not yet
   * reach as far as this renewal's (`reach`) and sets them to reach at least that far. The answer
   * is read after the last chunk: every lease that reaches that far, of a run the chunks found live
   * or that is live now, so a run leased here between two chunks (a start, a claim) counts as held.
   * Reading it from the lease index alone keeps the last block as short as a chunk. The owner's
   * expired leases of runs that are done (or gone) are deleted on the way: nobody renews them.
   */
  async renewLeases(owner: string, leaseMs: number): Promise<string[]> {
    const reach = Date.now() + leaseMs;
    const live = `EXISTS (SELECT 1 FROM runs r WHERE r.run_id = run_leases.run_id AND ${LIVE_STATUS_SQL})`;
    const chunk = this.#db
      .prepare<[number, string, number, number, number], string>(
        `UPDATE run_leases SET lease_until = ? WHERE run_id IN (
           SELECT run_id FROM run_leases
            WHERE owner = ? AND lease_until > ? AND lease_until < ? AND ${live}
            LIMIT ?)
         RETURNING run_id`,
      )
      .pluck();
    const renewed = new Set<string>();
    for (;;) {
      const now = Date.now();
      const ids = chunk.all(Math.max(reach, now + leaseMs), owner, now, reach, RENEW_CHUNK);
      for (const id of ids) renewed.add(id);
      if (ids.length < RENEW_CHUNK) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.#db.prepare(`DELETE FROM run_leases WHERE owner = ? AND lease_until <= ? AND NOT ${live}`).run(owner, Date.now());
    const isLive = this.#db.prepare<[string], number>(`SELECT 1 FROM runs WHERE run_id = ? AND ${LIVE_STATUS_SQL}`).pluck();
    return this.#db
      .prepare<[string, number], string>('SELECT run_id FROM run_leases WHERE owner = ? AND lease_until >= ?')
      .pluck()
      .all(owner, reach)
      .filter((id) => renewed.has(id) || isLive.get(id) !== undefined);
  }

  async releaseLeases(owner: string, runIds?: readonly string[]): Promise<void> {
    if (runIds === undefined) {
      this.#db.prepare('DELETE FROM run_leases WHERE owner = ?').run(owner);
      return;
    }
    const release = this.#db.prepare('DELETE FROM run_leases WHERE owner = ? AND run_id = ?');
    this.#db.transaction(() => runIds.forEach((id) => release.run(owner, id)))();
  }

  #runsIn(runIds: readonly string[]): RunRecord[] {
    return this.#stmt.runsIn.all(JSON.stringify(runIds)).map(toRecord);
  }

  async enqueueCommand(cmd: { runId: string; command: string; by: string; reason?: string | undefined }): Promise<number> {
    const res = this.#db
      .prepare('INSERT INTO commands (run_id, command, by_name, reason, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(cmd.runId, cmd.command, cmd.by, cmd.reason ?? null, new Date().toISOString());
    return Number(res.lastInsertRowid);
  }

  async takeCommands(owner: string): Promise<QueuedCommand[]> {
    return this.#db
      .prepare<[string, string], { id: number; run_id: string; command: string; by_name: string; reason: string | null }>(
        `UPDATE commands SET taken_by = ?
         WHERE taken_by IS NULL AND expired = 0 AND run_id IN (SELECT run_id FROM run_leases WHERE owner = ?)
         RETURNING id, run_id, command, by_name, reason`,
      )
      .all(owner, owner)
      .sort((a, b) => a.id - b.id)
      .map((r) => ({ id: r.id, runId: r.run_id, command: r.command, by: r.by_name, reason: r.reason }));
  }

  async finishCommand(id: number, outcome: CommandOutcome): Promise<void> {
    this.#db.prepare('UPDATE commands SET outcome = ? WHERE id = ?').run(JSON.stringify(outcome), id);
  }

  async commandOutcome(id: number): Promise<CommandOutcome | 'pending' | 'expired'> {
    const row = this.#db.prepare<[number], { outcome: string | null; expired: number }>('SELECT outcome, expired FROM commands WHERE id = ?').get(id);
    if (!row || row.expired) return 'expired';
    return row.outcome === null ? 'pending' : (JSON.parse(row.outcome) as CommandOutcome);
  }

  async expireCommand(id: number): Promise<boolean> {
    return this.#db.prepare('UPDATE commands SET expired = 1 WHERE id = ? AND taken_by IS NULL').run(id).changes > 0;
  }

  async ping(): Promise<void> {
    this.#db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}

