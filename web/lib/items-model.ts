// The run page's items table and charts, as pure functions: the order, groups and filter of the
// table, items finished per minute, the ETA of a stage, and the spread of item durations.
import type { ItemStatus, ItemView } from '../../service/engine/items.js';
import type { StoredEvent } from './run-model.js';

export type { ItemStatus, ItemView };

/** Failed first when there are failures (they want a look), then those moving, then the rest, each in stage order. */
const RANK: Record<ItemStatus, number> = { failed: 0, in_flight: 1, waiting_retry: 2, waiting_limit: 3, pending: 4, processed: 5 };

export function orderItems(items: readonly ItemView[]): ItemView[] {
  const keyed = items.map((item, index) => ({ item, index }));
  keyed.sort((a, b) => RANK[a.item.status] - RANK[b.item.status] || a.index - b.index);
  return keyed.map((k) => k.item);
}

/** The table's statuses, in its order. */
export const TABLE_ORDER = (Object.keys(RANK) as ItemStatus[]).sort((a, b) => RANK[a] - RANK[b]);

/**
 * One status's share of the items table: how many items the stage has in it, and the first of
 * them as read so far (the table reads only the rows it shows, docs/api.md "Items").
 */
export interface ItemGroup {
  status: ItemStatus;
  count: number;
  items: readonly ItemView[];
}

/** The table's groups, in its order, of the statuses `status` lets through (all when ''), with what was read of each. */
export function tableGroups(counts: Partial<Record<ItemStatus, number>>, status: ItemStatus | '', read: ReadonlyMap<ItemStatus, readonly ItemView[]> = new Map()): ItemGroup[] {
  return TABLE_ORDER.filter((s) => !status || s === status).map((s) => ({ status: s, count: counts[s] ?? 0, items: read.get(s) ?? [] }));
}

/** Rows in the table: every item of every group. */
export function rowCount(groups: readonly ItemGroup[]): number {
  return groups.reduce((n, g) => n + g.count, 0);
}

/** Rows `first` to `last` (not included) of the table: an item, or null where it is not read yet. */
export function tableRows(groups: readonly ItemGroup[], first: number, last: number): (ItemView | null)[] {
  const out: (ItemView | null)[] = [];
  let start = 0;
  for (const g of groups) {
    for (let i = Math.max(first, start); i < Math.min(last, start + g.count); i++) out.push(g.items[i - start] ?? null);
    start += g.count;
  }
  return out;
}

/** How many of each group's first items the table's first `rows` rows hold (groups with none left out). */
export function itemsWanted(groups: readonly Pick<ItemGroup, 'status' | 'count'>[], rows: number): Map<ItemStatus, number> {
  const want = new Map<ItemStatus, number>();
  let left = rows;
  for (const g of groups) {
    if (left <= 0) break;
    const n = Math.min(g.count, left);
    if (n > 0) want.set(g.status, n);
    left -= n;
  }
  return want;
}

/** Items already read in full (a search) as the table's groups: each status's items in stage order. */
export function groupItems(items: readonly ItemView[], status: ItemStatus | ''): ItemGroup[] {
  return TABLE_ORDER.filter((s) => !status || s === status).map((s) => {
    const of = items.filter((i) => i.status === s);
    return { status: s, count: of.length, items: of };
  });
}

/** The durations (ms) of a stage's finished items the log holds, from their `stage_item_*` events. */
export function stageDurations(events: readonly StoredEvent[], stage: number): number[] {
  const out: number[] = [];
  for (const e of events) {
    if ((e.event === 'stage_item_processed' || e.event === 'stage_item_failed') && e.stage === stage && typeof e.duration_ms === 'number') out.push(e.duration_ms);
  }
  return out;
}

export function filterItems(items: readonly ItemView[], f: { status: string; q: string }): ItemView[] {
  const q = f.q.trim().toLowerCase();
  return items.filter((i) => (!f.status || i.status === f.status) && (!q || i.title.toLowerCase().includes(q) || String(i.id).includes(q)));
}

/** Finish times (epoch ms) of the items of every stage, or of one, from the log. */
export function finishTimes(events: readonly StoredEvent[], stage?: number): number[] {
  const out: number[] = [];
  for (const e of events) {
    if ((e.event === 'stage_item_processed' || e.event === 'stage_item_failed') && (stage === undefined || e.stage === stage)) out.push(Date.parse(e.timestamp));
  }
  return out;
}

/** Items finished in each whole minute, from the first finish to `now`: x in epoch seconds, for uPlot. */
export function throughputPerMinute(times: readonly number[], now: number): [number[], number[]] {
  if (times.length === 0) return [[], []];
  const minute = 60_000;
  const first = Math.floor(Math.min(...times) / minute);
  const last = Math.floor(Math.max(now, Math.max(...times)) / minute);
  const xs: number[] = [];
  const ys: number[] = [];
  for (let m = first; m <= last; m++) {
    xs.push((m * minute) / 1000);
    ys.push(0);
  }
  for (const t of times) ys[Math.floor(t / minute) - first]! += 1;
  return [xs, ys];
}

/** Items a second recently: the last `WINDOW` finished items over the time since the one before them (or the stage's start). */
const WINDOW = 30;

export interface Eta {
  /** ms until the stage finishes at the recent rate. */
  stageMs: number;
  /** Items a minute at the recent rate. */
  perMinute: number;
}

/**
 * The stage's ETA: its items not yet finished at the rate of its recent finishes. null until
 * there is a rate to go on (two finishes, or one and a known start).
 */
export function stageEta(opts: { finished: readonly number[]; startedAt: number | null; remaining: number; now: number }): Eta | null {
  const { finished, startedAt, remaining, now } = opts;
  let from: number;
  let counted: number;
  if (finished.length > WINDOW) [from, counted] = [finished[finished.length - WINDOW - 1]!, WINDOW];
  else if (startedAt !== null && finished.length > 0) [from, counted] = [startedAt, finished.length];
  else if (finished.length >= 2) [from, counted] = [finished[0]!, finished.length - 1];
  else return null;
  if (now <= from) return null;
  const perMs = counted / (now - from);
  return { stageMs: remaining / perMs, perMinute: perMs * 60_000 };
}

/** When the stage began working (epoch ms): its `stage_start` event, if the log has it. */
export function stageStartedAt(events: readonly StoredEvent[], stage: number): number | null {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i]!;
    if (e.event === 'stage_start' && e.stage === stage) return Date.parse(e.timestamp);
  }
  return null;
}

/** Item durations in bins: edges in ms (x, the bin's start) and counts (y), for uPlot bars. */
export function durationHistogram(durations: readonly number[], bins = 20): [number[], number[]] {
  if (durations.length === 0) return [[], []];
  const max = Math.max(...durations);
  const width = Math.max(1, Math.ceil((max + 1) / bins));
  const xs = Array.from({ length: bins }, (_, i) => i * width);
  const ys = new Array<number>(bins).fill(0);
  for (const d of durations) ys[Math.min(bins - 1, Math.floor(d / width))]! += 1;
  return [xs, ys];
}
