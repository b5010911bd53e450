'use client';
// A stage's items for the run page's table, read from `GET /runs/:id/items`: only the rows the
// table shows (and a page past them), each status's first items through its `status` filter, so
// a stage of 20,000 items costs a page, not the stage. A search reads every item (up to
// `MOST_ITEMS`). Read again when the server's view of the run moves on (its seq), at most once a
// second (less often when reads are slow), never two reads at once, and each read lands as one
// update. No timer of its own: a
// run that does nothing is not read again.
import { useEffect, useRef, useState } from 'react';
import type { Api } from './api.js';
import { filterItems, groupItems, itemsWanted, tableGroups, type ItemGroup, type ItemStatus, type ItemView } from './items-model.js';

const PAGE = 1000;
/** A search reads at most this many items. */
export const MOST_ITEMS = 20_000;
/** Rows are asked for in steps of this many, so a scroll within a step reads nothing. */
const STEP = 100;
const MIN_GAP_MS = 1000;
/**
 * Reads are spaced at least this many times their own length: a read that took the service
 * long (a stage of a big run) is not asked for again at once, so the table never keeps the
 * service busy more than a fifth of the time.
 */
const GAP_PER_READ = 5;

/** What the table shows: its filter, its search, and how many rows from the top it needs. */
export interface ItemsWant {
  status: ItemStatus | '';
  q: string;
  rows: number;
}

export interface StageItems {
  stage: number;
  groups: ItemGroup[];
  /** null until the stage has loaded its items. */
  total: number | null;
  counts: Partial<Record<ItemStatus, number>>;
  error: string | null;
}

/**
 * `hint`: the stage's counts as the run's view has them (failed, finished, the rest), so the
 * first read can go straight for the rows in view; the answers' exact counts correct it.
 */
export function useStageItems(api: Api, runId: string, stage: number | null, seq: number, want: ItemsWant, hint?: StageItems['counts']): StageItems | null {
  const [state, setState] = useState<StageItems | null>(null);
  const wantRef = useRef(want);
  wantRef.current = want;
  const hintRef = useRef(hint);
  hintRef.current = hint;
  const kick = useRef<(now: boolean) => void>(() => undefined);
  useEffect(() => kick.current(false), [seq]);
  const rows = Math.ceil(want.rows / STEP) * STEP;
  useEffect(() => kick.current(true), [want.status, want.q, rows]);

  useEffect(() => {
    if (stage === null) return;
    let stopped = false;
    let running = false;
    let again = false;
    let againNow = false;
    let timer: ReturnType<typeof setTimeout> | null = null;
    let last = 0;
    let took = 0;
    let counts: StageItems['counts'] | null = null;
    let total: number | null = null;
    const page = async (q: { status?: ItemStatus; after?: string; limit: number }) => {
      const p = await api.items(runId, { stage, ...q });
      [counts, total] = [p.counts, p.total_items];
      return p;
    };
    /** Every item of the stage (up to MOST_ITEMS), for a search. */
    const readAll = async (): Promise<ItemView[]> => {
      const items: ItemView[] = [];
      let after: string | undefined;
      do {
        const p = await page({ limit: PAGE, ...(after ? { after } : {}) });
        items.push(...p.data);
        after = p.next_after ?? undefined;
      } while (after && items.length < MOST_ITEMS && !stopped);
      return items;
    };
    /** The first `n` items of one status. */
    const readFirst = async (status: ItemStatus, n: number): Promise<ItemView[]> => {
      const items: ItemView[] = [];
      let after: string | undefined;
      do {
        const p = await page({ status, limit: Math.min(PAGE, n - items.length), ...(after ? { after } : {}) });
        items.push(...p.data);
        after = p.next_after ?? undefined;
      } while (after && items.length < n && !stopped);
      return items;
    };
    const read = async () => {
      if (running) {
        again = true;
        return;
      }
      running = true;
      last = Date.now();
      const w = wantRef.current;
      const rowsWanted = Math.ceil(w.rows / STEP) * STEP;
      try {
        let groups: ItemGroup[];
        if (w.q.trim()) {
          groups = groupItems(filterItems(await readAll(), { status: w.status, q: w.q }), w.status);
        } else {
          // The counts say which statuses the rows in view belong to: the last read's, else the
          // view's hint, else one item's worth. Every answer brings the exact counts: a second
          // pass reads what they show the first one missed.
          if (!counts && !hintRef.current) await page({ limit: 1 });
          const byStatus = new Map<ItemStatus, ItemView[]>();
          const asked = new Map<ItemStatus, number>();
          for (let pass = 0; pass < 2 && !stopped; pass++) {
            for (const [status, n] of itemsWanted(tableGroups(counts ?? hintRef.current ?? {}, w.status), rowsWanted)) {
              if (stopped) break;
              if ((asked.get(status) ?? 0) >= n) continue;
              asked.set(status, n);
              byStatus.set(status, await readFirst(status, n));
            }
          }
          groups = tableGroups(counts ?? {}, w.status, byStatus);
        }
        if (!stopped) setState({ stage, groups, total, counts: counts ?? {}, error: null });
      } catch (err) {
        if (!stopped) setState((s) => ({ stage, groups: s?.stage === stage ? s.groups : [], total: s?.total ?? null, counts: s?.counts ?? {}, error: (err as Error).message }));
      }
      running = false;
      took = Date.now() - last;
      if (again && !stopped) {
        const now = againNow;
        again = againNow = false;
        schedule(now);
      }
    };
    const schedule = (now: boolean) => {
      if (running) {
        again = true;
        againNow ||= now;
        return;
      }
      if (timer) {
        if (!now) return;
        clearTimeout(timer);
      }
      timer = setTimeout(
        () => {
          timer = null;
          void read();
        },
        now ? 0 : Math.max(0, last + Math.max(MIN_GAP_MS, GAP_PER_READ * took) - Date.now()),
      );
    };
    kick.current = schedule;
    schedule(true);
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      kick.current = () => undefined;
    };
  }, [api, runId, stage]);

  return state && state.stage === stage ? state : null;
}
