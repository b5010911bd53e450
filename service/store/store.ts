// The storage contract, in two parts every adapter (SQLite, Postgres) implements: `RunStore`
// (runs, event log, ledger, stage items, traces) and `OwnershipStore` (leases and the command
// queue); test/service/store/ has a suite for each. The event log is the source of truth: `seq`
// is assigned per run inside the write that appends, gap-free, together with the run's snapshot
// and ledger rows (docs/architecture.md, "The store").

export type ItemId = string | number;

export interface Item {
  id: ItemId;
  title: string;
  [key: string]: unknown;
}

export interface NewRun {
  runId: string;
  accountId: string;
  siteId: string;
  pipeline: string;
  trigger: string;
  options: Record<string, unknown>;
  /** External runs only: the engine's machine name. */
  machineName?: string | null;
  createdAt: string;
  /**
   * An instance of this service works the run and so leases it; false for runs whose machines
   * run elsewhere and are fed over ingest (docs/ingest.md), which no instance claims. [hosted=true]
   */
  hosted?: boolean;
  /** Leases the new run to the instance that creates it. */
  lease?: { owner: string; ms: number };
  /** The W3C `traceparent` the run was started under: its OpenTelemetry spans are children of it. */
  traceParent?: string | null;
  /**
   * Creates the run only if no run holds this key in `scope` (made within `windowMs` before
   * `atMs`), by a unique key written in the same transaction: concurrent starts with one key
   * make one run. Otherwise throws `IdempotencyKeyTakenError` naming the run that holds it.
   */
  idempotency?: IdempotencyClaim;
}

export interface IdempotencyClaim {
  /** Whose keys these are: two tokens may use the same key for different runs. */
  scope: string;
  key: string;
  /** What the request that claims the key asked for (a digest of its body). */
  fingerprint: string;
  /** Epoch ms of the claim. */
  atMs: number;
  /** A key older than this is free again. */
  windowMs: number;
}

export interface RunRecord extends NewRun {
  machineName: string | null;
  traceParent: string | null;
  hosted: boolean;
  /** The run machine's state: idle, running, paused, completed, failed, cancelled. */
  status: string;
  error: string | null;
  /** The run actor's persisted snapshot (children included), null before the first write. */
  snapshot: unknown;
  lastSeq: number;
  updatedAt: string;
  closedAt: string | null;
  /** The instance holding the run's lease, if any. */
  owner: string | null;
}

/** Events as the engine hands them over (no `run_id`, no `seq`) and as stored: service/events.ts. */
export type { NewEvent, StoredEvent } from '../events.js';
import type { NewEvent, StoredEvent } from '../events.js';

export interface LedgerEntry {
  stage: number;
  itemId: ItemId;
  status: 'done' | 'failed';
  attempts: number;
  cost: number;
  error: string | null;
  /**
   * The item was recorded as failed and `retry_failed` ran it again: this entry replaces that
   * row. Without a failed row for the item to replace, a `LedgerConflictError`.
   */
  retried?: true;
}

export interface CommitBatch {
  events: NewEvent[];
  /** Idempotency keys, one per event (null where none); an event whose key was seen is not appended again. */
  eventKeys?: (string | null)[];
  snapshot?: unknown;
  status?: string;
  error?: string | null;
  ledger?: LedgerEntry[];
  closedAt?: string;
  /**
   * Fencing: write only while this instance holds the run's lease. A write by an owner whose
   * lease expired or moved is a `LeaseLostError` and nothing is written.
   */
  owner?: string;
  /**
   * Compare-and-set: write only if the run's `last_seq` is this, else a `SeqConflictError` and
   * nothing is written. A writer that retries a batch whose first try may have landed (the
   * connection dropped around COMMIT) learns so here, under the run's lock, instead of
   * appending it twice.
   */
  expectLastSeq?: number;
}

export interface CommitResult {
  /** The appended events, with their seqs, in order. */
  events: StoredEvent[];
  /** Per event of the batch: its seq, or the seq it was first appended with (repeated key). */
  seqs: number[];
}

export interface RunFilter {
  siteIds?: readonly string[];
  status?: string;
  /** Only runs not closed. */
  open?: boolean;
  /** Only runs listed after this one, newest first: the next page after a page that ended with it. */
  before?: { createdAt: string; runId: string };
  limit?: number;
}

