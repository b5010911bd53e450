// The loaded items of the stages at work, kept in memory for every run of one engine within a
// bound, the least recently used going first; the store has them all (docs/architecture.md,
// "Memory per run").
import type { Item } from '../store/store.js';

export interface StageItemsOptions {
  /** How many items, over all the lists kept, before the least recently used list goes. [100_000] */
  maxItems?: number;
}

/**
 * A stage's items are read for each item that starts and for the processing card. A run whose
 * items finish quickly reads them again soon and finds them here; thousands of runs whose items
 * take seconds each would otherwise each hold their list between two reads. A list bigger than
 * the bound is kept alone.
 */
export class StageItems {
  readonly #max: number;
  /** By `<runId>:<stage>`, least recently used first (a Map keeps insertion order). */
  readonly #lists = new Map<string, readonly Item[]>();
  /** The key last in `#lists` (the most recently used), when known. */
  #newest: string | undefined;
  #size = 0;

  constructor({ maxItems = 100_000 }: StageItemsOptions = {}) {
    if (!Number.isInteger(maxItems) || maxItems < 1) throw new TypeError(`Expected \`maxItems\` to be a positive integer, got ${maxItems}.`);
    this.#max = maxItems;
  }

  get(runId: string, stage: number): readonly Item[] | undefined {
    const key = keyOf(runId, stage);
    const items = this.#lists.get(key);
    // A run at work reads its list for every item: moving it last again each time is most of a read's cost.
    if (items && key !== this.#newest) {
      this.#lists.delete(key);
      this.#lists.set(key, items);
      this.#newest = key;
    }
    return items;
  }

  set(runId: string, stage: number, items: readonly Item[]): void {
    const key = keyOf(runId, stage);
    this.#remove(key);
    this.#lists.set(key, items);
    this.#newest = key;
    this.#size += items.length;
    for (const [oldest, list] of this.#lists) {
      if (this.#size <= this.#max || oldest === key) break;
      this.#lists.delete(oldest);
      this.#size -= list.length;
    }
  }

  /** Forgets a run's lists (it left memory). */
  drop(runId: string, stages: number): void {
    for (let stage = 1; stage <= stages; stage++) this.#remove(keyOf(runId, stage));
  }

  /** Items kept, over every list. */
  get size(): number {
    return this.#size;
  }

  #remove(key: string): void {
    const old = this.#lists.get(key);
    if (!old) return;
    this.#lists.delete(key);
    if (key === this.#newest) this.#newest = undefined;
    this.#size -= old.length;
  }
}

function keyOf(runId: string, stage: number): string {
  return `${runId}:${stage}`;
}
