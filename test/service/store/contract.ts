// What the store suites share: how an adapter's test file opens a store, and the runs, events
// and ledger entries they are built from. Every adapter runs both suites
// (test/service/store/<adapter>.test.ts): run-store.contract.ts for `RunStore`,
// ownership.contract.ts for `OwnershipStore`. They assert only what service/store/store.ts
// promises, so a second adapter that passes them can replace SQLite without the engine noticing.
import { afterEach, beforeEach } from 'vitest';
import type { Item, LedgerEntry, NewEvent, NewRun, Store, StoredEvent } from '../../../service/store/store.js';

/** An activity event's message (undefined for any other event). */
export function messageOf(e: StoredEvent): string | undefined {
  return e.event === 'activity_log' ? e.message : undefined;
}

/** The store keeps whatever fields an event carries, typed or not: these tests hand it such events. */
export function untyped(e: object): NewEvent {
  return e as NewEvent;
}

export interface OpenedStore {
  store: Store;
  /** Closes the store and removes whatever it stored (files, schema, database). */
  cleanup(): Promise<void>;
}

/** Opens an empty store of the adapter under test; called once per test. */
export type OpenStore = () => Promise<OpenedStore>;

/** `n` seconds after a fixed instant, so creation order is explicit and never ties. */
export function at(n: number): string {
  return new Date(Date.UTC(2025, 11, 4, 19, 0, n)).toISOString();
}

export function newRun(runId: string, overrides: Partial<NewRun> = {}): NewRun {
  return {
    runId,
    accountId: 'acct_1',
    siteId: 'site_1',
    pipeline: 'content',
    trigger: 'manual',
    options: { stages: [1, 2, 3], dryRun: false },
    createdAt: at(0),
    ...overrides,
  };
}

export function activity(message: string, extra: Record<string, unknown> = {}): NewEvent {
  return { event: 'activity_log', timestamp: at(1), message, ...extra };
}

export function activities(count: number, prefix = 'm'): NewEvent[] {
  return Array.from({ length: count }, (_, i) => activity(`${prefix}${i}`));
}

export function done(stage: number, itemId: Item['id'], overrides: Partial<LedgerEntry> = {}): LedgerEntry {
  return { stage, itemId, status: 'done', attempts: 1, cost: 0, error: null, ...overrides };
}

export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

export async function seqsOf(store: Store, runId: string): Promise<number[]> {
  return (await store.readEvents(runId, 0)).map((e) => e.seq);
}

/** A fresh store for each test of the enclosing `describe`; `current()` is the test's store. */
export function useStore(open: OpenStore): () => Store {
  let opened: OpenedStore | undefined;
  beforeEach(async () => {
    opened = await open();
  });
  afterEach(async () => {
    await opened?.cleanup();
    opened = undefined;
  });
  return () => {
    if (!opened) throw new Error('useStore(): the store is used outside a test');
    return opened.store;
  };
}
