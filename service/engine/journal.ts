import type { CommitBatch, CommitResult, LedgerEntry, NewEvent, Store, StoredEvent } from '../store/store.js';

/** What the journal writes with every batch: the run actor as it stands when the batch closes. */
export interface RunCheckpoint {
  snapshot: unknown;
  status: string;
  error: string | null;
}

export interface JournalOptions {
  store: Store;
  runId: string;
  /** The instance writing: every batch is fenced by its lease of the run. */
  owner: string;
  /** Read when a batch closes, so the snapshot written agrees with the events in it. */
  checkpoint: () => RunCheckpoint;
  /** Called with each batch's events once they are durable, in seq order. */
  onAppended: (events: StoredEvent[]) => void;
  /** A write failed: the run can no longer make durable progress in this process. */
  onFault: (err: unknown) => void;
  /** How long each durable write took, in seconds. */
  onWritten?: (seconds: number) => void;
}

/**
 * One run's durable log writer. Everything recorded by the cascades of the actor system in
 * one turn of the event loop (a command, items finishing, a timer) is closed into one batch
 * at the end of that turn and written in one store transaction, with the snapshot read at
 * that moment: snapshot, ledger and events never disagree, because nothing is recorded
 * outside a cascade and every cascade is over when the batch closes. Batches are written one
 * at a time, in order, so `seq` follows the order in which things were recorded.
 */
export class Journal {
  readonly #opts: JournalOptions;
  #events: NewEvent[] = [];
  #ledger: LedgerEntry[] = [];
  #scheduled = false;
  #tail: Promise<void> = Promise.resolve();
  #faulted = false;

  constructor(opts: JournalOptions) {
    this.#opts = opts;
  }

  record(event: NewEvent, ledger?: LedgerEntry): void {
    this.#events.push(event);
    if (ledger) this.#ledger.push(ledger);
    if (!this.#scheduled) {
      this.#scheduled = true;
      // At the end of this turn of the event loop: every cascade that runs until then (items
      // finishing together) shares one transaction, and the snapshot is read after all of them.
      setImmediate(() => this.#close());
    }
  }

  /** Closes the open batch now (if any) and resolves once everything recorded so far is durable. */
  async flush(): Promise<void> {
    this.#close();
    await this.#tail;
  }

  /** Writes a batch of its own (after whatever is open), for callers that need its result. */
  async write(batch: Omit<CommitBatch, keyof RunCheckpoint>): Promise<CommitResult> {
    this.#close();
    return this.#enqueue({ ...batch, ...this.#opts.checkpoint(), owner: this.#opts.owner });
  }

  #close(): void {
    this.#scheduled = false;
    if (this.#events.length === 0 && this.#ledger.length === 0) return;
    const batch: CommitBatch = { events: this.#events, ledger: this.#ledger, ...this.#opts.checkpoint(), owner: this.#opts.owner };
    this.#events = [];
    this.#ledger = [];
    this.#enqueue(batch).catch(() => {
      // Reported through onFault by #enqueue.
    });
  }

  #enqueue(batch: CommitBatch): Promise<CommitResult> {
    const result = this.#tail.then(async () => {
      if (this.#faulted) throw new Error(`journal of run ${this.#opts.runId} stopped after a failed write`);
      try {
        const started = performance.now();
        const res = await this.#opts.store.commit(this.#opts.runId, batch);
        this.#opts.onWritten?.((performance.now() - started) / 1000);
        if (res.events.length > 0) this.#opts.onAppended(res.events);
        return res;
      } catch (err) {
        this.#faulted = true;
        this.#opts.onFault(err);
        throw err;
      }
    });
    this.#tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}
