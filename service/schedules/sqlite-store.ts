// The schedule tables on SQLite, in the run database's file: one instance, synchronous
// transactions. The row mapping is rows.ts, shared with postgres-store.ts.
import type Database from 'better-sqlite3';
import { groupFires, scheduleParams, toFire, toSchedule, type FireRow, type ScheduleRow } from './rows.js';
import type { ScheduleStore } from './types.js';

// A migration list of its own (schema_migrations_schedules), so this schema grows without
// renumbering the runs schema's migrations in store/sqlite.ts.
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE schedules (
     schedule_id   TEXT PRIMARY KEY,
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
     last_fire_at  INTEGER NOT NULL
   );
   CREATE INDEX schedules_by_site ON schedules (site_id, created_at);
   CREATE TABLE schedule_fires (
     schedule_id TEXT NOT NULL,
     fire_at     INTEGER NOT NULL,
     state       TEXT NOT NULL,
     run_id      TEXT,
     error       TEXT,
     claimed_by  TEXT NOT NULL,
     claimed_at  INTEGER NOT NULL,
     PRIMARY KEY (schedule_id, fire_at)
   ) WITHOUT ROWID;
   CREATE INDEX schedule_fires_claimed ON schedule_fires (claimed_at) WHERE state = 'claimed';`,
];

function migrate(db: Database.Database): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations_schedules (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)');
  const applied = new Set(db.prepare<[], { version: number }>('SELECT version FROM schema_migrations_schedules').all().map((r) => r.version));
  db.transaction(() => {
    MIGRATIONS.forEach((sql, i) => {
      if (applied.has(i + 1)) return;
      db.exec(sql);
      db.prepare('INSERT INTO schema_migrations_schedules (version, applied_at) VALUES (?, ?)').run(i + 1, new Date().toISOString());
    });
  })();
}

export function sqliteScheduleStore(db: Database.Database): ScheduleStore {
  migrate(db);
  const stmt = {
    insert: db.prepare(
      `INSERT INTO schedules (schedule_id, account_id, site_id, pipeline, options, cron, timezone, overlap, status, created_by, created_at, last_fire_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    get: db.prepare<[string], ScheduleRow>('SELECT * FROM schedules WHERE schedule_id = ?'),
    all: db.prepare<[], ScheduleRow>('SELECT * FROM schedules ORDER BY created_at, schedule_id'),
    active: db.prepare<[], ScheduleRow>("SELECT * FROM schedules WHERE status = 'active'"),
    advance: db.prepare<[number, string, number]>("UPDATE schedules SET last_fire_at = ? WHERE schedule_id = ? AND status = 'active' AND last_fire_at < ?"),
    pause: db.prepare<[string]>("UPDATE schedules SET status = 'paused' WHERE schedule_id = ?"),
    resume: db.prepare<[number, string]>("UPDATE schedules SET status = 'active', last_fire_at = MAX(last_fire_at, ?) WHERE schedule_id = ? AND status <> 'active'"),
    insertFire: db.prepare(
      "INSERT INTO schedule_fires (schedule_id, fire_at, state, claimed_by, claimed_at) VALUES (?, ?, 'claimed', ?, ?) ON CONFLICT DO NOTHING",
    ),
    settle: db.prepare("UPDATE schedule_fires SET state = ?, run_id = ?, error = ? WHERE schedule_id = ? AND fire_at = ? AND state = 'claimed'"),
    reclaim: db.prepare(
      "UPDATE schedule_fires SET claimed_by = ?, claimed_at = ? WHERE schedule_id = ? AND fire_at = ? AND state = 'claimed' AND claimed_at < ?",
    ),
    stale: db.prepare<[number], FireRow>("SELECT * FROM schedule_fires WHERE state = 'claimed' AND claimed_at < ? ORDER BY claimed_at"),
    previous: db.prepare<[string, number], FireRow>(
      `SELECT * FROM schedule_fires WHERE schedule_id = ? AND fire_at < ? AND state IN ('started', 'claimed')
       ORDER BY fire_at DESC LIMIT 1`,
    ),
    prune: db.prepare<{ id: string; keep: number }>(
      `DELETE FROM schedule_fires WHERE schedule_id = @id
         AND fire_at < (SELECT fire_at FROM schedule_fires WHERE schedule_id = @id ORDER BY fire_at DESC LIMIT 1 OFFSET @keep - 1)
         AND fire_at < COALESCE((SELECT MAX(fire_at) FROM schedule_fires WHERE schedule_id = @id AND state IN ('started', 'claimed')), 0)`,
    ),
    last: db.prepare<[string, number], FireRow>(
      `SELECT f.*, r.status AS run_status FROM schedule_fires f LEFT JOIN runs r ON r.run_id = f.run_id
       WHERE f.schedule_id = ? ORDER BY f.fire_at DESC LIMIT ?`,
    ),
  };
  const removeTx = db.transaction((id: string): boolean => {
    db.prepare('DELETE FROM schedule_fires WHERE schedule_id = ?').run(id);
    return db.prepare('DELETE FROM schedules WHERE schedule_id = ?').run(id).changes > 0;
  });
  const claimTx = db.transaction((id: string, fireAt: number, owner: string, nowMs: number): boolean => {
    if (stmt.advance.run(fireAt, id, fireAt).changes === 0) return false;
    return stmt.insertFire.run(id, fireAt, owner, nowMs).changes > 0;
  });

  return {
    async create(s) {
      stmt.insert.run(...scheduleParams(s));
    },
    async get(id) {
      const row = stmt.get.get(id);
      return row ? toSchedule(row) : undefined;
    },
    async list(filter) {
      const all = stmt.all.all().map(toSchedule);
      return filter.siteIds === undefined ? all : all.filter((s) => filter.siteIds!.includes(s.siteId));
    },
    async active() {
      return stmt.active.all().map(toSchedule);
    },
    async remove(id) {
      return removeTx(id);
    },
    async setStatus(id, status, nowMs) {
      if (status === 'active') stmt.resume.run(nowMs, id);
      else stmt.pause.run(id);
      const row = stmt.get.get(id);
      return row ? toSchedule(row) : undefined;
    },
    async claimFire(id, fireAt, owner, nowMs) {
      return claimTx.immediate(id, fireAt, owner, nowMs);
    },
    async settleFire(id, fireAt, o) {
      stmt.settle.run(o.state, o.runId ?? null, o.error ?? null, id, fireAt);
    },
    async reclaimFire(id, fireAt, owner, staleBefore, nowMs) {
      return stmt.reclaim.run(owner, nowMs, id, fireAt, staleBefore).changes > 0;
    },
    async staleFires(staleBefore) {
      return stmt.stale.all(staleBefore).map(toFire);
    },
    async previousRunFire(id, fireAt) {
      const row = stmt.previous.get(id, fireAt);
      return row ? toFire(row) : undefined;
    },
    async pruneFires(id, keep) {
      stmt.prune.run({ id, keep });
    },
    async lastFires(ids, limit) {
      return groupFires(ids, ids.flatMap((id) => stmt.last.all(id, limit)), limit);
    },
  };
}
