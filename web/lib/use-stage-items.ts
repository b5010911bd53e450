'use client';
// A stage's items for the run page's table, read from `GET /runs/:id/items` (every page), and
// read again when the server's view of the run moves on (its seq): at most once a second,
// never two reads at once. No timer of its own: a run that does nothing is not read again.
import { useEffect, useRef, useState } from 'react';
import type { Api } from './api.js';
import type { ItemView } from './items-model.js';

const PAGE = 1000;
/** A stage bigger than this shows its first items only. */
export const MOST_ITEMS = 20_000;
const MIN_GAP_MS = 1000;

export interface StageItems {
  stage: number;
  items: ItemView[];
  total: number | null;
  counts: Record<string, number>;
  error: string | null;
}

export function useStageItems(api: Api, runId: string, stage: number | null, seq: number): StageItems | null {
  const [state, setState] = useState<StageItems | null>(null);
  const kick = useRef<() => void>(() => undefined);
  useEffect(() => kick.current(), [seq]);

  useEffect(() => {
    if (stage === null) return;
    let stopped = false;
    let running = false;
    let again = false;
    let timer: ReturnType<typeof setTimeout> | null = null;
    let last = 0;
    const read = async () => {
      if (running) {
        again = true;
        return;
      }
      running = true;
      last = Date.now();
      try {
        const items: ItemView[] = [];
        let after: string | undefined;
        let total: number | null = null;
        let counts: Record<string, number> = {};
        do {
          const page = await api.items(runId, { stage, limit: PAGE, ...(after ? { after } : {}) });
          if (!after) [total, counts] = [page.total_items, page.counts];
          items.push(...page.data);
          after = page.next_after ?? undefined;
        } while (after && items.length < MOST_ITEMS && !stopped);
        if (!stopped) setState({ stage, items, total, counts, error: null });
      } catch (err) {
        if (!stopped) setState((s) => ({ stage, items: s?.stage === stage ? s.items : [], total: s?.total ?? null, counts: s?.counts ?? {}, error: (err as Error).message }));
      }
      running = false;
      if (again && !stopped) {
        again = false;
        schedule();
      }
    };
    const schedule = () => {
      if (timer) return;
      timer = setTimeout(() => {
        timer = null;
        void read();
      }, Math.max(0, last + MIN_GAP_MS - Date.now()));
    };
    kick.current = schedule;
    schedule();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      kick.current = () => undefined;
    };
  }, [api, runId, stage]);

  return state && state.stage === stage ? state : null;
}
