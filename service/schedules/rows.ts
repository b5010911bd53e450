// A schedule and its fires as both stores' rows hold them, and back: one mapping for
// sqlite-store.ts and postgres-store.ts.
import type { Fire, FireState, Overlap, Schedule, ScheduleStatus } from './types.js';

export interface ScheduleRow {
  schedule_id: string;
  account_id: string;
  site_id: string;
  pipeline: string;
  options: string;
  cron: string;
  timezone: string;
  overlap: string;
  status: string;
  created_by: string;
  created_at: string;
  last_fire_at: number | string;
}

export interface FireRow {
  schedule_id: string;
  fire_at: number | string;
  state: string;
  run_id: string | null;
  run_status?: string | null;
  error: string | null;
  claimed_by: string;
  claimed_at: number | string;
}

export function toSchedule(r: ScheduleRow): Schedule {
  return {
    scheduleId: r.schedule_id,
    accountId: r.account_id,
    siteId: r.site_id,
    pipeline: r.pipeline,
    options: JSON.parse(r.options) as Record<string, unknown>,
    cron: r.cron,
    timezone: r.timezone,
    overlap: r.overlap as Overlap,
    status: r.status as ScheduleStatus,
    createdBy: r.created_by,
    createdAt: r.created_at,
    lastFireAt: Number(r.last_fire_at),
  };
}

export function toFire(r: FireRow): Fire {
  return {
    scheduleId: r.schedule_id,
    fireAt: Number(r.fire_at),
    state: r.state as FireState,
    runId: r.run_id,
    runStatus: r.run_status ?? null,
    error: r.error,
    claimedBy: r.claimed_by,
    claimedAt: Number(r.claimed_at),
  };
}

/** The columns of a schedule row, in insert order. */
export function scheduleParams(s: Schedule): unknown[] {
  return [s.scheduleId, s.accountId, s.siteId, s.pipeline, JSON.stringify(s.options), s.cron, s.timezone, s.overlap, s.status, s.createdBy, s.createdAt, s.lastFireAt];
}

/** Groups fires (newest first per schedule) by schedule, at most `limit` each. */
export function groupFires(ids: readonly string[], rows: readonly FireRow[], limit: number): Map<string, Fire[]> {
  const out = new Map<string, Fire[]>(ids.map((id) => [id, []]));
  for (const r of rows) {
    const list = out.get(r.schedule_id);
    if (list && list.length < limit) list.push(toFire(r));
  }
  return out;
}

