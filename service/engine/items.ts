// The items of one stage as `GET /runs/:id/items` shows them (docs/api.md, "Items"): each
// loaded item with where it is (pending, in flight, waiting for a limit, waiting out a retry, processed, failed),
// from the stage's items, the run's ledger and its persisted snapshot; the times come from
// the item events. Pure: the route reads, this describes.
import { stageActorId, type StageContext } from '../../machines/index.js';
import type { StoredEvent } from '../events.js';
import type { Item, LedgerEntry } from '../store/store.js';

export const ITEM_STATUSES = ['pending', 'in_flight', 'waiting_retry', 'waiting_limit', 'processed', 'failed'] as const;
export type ItemStatus = (typeof ITEM_STATUSES)[number];

export interface ItemView {
  id: Item['id'];
  title: string;
  status: ItemStatus;
  /** Attempts made, the one in flight included. */
  attempts: number;
  /** ISO 8601; null until known (an item not started, or finished before times were kept). */
  started_at: string | null;
  finished_at: string | null;
  duration_ms: number | null;
  error: string | null;
  /** What the item reported it cost (AI credits); null until it finished. */
  cost: number | null;
}

/** When an item finished and how long its last attempt took, from its `stage_item_*` event. */
export interface ItemTiming {
  finishedAt: string;
  durationMs: number | null;
}

/** `<stage>:<item id>`: how timings and ledger rows are keyed. */
export const itemKey = (stage: number, id: Item['id']): string => `${stage}:${String(id)}`;

/** Folds item events into timings by {@link itemKey}; the last event of an item wins (a retry of a failed item). */
export function addTimings(timings: Map<string, ItemTiming>, events: readonly StoredEvent[]): void {
  for (const e of events) {
    if (e.event !== 'stage_item_processed' && e.event !== 'stage_item_failed') continue;
    timings.set(itemKey(e.stage, e.item.id), { finishedAt: e.timestamp, durationMs: e.duration_ms ?? null });
  }
}

interface PersistedRun {
  context?: { current?: number };
  children?: Record<string, { snapshot?: { context?: StageContext } } | undefined>;
}

/** The stage's context in a run's persisted snapshot. */
export function stageContextOf(snapshot: unknown, stage: number): StageContext | undefined {
  return (snapshot as PersistedRun | null)?.children?.[stageActorId(stage)]?.snapshot?.context;
}

/** The run's current stage in its persisted snapshot (1 before it has one). */
export function currentStageOf(snapshot: unknown): number {
  return (snapshot as PersistedRun | null)?.context?.current ?? 1;
}

export interface StageItemsInput {
  stage: number;
  items: readonly Item[];
  /** The run's ledger rows (those of other stages are passed over). */
  ledger: readonly LedgerEntry[];
  context: StageContext | undefined;
  timings: ReadonlyMap<string, ItemTiming>;
  /** Ids of the stage's items whose attempt waits for a limit (service/limits/): in flight for the machine, not started yet. */
  waitingLimit?: ReadonlySet<string> | undefined;
}

/** Every item of the stage, in the stage's order. */
export function describeItems({ stage, items, ledger, context, timings, waitingLimit }: StageItemsInput): ItemView[] {
  const recorded = new Map<string, LedgerEntry>();
  for (const l of ledger) if (l.stage === stage) recorded.set(String(l.itemId), l);
  const active = new Map((context?.active ?? []).map((a) => [a.index, a.attempt]));
  const waiting = new Map((context?.waiting ?? []).map((w) => [w.index, w.attempt]));
  // Failed items `retry_failed` gave new attempts wait to start again: their failed row is not their status now.
  const retrying = new Map((context?.retrying ?? []).map((r) => [r.index, r.attempt]));
  return items.map((item, index): ItemView => {
    const base = { id: item.id, title: item.title };
    const inFlight = active.get(index);
    if (inFlight !== undefined) return { ...base, ...unfinished(waitingLimit?.has(String(item.id)) ? 'waiting_limit' : 'in_flight', inFlight) };
    const retry = waiting.get(index);
    if (retry !== undefined) return { ...base, ...unfinished('waiting_retry', retry - 1) };
    const again = retrying.get(index);
    if (again !== undefined) return { ...base, ...unfinished('pending', again - 1) };
    const entry = recorded.get(String(item.id));
    if (!entry) return { ...base, ...unfinished('pending', 0) };
    const t = timings.get(itemKey(stage, item.id));
    const finishedAt = t?.finishedAt ?? null;
    const durationMs = t?.durationMs ?? null;
    return {
      ...base,
      status: entry.status === 'done' ? 'processed' : 'failed',
      attempts: entry.attempts,
      started_at: finishedAt !== null && durationMs !== null ? new Date(Date.parse(finishedAt) - durationMs).toISOString() : null,
      finished_at: finishedAt,
      duration_ms: durationMs,
      error: entry.error,
      cost: entry.cost,
    };
  });
}

function unfinished(status: ItemStatus, attempts: number): Omit<ItemView, 'id' | 'title'> {
  return { status, attempts, started_at: null, finished_at: null, duration_ms: null, error: null, cost: null };
}

export interface ItemsPage {
  data: ItemView[];
  /** Items of the stage in each status, before the status filter. */
  counts: Record<ItemStatus, number>;
  /** Pass as `after` for the next page; null on the last. */
  next_after: string | null;
}

/** Filters by status and pages after the item whose id is `after`. */
export function pageItems(all: readonly ItemView[], q: { status?: ItemStatus | undefined; after?: string | undefined; limit: number }): ItemsPage {
  const counts = Object.fromEntries(ITEM_STATUSES.map((s) => [s, 0])) as Record<ItemStatus, number>;
  for (const i of all) counts[i.status] += 1;
  const matching = q.status ? all.filter((i) => i.status === q.status) : all;
  let start = 0;
  if (q.after !== undefined) {
    const at = matching.findIndex((i) => String(i.id) === q.after);
    start = at === -1 ? matching.length : at + 1;
  }
  const data = matching.slice(start, start + q.limit);
  const more = start + q.limit < matching.length;
  return { data, counts, next_after: more && data.length ? String(data[data.length - 1]!.id) : null };
}
