// What one commit writes, decided without I/O: both adapters read the run's row and the keys
// seen before, ask `planCommit`, and execute the plan with their own SQL; Postgres first tries
// `planAsExpected`'s plan, gated on the row being as the batch expects (docs/architecture.md).
import {
  LeaseLostError,
  LedgerConflictError,
  SeqConflictError,
  StoreNotFoundError,
  type CommitBatch,
  type CommitResult,
  type LedgerEntry,
  type StoredEvent,
} from './store.js';
import { webhookEventOf, type WebhookEvent } from './outbox.js';

/** The run's row as the commit finds it, read under the run's lock. */
export interface RunAtCommit {
  lastSeq: number;
  owner: string | null;
  /** When the owner's lease ends, in ms since the epoch by the database's clock; null when not leased. */
  leaseUntilMs: number | null;
}

export interface CommitInput {
  runId: string;
  batch: CommitBatch;
  /** The run's row, or undefined when there is no such run. */
  run: RunAtCommit | undefined;
  /** Of the keys `keysToLookUp(batch)` names, those the run already has, with their seqs. */
  seen: ReadonlyMap<string, number>;
  /** Now by the clock the leases were written with, in ms since the epoch. */
  nowMs: number;
  /** Now as the run's `updated_at`. */
  now: string;
}

export interface EventRow {
  seq: number;
  /** The stored event's JSON, exactly as returned and broadcast. */
  body: string;
  key: string | null;
}

export interface LedgerRowToInsert {
  stage: number;
  /** The id as text: the unique key (run, stage, item_id). */
  itemId: string;
  /** The id as JSON, so a number comes back a number. */
  item: string;
  status: LedgerEntry['status'];
  attempts: number;
  cost: number;
  error: string | null;
  /** Replaces the item's failed row (`retry_failed`) rather than inserting one. */
  retried: boolean;
  /** The entry this row came from, to name it in a conflict. */
  entry: LedgerEntry;
}

/** The run row's new values; null where the row keeps what it has. */
export interface RunUpdate {
  lastSeq: number;
  snapshot: string | null;
  status: string | null;
  /** Whether `error` is written (an undefined `error` in the batch keeps the row's). */
  setError: boolean;
  error: string | null;
  closedAt: string | null;
  updatedAt: string;
}

/**
 * The transactional outbox: one row per appended event a webhook may report, written with the
 * event. It names the event only (its body is in the event row); the webhook sender fans each row
 * out to the subscriptions that match, so a commit never reads the subscriptions.
 */
export interface OutboxRow {
  seq: number;
  kind: WebhookEvent;
}

export interface CommitPlan {
  run: RunUpdate;
  /** In seq order; empty when every event was a repeat. */
  events: EventRow[];
  ledger: LedgerRowToInsert[];
  /** In seq order; empty for most commits (items), which report nothing. */
  outbox: OutboxRow[];
  /** What `commit` returns once the plan is written. */
  result: CommitResult;
}

/** A plan made on the run as the batch expects it: written only where the run's row is at `lastSeq`, leased to `owner` (unexpired). */
export interface ExpectedPlan extends CommitPlan {
  expected: { lastSeq: number; owner: string };
}

/** The batch's idempotency keys, each once: the ones the adapter looks up before planning. */
export function keysToLookUp(batch: CommitBatch): string[] {
  const keys = new Set<string>();
  batch.events.forEach((_, i) => {
    const key = batch.eventKeys?.[i] ?? null;
    if (key !== null) keys.add(key);
  });
  return [...keys];
}

/**
 * Plans the commit of `batch`: throws `StoreNotFoundError` for an unknown run, `LeaseLostError`
 * when `batch.owner` does not hold an unexpired lease, `SeqConflictError` when the run's
 * `last_seq` is not `batch.expectLastSeq`, and `LedgerConflictError` for an item
 * repeated inside the batch. A key seen before is not appended again, a key repeated inside the
 * batch is appended once, and the appended events take the seqs after `run.lastSeq`, gap-free.
 * An item recorded by an earlier commit is the adapter's to find (its unique index), with
 * {@link ledgerConflict}.
 */
