// What both adapters share besides the commit plan: the `runs` row as they read it (same
// columns; JSON kept as text), the record it makes, and the SQL of the live statuses.
import { LIVE_RUN_STATUSES } from '../../machines/statuses.js';
import type { LedgerEntry, RunRecord } from './store.js';

/** `status IN ('idle', …)`: the live statuses of machines/statuses.ts, as SQL both dialects read. */
export const LIVE_STATUS_SQL = `status IN (${LIVE_RUN_STATUSES.map((s) => {
  if (!/^[a-z_]+$/.test(s)) throw new TypeError(`Expected a run status of lowercase letters and \`_\`, got ${JSON.stringify(s)}.`);
  return `'${s}'`;
}).join(', ')})`;

export interface RunRow {
  run_id: string;
  account_id: string;
  site_id: string;
  pipeline: string;
  trigger: string;
  machine_name: string | null;
  /** SQLite's INTEGER 0/1 or Postgres' BOOLEAN. */
  hosted: number | boolean;
  options: string;
  status: string;
  error: string | null;
  snapshot: string | null;
  last_seq: number;
  created_at: string;
  updated_at: string;
  closed_at: string | null;
  owner: string | null;
  trace_parent?: string | null;
}

export function toRecord(row: RunRow): RunRecord {
  return {
    runId: row.run_id,
    accountId: row.account_id,
    siteId: row.site_id,
    pipeline: row.pipeline,
    trigger: row.trigger,
    machineName: row.machine_name,
    hosted: Boolean(row.hosted),
    options: JSON.parse(row.options) as Record<string, unknown>,
    status: row.status,
    error: row.error,
    snapshot: row.snapshot === null ? null : JSON.parse(row.snapshot),
    lastSeq: row.last_seq,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    closedAt: row.closed_at,
    owner: row.owner ?? null,
    traceParent: row.trace_parent ?? null,
  };
}

export interface LedgerRow {
  item: string;
  stage: number;
  status: string;
  attempts: number;
  cost: number;
  error: string | null;
}

/** The item id is kept as JSON so a number comes back a number and a string a string. */
export function toLedgerEntry(r: LedgerRow): LedgerEntry {
  return {
    stage: r.stage,
    itemId: JSON.parse(r.item) as LedgerEntry['itemId'],
    status: r.status as LedgerEntry['status'],
    attempts: r.attempts,
    cost: r.cost,
    error: r.error,
  };
}
