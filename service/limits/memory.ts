// Limits held in process: the adapter for a single instance (SQLite), where no other process
// shares the keys. The same bucket rule as the database's: a token is there once the clock has
// passed the key's `next` time, and taking it moves `next` on by one spacing.
import type { LimitStore, LimitUsage } from './store.js';

export class MemoryLimitStore implements LimitStore {
  /** Per key, the earliest time (epoch ms) the next token is there. */
  readonly #next = new Map<string, number>();
  readonly #slots = new Map<string, Set<string>>();
  readonly #now: () => number;

  constructor(now: () => number = () => performance.timeOrigin + performance.now()) {
    this.#now = now;
  }

  async takeToken(key: string, spacingMs: number): Promise<number> {
    const now = this.#now();
    const next = this.#next.get(key) ?? 0;
    if (next > now) return next - now;
    this.#next.set(key, Math.max(next, now) + spacingMs);
    return 0;
  }

  async takeSlot(key: string, size: number, holder: string): Promise<boolean> {
    let held = this.#slots.get(key);
    if (!held) this.#slots.set(key, (held = new Set()));
    if (held.size >= size) return false;
    held.add(holder);
    return true;
  }

  async releaseSlot(key: string, holder: string): Promise<void> {
    this.#slots.get(key)?.delete(holder);
  }

  async renewSlots(): Promise<void> {
    // One process: its slots go when it goes.
  }

  async publish(): Promise<void> {
    // No other instance reads them.
  }

  async othersUsage(): Promise<Map<string, LimitUsage>> {
    return new Map();
  }

  async close(): Promise<void> {}
}