/** Runs, their event log, ledger and stage items, and how far their trace files are written. */
export interface RunStore {
  readonly kind: 'sqlite' | 'postgres';
  /**
   * Creates the run with `last_seq` 0. Throws `StoreConflictError` when the id exists, and
   * `IdempotencyKeyTakenError` when `run.idempotency` names a key another run holds.
   */
  createRun(run: NewRun): Promise<RunRecord>;
  getRun(runId: string): Promise<RunRecord | undefined>;
  /** Newest first. */
  listRuns(filter: RunFilter): Promise<RunRecord[]>;
  /** How many runs are in each status (statuses with none are left out). */
  countRunsByStatus(): Promise<Record<string, number>>;
  /**
   * One atomic write: appends the events with the next seqs, updates the snapshot, status
   * and closedAt, and inserts the ledger entries. A ledger entry that already exists for
   * its (run, stage, item), or is repeated in the batch, is a `LedgerConflictError` and
   * nothing is written; so is a `retried` entry whose item has no failed row to replace. Throws `StoreNotFoundError` for an unknown run. What is written is
   * planned by commit-plan.ts; the adapter only executes the plan.
   */
  commit(runId: string, batch: CommitBatch): Promise<CommitResult>;
  /** The idempotency keys a run's events were appended with, and the seq of each. */
  eventKeys(runId: string): Promise<Map<string, number>>;
  /** Events with seq > afterSeq, in seq order, at most `limit`. */
  readEvents(runId: string, afterSeq: number, limit?: number): Promise<StoredEvent[]>;
  /** Keeps the first list saved for a stage and returns the list that is kept. */
  saveStageItems(runId: string, stage: number, items: readonly Item[]): Promise<Item[]>;
  getStageItems(runId: string, stage: number): Promise<Item[] | undefined>;
  /** The ledger of one run, in the order recorded: every stage, or only `stage`'s rows. */
  ledger(runId: string, stage?: number): Promise<LedgerEntry[]>;
  /** The trace files of the run are known to hold every event up to `seq`. */
  markTraced(runId: string, seq: number): Promise<void>;
  /** Runs whose trace files may lag their event log: every run not marked traced up to its last seq. */
  listUntraced(): Promise<RunRecord[]>;
  /**
   * Hints that other instances appended events (Postgres LISTEN/NOTIFY); `onResync` after the
   * listener reconnects, when hints may have been missed. Absent where one instance is all.
   */
  listen?(onAppended: (runId: string, lastSeq: number) => void, onResync: () => void): Promise<() => Promise<void>>;

  /** A cheap round trip to the database, failing within `timeoutMs`: for the health check. */
  ping?(timeoutMs: number): Promise<void>;

  close(): Promise<void>;
}

/**
 * Ownership: each live, hosted run is worked by one instance, which holds its lease; commands
 * for a run another instance holds wait in a queue for it (docs/operations.md).
 */
export interface OwnershipStore {
  /**
   * Leases to `owner` up to `limit` live, hosted runs (status in `LIVE_RUN_STATUSES`) that nobody
   * holds: never leased, released, or whose lease expired. With `all`, every live hosted run,
   * leased or not: for a store only one instance uses (SQLite), at start.
   */
  claimRuns(owner: string, leaseMs: number, limit: number, opts?: { all?: boolean }): Promise<RunRecord[]>;
  /**
   * Leases a completed, hosted run that is not closed to `owner` (for `retry_failed`, which
   * takes it back to work), unless another instance holds an unexpired lease of it: the run as
   * leased, or undefined.
   */
  leaseFinishedRun(runId: string, owner: string, leaseMs: number): Promise<RunRecord | undefined>;
  /** Extends `owner`'s unexpired leases of live runs; returns the runs it still holds. */
  renewLeases(owner: string, leaseMs: number): Promise<string[]>;
  /** Gives up `owner`'s leases (all, or of these runs) so another instance may claim them at once. */
  releaseLeases(owner: string, runIds?: readonly string[]): Promise<void>;

  /** Queues a command for whoever holds the run; returns its id. */
  enqueueCommand(cmd: { runId: string; command: string; by: string; reason?: string | undefined }): Promise<number>;
  /** Takes the queued commands for runs `owner` holds, oldest first; each is taken once. */
  takeCommands(owner: string): Promise<QueuedCommand[]>;
  finishCommand(id: number, outcome: CommandOutcome): Promise<void>;
  /** The outcome, `pending` while nobody has finished it, `expired` once given up on. */
  commandOutcome(id: number): Promise<CommandOutcome | 'pending' | 'expired'>;
  /** Gives up on a command nobody has taken yet; false if it was taken (its outcome will come). */
  expireCommand(id: number): Promise<boolean>;
}

/** What the service opens: both parts, from one adapter. */
export type Store = RunStore & OwnershipStore;

export interface QueuedCommand {
  id: number;
  runId: string;
  command: string;
  by: string;
  reason: string | null;
}

export type CommandOutcome = { accepted: boolean } | { error: { code: string; message: string } };

export class StoreConflictError extends Error {
  readonly code = 'STORE_CONFLICT';
}

/** The idempotency key is held by a run made within its window: `runId`, asked for with `fingerprint`. */
export class IdempotencyKeyTakenError extends Error {
  readonly code = 'IDEMPOTENCY_KEY_TAKEN';
  constructor(
    readonly runId: string,
    readonly fingerprint: string,
  ) {
    super(`the idempotency key is held by run ${runId}`);
  }
}

export class StoreNotFoundError extends Error {
  readonly code = 'STORE_NOT_FOUND';
}

export class LedgerConflictError extends Error {
  readonly code = 'LEDGER_CONFLICT';
}

/** The writer no longer holds the run's lease: another instance has it. */
export class LeaseLostError extends Error {
  readonly code = 'LEASE_LOST';
}

/** A commit's `expectLastSeq` did not match: the run's log is at `lastSeq`. */
export class SeqConflictError extends Error {
  readonly code = 'SEQ_CONFLICT';
  readonly lastSeq: number;
  constructor(message: string, lastSeq: number) {
    super(message);
    this.lastSeq = lastSeq;
  }
}