export function planCommit(input: CommitInput): CommitPlan {
  const { runId, batch, run, seen } = input;
  if (!run) throw new StoreNotFoundError(`run ${runId} does not exist`);
  if (batch.owner !== undefined && !holdsLease(run, batch.owner, input.nowMs)) {
    throw new LeaseLostError(`this instance no longer holds the lease of run ${runId}`);
  }
  // Compare-and-set, checked against the row read under the run's lock like the lease.
  if (batch.expectLastSeq !== undefined && run.lastSeq !== batch.expectLastSeq) {
    throw new SeqConflictError(`run ${runId} is at seq ${run.lastSeq}, not ${batch.expectLastSeq}`, run.lastSeq);
  }

  const ledger = ledgerRows(runId, batch.ledger ?? []);
  const seqs: number[] = [];
  const firstSeqOfKey = new Map(seen);
  const events: EventRow[] = [];
  const appended: StoredEvent[] = [];
  const outbox: OutboxRow[] = [];
  let seq = run.lastSeq;
  batch.events.forEach((event, i) => {
    const key = batch.eventKeys?.[i] ?? null;
    const earlier = key === null ? undefined : firstSeqOfKey.get(key);
    if (earlier !== undefined) {
      seqs.push(earlier);
      return;
    }
    seq += 1;
    if (key !== null) firstSeqOfKey.set(key, seq);
    // run_id and seq are the store's to assign, whatever the caller's event carried.
    const { event: name, run_id: _runId, seq: _seq, ...rest } = event;
    const stored = { event: name, run_id: runId, seq, ...rest } as StoredEvent;
    events.push({ seq, body: JSON.stringify(stored), key });
    appended.push(stored);
    seqs.push(seq);
    const kind = webhookEventOf(stored);
    if (kind !== null) outbox.push({ seq, kind });
  });

  return {
    run: {
      lastSeq: seq,
      snapshot: batch.snapshot === undefined ? null : JSON.stringify(batch.snapshot),
      status: batch.status ?? null,
      setError: batch.error !== undefined,
      error: batch.error ?? null,
      closedAt: batch.closedAt ?? null,
      updatedAt: input.now,
    },
    events,
    ledger,
    outbox,
    result: { events: appended, seqs },
  };
}

/**
 * The plan of `batch` on the run as the batch expects to find it: at `expectLastSeq`, leased to
 * `owner`, no key seen before. An adapter may write it gated on the run's row being so, the lease
 * unexpired by the database's clock, in one statement; where the row is not so, that statement
 * writes nothing and the adapter plans with `planCommit` on the row it reads under the lock, which
 * decides the error. Undefined for a batch whose plan depends on more than that row: keys to look
 * up, a retried item (its failed row must be there), or an item repeated in the batch (an error,
 * and which one `planCommit` decides by what it finds).
 */
export function planAsExpected(runId: string, batch: CommitBatch, now: string): ExpectedPlan | undefined {
  const { expectLastSeq, owner } = batch;
  if (expectLastSeq === undefined || owner === undefined) return undefined;
  if (keysToLookUp(batch).length > 0 || batch.ledger?.some((entry) => entry.retried === true)) return undefined;
  // The lease is taken as held here: the statement that writes the plan checks it.
  const run: RunAtCommit = { lastSeq: expectLastSeq, owner, leaseUntilMs: Number.POSITIVE_INFINITY };
  try {
    return { ...planCommit({ runId, batch, run, seen: new Map(), nowMs: 0, now }), expected: { lastSeq: expectLastSeq, owner } };
  } catch (err) {
    if (err instanceof LedgerConflictError) return undefined;
    throw err;
  }
}

/** Fencing: only the owner whose lease has not run out may write. */
export function holdsLease(run: RunAtCommit, owner: string, nowMs: number): boolean {
  return run.owner === owner && run.leaseUntilMs !== null && run.leaseUntilMs > nowMs;
}

/** The error for a ledger entry whose item is already recorded. */
export function ledgerConflict(runId: string, entry: LedgerEntry): LedgerConflictError {
  return new LedgerConflictError(`item ${String(entry.itemId)} of stage ${entry.stage} is already recorded for run ${runId}`);
}

function ledgerRows(runId: string, entries: readonly LedgerEntry[]): LedgerRowToInsert[] {
  const inBatch = new Set<string>();
  return entries.map((entry) => {
    const itemId = String(entry.itemId);
    const unique = `${entry.stage}\u0000${itemId}`;
    if (inBatch.has(unique)) throw ledgerConflict(runId, entry);
    inBatch.add(unique);
    return {
      stage: entry.stage,
      itemId,
      item: JSON.stringify(entry.itemId),
      status: entry.status,
      attempts: entry.attempts,
      cost: entry.cost,
      error: entry.error,
      retried: entry.retried === true,
      entry,
    };
  });
}
