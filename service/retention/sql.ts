// The SQL of retention on both stores. SQLite: one instance, short write transactions, freed
// pages given back with incremental_vacuum. Postgres: rows locked with SKIP LOCKED and only
// rows of runs that are not live, so a sweep never waits on, nor blocks, a run at work.
import type Database from 'better-sqlite3';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { LIVE_STATUS_SQL } from '../store/rows.js';
import type { ExpiredRun, RetentionStore } from './types.js';

/** Closed, or finished and not live; `updated_at` before the cutoff (`?`/`$n` supplied by the caller). */
const EXPIRED_SQL = `((closed_at IS NOT NULL OR status IN ('completed', 'cancelled')) AND NOT (${LIVE_STATUS_SQL} AND closed_at IS NULL))`;

/** Tables keyed by run_id that go with the run, children first. */
// A deleted run takes with it everything kept by its id, its idempotency key included.
const RUN_TABLES = ['events', 'ledger', 'stage_items', 'commands', 'outbox', 'idempotency_keys'] as const;

/**
 * Tables keyed by run_id that another module creates when it starts (worker jobs:
 * service/store/jobs-*.ts): deleted with the run where they exist, so a store opened without
 * them (a test, a tool) sweeps as well.
 */
const OPTIONAL_RUN_TABLES = ['worker_jobs'] as const;

interface ExpiredRow {
  run_id: string;
  account_id: string;
  site_id: string;
}

const toExpired = (r: ExpiredRow): ExpiredRun => ({ runId: r.run_id, accountId: r.account_id, siteId: r.site_id });

export function sqliteRetentionStore(db: Database.Database, logger: Logger): RetentionStore {
  const expired = db.prepare<[string, number], ExpiredRow>(
    `SELECT run_id, account_id, site_id FROM runs WHERE ${EXPIRED_SQL} AND updated_at < ? ORDER BY updated_at LIMIT ?`,
  );
  const still = db.prepare<[string, string], { run_id: string }>(`SELECT run_id FROM runs WHERE run_id = ? AND ${EXPIRED_SQL} AND updated_at < ?`);
  const deletes = [
    db.prepare('DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT delivery_id FROM webhook_deliveries WHERE run_id = ?)'),
    db.prepare('DELETE FROM webhook_deliveries WHERE run_id = ?'),
    ...RUN_TABLES.map((t) => db.prepare(`DELETE FROM ${t} WHERE run_id = ?`)),
    db.prepare('DELETE FROM runs WHERE run_id = ?'),
  ];
  const hasTable = db.prepare<[string], { name: string }>(`SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?`);
  const optional = new Map<string, Database.Statement<[string]>>();
  const optionalDeletes = (): Database.Statement<[string]>[] =>
    OPTIONAL_RUN_TABLES.flatMap((t) => {
      if (!optional.has(t) && hasTable.get(t)) optional.set(t, db.prepare<[string]>(`DELETE FROM ${t} WHERE run_id = ?`));
      return optional.get(t) ?? [];
    });
  const deleteTx = db.transaction((runIds: readonly string[], cutoff: string): string[] => {
    const done: string[] = [];
    const all = [...optionalDeletes(), ...deletes];
    for (const id of runIds) {
      if (!still.get(id, cutoff)) continue;
      for (const d of all) d.run(id);
      done.push(id);
    }
    return done;
  });
  let converted = false;
  return {
    async expired(cutoff, limit) {
      return expired.all(cutoff, limit).map(toExpired);
    },
    async deleteRuns(runIds, cutoff) {
      return deleteTx.immediate(runIds, cutoff);
    },
    async reclaim() {
      if (!converted && db.pragma('auto_vacuum', { simple: true }) !== 2) {
        // A file made before auto_vacuum was set: one VACUUM turns it on (it rewrites the file once).
        const started = performance.now();
        db.pragma('auto_vacuum = INCREMENTAL');
        db.exec('VACUUM');
        logger.info({ ms: Math.round(performance.now() - started) }, 'database converted to incremental auto-vacuum');
      }
      converted = true;
      // Freed pages go back to the file system a bounded number at a time, so a write waits little.
      db.pragma('incremental_vacuum(2000)');
      // The WAL holds the pages the deletes wrote; a truncating checkpoint gives that back too.
      db.pragma('wal_checkpoint(TRUNCATE)');
    },
  };
}

export function postgresRetentionStore(pool: Pool): RetentionStore {
  return {
    async expired(cutoff, limit) {
      const res = await pool.query<ExpiredRow>(
        `SELECT run_id, account_id, site_id FROM runs WHERE ${EXPIRED_SQL} AND updated_at < $1 ORDER BY updated_at LIMIT $2`,
        [cutoff, limit],
      );
      return res.rows.map(toExpired);
    },
    async deleteRuns(runIds, cutoff) {
      const client = await pool.connect();
      let broken: Error | undefined;
      try {
        await client.query('BEGIN');
        // SKIP LOCKED: a run row some instance is writing right now (a close, a late command) is
        // left for the next sweep rather than waited on.
        const locked = await client.query<{ run_id: string }>(
          `SELECT run_id FROM runs WHERE run_id = ANY($1::text[]) AND ${EXPIRED_SQL} AND updated_at < $2 FOR UPDATE SKIP LOCKED`,
          [[...runIds], cutoff],
        );
        const ids = locked.rows.map((r) => r.run_id);
        if (ids.length > 0) {
          await client.query('DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT delivery_id FROM webhook_deliveries WHERE run_id = ANY($1::text[]))', [ids]);
          await client.query('DELETE FROM webhook_deliveries WHERE run_id = ANY($1::text[])', [ids]);
          for (const t of OPTIONAL_RUN_TABLES) {
            const there = await client.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [t]);
            if (there.rows[0]?.t) await client.query(`DELETE FROM ${t} WHERE run_id = ANY($1::text[])`, [ids]);
          }
          for (const t of RUN_TABLES) await client.query(`DELETE FROM ${t} WHERE run_id = ANY($1::text[])`, [ids]);
          await client.query('DELETE FROM runs WHERE run_id = ANY($1::text[])', [ids]);
        }
        await client.query('COMMIT');
        return ids;
      } catch (err) {
        await client.query('ROLLBACK').catch((e: unknown) => {
          broken = e as Error;
        });
        throw err;
      } finally {
        client.release(broken);
      }
    },
    async reclaim() {
      // Autovacuum reuses the space; VACUUM FULL would lock the tables, which a sweep must not do.
    },
  };
}
