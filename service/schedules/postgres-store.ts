// The schedule tables on Postgres, shared by every instance. A fire is claimed by the
// conditional UPDATE of its schedule's `last_fire_at` (the row lock makes a second claimer wait,
// then find the condition false) and the fire's primary key (schedule_id, fire_at).
import type { Pool } from 'pg';
import { inTransaction } from '../store/pg-connection.js';
import type { ScheduleStore } from './types.js';
import { groupFires, scheduleParams, toFire, toSchedule, type FireRow, type ScheduleRow } from './rows.js';

// A migration list of its own (schema_migrations_schedules), applied under its own advisory lock.
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE schedules (
     schedule_id   TEXT COLLATE "C" PRIMARY KEY,
     account_id    TEXT NOT NULL,
     site_id       TEXT NOT NULL,
     pipeline      TEXT NOT NULL,
     options       TEXT NOT NULL,
     cron          TEXT NOT NULL,
     timezone      TEXT NOT NULL,
     overlap       TEXT NOT NULL,
     status        TEXT NOT NULL,
     created_by    TEXT NOT NULL,
     created_at    TEXT NOT NULL,
     last_fire_at  BIGINT NOT NULL
   );
   CREATE INDEX schedules_by_site ON schedules (site_id, created_at);
   CREATE TABLE schedule_fires (
     schedule_id TEXT COLLATE "C" NOT NULL,
     fire_at     BIGINT NOT NULL,
     state       TEXT NOT NULL,
     run_id      TEXT,
     error       TEXT,
     claimed_by  TEXT NOT NULL,
     claimed_at  BIGINT NOT NULL,
     PRIMARY KEY (schedule_id, fire_at)
   );
   CREATE INDEX schedule_fires_claimed ON schedule_fires (claimed_at) WHERE state = 'claimed';`,
];

const MIGRATION_LOCK = '8246985316257785188'; // 'rs-sched' in ASCII

async function migrate(pool: Pool): Promise<void> {
  await inTransaction(pool, async (c) => {
    await c.query('SELECT pg_advisory_xact_lock($1::bigint)', [MIGRATION_LOCK]);
    await c.query('CREATE TABLE IF NOT EXISTS schema_migrations_schedules (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)');
    const applied = new Set((await c.query<{ version: number }>('SELECT version FROM schema_migrations_schedules')).rows.map((r) => r.version));
    for (const [i, sql] of MIGRATIONS.entries()) {
      if (applied.has(i + 1)) continue;
      await c.query(sql);
      await c.query('INSERT INTO schema_migrations_schedules (version, applied_at) VALUES ($1, $2)', [i + 1, new Date().toISOString()]);
    }
  });
}

export async function postgresScheduleStore(pool: Pool): Promise<ScheduleStore> {
  await migrate(pool);
  const one = async (id: string) => {
    const res = await pool.query<ScheduleRow>('SELECT * FROM schedules WHERE schedule_id = $1', [id]);
    return res.rows[0] ? toSchedule(res.rows[0]) : undefined;
  };
  return {
    async create(s) {
      await pool.query(
        `INSERT INTO schedules (schedule_id, account_id, site_id, pipeline, options, cron, timezone, overlap, status, created_by, created_at, last_fire_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
        scheduleParams(s),
      );
    },
    get: one,
    async list(filter) {
      const res = await pool.query<ScheduleRow>(
        'SELECT * FROM schedules WHERE ($1::text[] IS NULL OR site_id = ANY($1::text[])) ORDER BY created_at, schedule_id',
        [filter.siteIds === undefined ? null : [...filter.siteIds]],
      );
      return res.rows.map(toSchedule);
    },
    async active() {
      return (await pool.query<ScheduleRow>("SELECT * FROM schedules WHERE status = 'active'")).rows.map(toSchedule);
    },
    async remove(id) {
      return inTransaction(pool, async (c) => {
        await c.query('DELETE FROM schedule_fires WHERE schedule_id = $1', [id]);
        return ((await c.query('DELETE FROM schedules WHERE schedule_id = $1', [id])).rowCount ?? 0) > 0;
      });
    },
    async setStatus(id, status, nowMs) {
      if (status === 'active') {
        await pool.query("UPDATE schedules SET status = 'active', last_fire_at = GREATEST(last_fire_at, $1) WHERE schedule_id = $2 AND status <> 'active'", [nowMs, id]);
      } else {
        await pool.query("UPDATE schedules SET status = 'paused' WHERE schedule_id = $1", [id]);
      }
      return one(id);
    },
    async claimFire(id, fireAt, owner, nowMs) {
      return inTransaction(pool, async (c) => {
        const moved = await c.query("UPDATE schedules SET last_fire_at = $1 WHERE schedule_id = $2 AND status = 'active' AND last_fire_at < $1", [fireAt, id]);
        if ((moved.rowCount ?? 0) === 0) return false;
        const inserted = await c.query(
          "INSERT INTO schedule_fires (schedule_id, fire_at, state, claimed_by, claimed_at) VALUES ($1, $2, 'claimed', $3, $4) ON CONFLICT DO NOTHING",
          [id, fireAt, owner, nowMs],
        );
        return (inserted.rowCount ?? 0) > 0;
      });
    },
    async settleFire(id, fireAt, o) {
      await pool.query("UPDATE schedule_fires SET state = $1, run_id = $2, error = $3 WHERE schedule_id = $4 AND fire_at = $5 AND state = 'claimed'", [
        o.state,
        o.runId ?? null,
        o.error ?? null,
        id,
        fireAt,
      ]);
    },
    async reclaimFire(id, fireAt, owner, staleBefore, nowMs) {
      const res = await pool.query(
        "UPDATE schedule_fires SET claimed_by = $1, claimed_at = $2 WHERE schedule_id = $3 AND fire_at = $4 AND state = 'claimed' AND claimed_at < $5",
        [owner, nowMs, id, fireAt, staleBefore],
      );
      return (res.rowCount ?? 0) > 0;
    },
    async staleFires(staleBefore) {
      const res = await pool.query<FireRow>("SELECT * FROM schedule_fires WHERE state = 'claimed' AND claimed_at < $1 ORDER BY claimed_at", [staleBefore]);
      return res.rows.map(toFire);
    },
    async previousRunFire(id, fireAt) {
      const res = await pool.query<FireRow>(
        "SELECT * FROM schedule_fires WHERE schedule_id = $1 AND fire_at < $2 AND state IN ('started', 'claimed') ORDER BY fire_at DESC LIMIT 1",
        [id, fireAt],
      );
      return res.rows[0] ? toFire(res.rows[0]) : undefined;
    },
    async pruneFires(id, keep) {
      await pool.query(
        `DELETE FROM schedule_fires WHERE schedule_id = $1
           AND fire_at < (SELECT fire_at FROM schedule_fires WHERE schedule_id = $1 ORDER BY fire_at DESC LIMIT 1 OFFSET $2 - 1)
           AND fire_at < COALESCE((SELECT MAX(fire_at) FROM schedule_fires WHERE schedule_id = $1 AND state IN ('started', 'claimed')), 0)`,
        [id, keep],
      );
    },
    async lastFires(ids, limit) {
      const res = await pool.query<FireRow>(
        `SELECT x.*, r.status AS run_status FROM (
           SELECT f.*, row_number() OVER (PARTITION BY f.schedule_id ORDER BY f.fire_at DESC) AS n
           FROM schedule_fires f WHERE f.schedule_id = ANY($1::text[])) x
         LEFT JOIN runs r ON r.run_id = x.run_id
         WHERE x.n <= $2 ORDER BY x.schedule_id, x.fire_at DESC`,
        [[...ids], limit],
      );
      return groupFires(ids, res.rows, limit);
    },
  };
}
