// Limits in Postgres, shared by every instance of one database: a row per key holds the
// bucket's next-token time, taken by one UPDATE whose condition and arithmetic run in SQL on
// the database's clock; a key's concurrency is leased slot rows, so an instance that dies
// (and stops renewing) never keeps a slot past its lease.
import type { Pool } from 'pg';
import { inTransaction } from '../store/pg-connection.js';
import type { LimitStore, LimitUsage } from './store.js';

// A migration list of its own (schema_migrations_limits), applied under its own advisory lock.
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE limit_buckets (
     key      TEXT COLLATE "C" PRIMARY KEY,
     next_at  DOUBLE PRECISION NOT NULL
   );
   CREATE TABLE limit_slots (
     key          TEXT COLLATE "C" NOT NULL,
     slot         INTEGER NOT NULL,
     holder       TEXT,
     lease_until  TIMESTAMPTZ,
     PRIMARY KEY (key, slot)
   );
   CREATE INDEX limit_slots_by_holder ON limit_slots (holder) WHERE holder IS NOT NULL;
   CREATE TABLE limit_usage (
     key         TEXT COLLATE "C" NOT NULL,
     instance    TEXT NOT NULL,
     waiting     INTEGER NOT NULL,
     in_flight   INTEGER NOT NULL,
     updated_at  TIMESTAMPTZ NOT NULL,
     PRIMARY KEY (key, instance)
   );`,
];

const MIGRATION_LOCK = 7_262_111_906_245_441_548n; // the runs schema's lock + 12
/** The database's clock in epoch ms; `clock_timestamp()` so a statement that waited on a row lock reads the time it runs at. */
const NOW_MS = `(extract(epoch FROM clock_timestamp()) * 1000)`;
/** A published count older than this is an instance that has gone. */
const USAGE_FRESH = `interval '10 seconds'`;

export class PostgresLimitStore implements LimitStore {
  readonly #pool: Pool;
  /** Keys whose bucket row, and how many slot rows, exist already. */
  readonly #buckets = new Set<string>();
  readonly #slots = new Map<string, number>();

  private constructor(pool: Pool) {
    this.#pool = pool;
  }

  static async open(pool: Pool): Promise<PostgresLimitStore> {
    await inTransaction(pool, async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK.toString()]);
      await client.query('CREATE TABLE IF NOT EXISTS schema_migrations_limits (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)');
      const applied = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations_limits')).rows.map((r) => r.version));
      for (const [i, sql] of MIGRATIONS.entries()) {
        if (applied.has(i + 1)) continue;
        await client.query(sql);
        await client.query('INSERT INTO schema_migrations_limits (version, applied_at) VALUES ($1, $2)', [i + 1, new Date().toISOString()]);
      }
    });
    return new PostgresLimitStore(pool);
  }

  async takeToken(key: string, spacingMs: number): Promise<number> {
    if (!this.#buckets.has(key)) {
      await this.#pool.query('INSERT INTO limit_buckets (key, next_at) VALUES ($1, 0) ON CONFLICT (key) DO NOTHING', [key]);
      this.#buckets.add(key);
    }
    // The row lock orders takers of one key across instances; the condition is checked again,
    // with the clock read again, after a wait for it.
    const { rows } = await this.#pool.query<{ wait: number }>(
      `WITH taken AS (
         UPDATE limit_buckets SET next_at = GREATEST(next_at, ${NOW_MS}) + $2
          WHERE key = $1 AND next_at <= ${NOW_MS}
         RETURNING 0::float8 AS wait
       )
       SELECT wait FROM taken
       UNION ALL
       SELECT GREATEST(1, next_at - ${NOW_MS}) FROM limit_buckets WHERE key = $1 AND NOT EXISTS (SELECT 1 FROM taken)`,
      [key, spacingMs],
    );
    return Number(rows[0]?.wait ?? spacingMs);
  }

  async takeSlot(key: string, size: number, holder: string, leaseMs: number): Promise<boolean> {
    if ((this.#slots.get(key) ?? 0) < size) {
      await this.#pool.query('INSERT INTO limit_slots (key, slot) SELECT $1, g FROM generate_series(0, $2 - 1) g ON CONFLICT DO NOTHING', [key, size]);
      this.#slots.set(key, size);
    }
    const { rowCount } = await this.#pool.query(
      `UPDATE limit_slots SET holder = $3, lease_until = clock_timestamp() + $4 * interval '1 millisecond'
        WHERE key = $1 AND slot = (
          SELECT slot FROM limit_slots
           WHERE key = $1 AND slot < $2 AND (holder IS NULL OR lease_until < clock_timestamp())
           ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED)`,
      [key, size, holder, leaseMs],
    );
    return rowCount === 1;
  }

  async releaseSlot(key: string, holder: string): Promise<void> {
    await this.#pool.query('UPDATE limit_slots SET holder = NULL, lease_until = NULL WHERE key = $1 AND holder = $2', [key, holder]);
  }

  async renewSlots(holders: readonly string[], leaseMs: number): Promise<void> {
    if (holders.length === 0) return;
    await this.#pool.query(`UPDATE limit_slots SET lease_until = clock_timestamp() + $2 * interval '1 millisecond' WHERE holder = ANY($1::text[])`, [holders, leaseMs]);
  }

  async publish(instance: string, usage: ReadonlyMap<string, LimitUsage>): Promise<void> {
    const keys = [...usage.keys()];
    if (keys.length === 0) return;
    await this.#pool.query(
      `INSERT INTO limit_usage (key, instance, waiting, in_flight, updated_at)
       SELECT k, $2, w, f, clock_timestamp() FROM unnest($1::text[], $3::int[], $4::int[]) AS u(k, w, f)
       ON CONFLICT (key, instance) DO UPDATE SET waiting = EXCLUDED.waiting, in_flight = EXCLUDED.in_flight, updated_at = EXCLUDED.updated_at`,
      [keys, instance, keys.map((k) => usage.get(k)!.waiting), keys.map((k) => usage.get(k)!.inFlight)],
    );
  }

  async othersUsage(instance: string): Promise<Map<string, LimitUsage>> {
    const { rows } = await this.#pool.query<{ key: string; waiting: string; in_flight: string }>(
      `SELECT key, sum(waiting) AS waiting, sum(in_flight) AS in_flight FROM limit_usage
        WHERE instance <> $1 AND updated_at > clock_timestamp() - ${USAGE_FRESH} GROUP BY key`,
      [instance],
    );
    return new Map(rows.map((r) => [r.key, { waiting: Number(r.waiting), inFlight: Number(r.in_flight) }]));
  }

  async close(): Promise<void> {
    // The pool is the run store's; it closes it.
  }
}
