import { StoreUnavailableError, isTransient } from '../store/faults.js';
import { SeqConflictError, type CommitBatch, type CommitResult, type LedgerEntry, type NewEvent, type Store, type StoredEvent } from '../store/store.js';

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
  /** The run's last durable seq when the journal starts: each batch is written on top of the one before (`expectLastSeq`). */
  lastSeq: number;
  /** Read when a batch closes, so the snapshot written agrees with the events in it. */
  checkpoint: () => RunCheckpoint;
  /** Called with each batch's events once they are durable, in seq order. */
  onAppended: (events: StoredEvent[]) => void;
  /** A write failed for good (a lost lease, a conflict, a bug): the run can no longer make durable progress in this process. */
  onFault: (err: unknown) => void;
  /** A write failed for a reason that passes (database away, disk full): the batch is kept and tried again. */
  onHold?: (err: unknown) => void;
  /** The batch held was written: the journal goes on. */
  onResume?: () => void;
  /** How long each durable write took, in seconds. */
  onWritten?: (seconds: number) => void;
  /** Delay before the n-th retry of a held batch (n from 0). [50 ms doubling to 2 s, with jitter] */
  retryDelay?: (attempt: number) => number;
  /**
   * How long a batch stays open after its first record, at most: it closes at the end of the
   * first turn of the event loop after that. [0: at the end of the turn it opened in]
   */
  batchWindowMs?: number;
}

/** The journal was stopped (its run left this process) before the batch was written. */
export class JournalStoppedError extends Error {
  readonly code = 'JOURNAL_STOPPED';
}

const defaultRetryDelay = (attempt: number): number => Math.min(2000, 50 * 2 ** attempt) * (0.5 + Math.random() / 2);

/**
 * One run's durable log writer. Everything recorded by the cascades of the actor system while
 * a batch is open (a command, items finishing, a timer) is closed into one batch and written in
 * one store transaction, with the snapshot read at that moment: snapshot, ledger and events
 * never disagree, because nothing is recorded outside a cascade and a batch closes only
 * between two turns of the event loop, when every cascade is over. A batch opens at its first
 * record and closes at the end of the first turn `batchWindowMs` after that, so a run whose
 * items finish in quick succession writes one transaction and one snapshot per window, not per
 * turn; anyone who waits for durability (`flush`, `acknowledged`, `write`) closes it at once.
 * Batches are written one at a time, in order, so `seq` follows the order in which things
 * were recorded.
 *
 * When a write fails for a reason that passes (the database is away, the disk is full), the
 * batch is *held*: tried again with backoff until it lands, while whatever the run records
 * meanwhile (items finishing in memory) waits in the open batch, closed (with the snapshot
 * of that moment) once the held one is written. Each batch is a compare-and-set on the
 * run's `last_seq`, so a retry of a batch whose first try landed unseen (the connection
 * dropped around COMMIT) is recognised and read back, never appended twice.
 */
export class Journal {
  readonly #opts: JournalOptions;
  #events: NewEvent[] = [];
  #ledger: LedgerEntry[] = [];
  #scheduled = false;
  /** When the open batch took its first record (performance.now()), and how many batches were opened. */
  #openedAt = 0;
  #opened = 0;
  /** Set while the open batch waits for the end of its window. */
  #windowTimer: NodeJS.Timeout | undefined;
  /** Batches given to the store and not yet answered. */
  #writing = 0;
  /** The open batch's number when its window ended while a write was under way: it closes when the store answers. */
  #dueAfterWrite: number | undefined;
  #tail: Promise<void> = Promise.resolve();
  #faulted = false;
  #stopped = false;
  /** The run's last durable seq, as far as this journal knows. */
  #seq: number;
  /** How many events `record` took, and how many of those are durable: `acknowledged` waits for the first as it was when called. */
  #recorded = 0;
  #durable = 0;
  /** The error a held batch last failed with; undefined while writes go through. */
  #holding: unknown;
  /** Callers waiting for an acknowledgement, told at once when a batch is held. */
  readonly #waiters = new Set<(err: unknown) => void>();
  #wake: (() => void) | undefined;

  constructor(opts: JournalOptions) {
    this.#opts = opts;
    this.#seq = opts.lastSeq;
  }

  /** The run's last durable seq: that of the last batch written (or the one it started from). */
  get seq(): number {
    return this.#seq;
  }

  /** Whether `stop` was called: nothing more is written. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Whether a batch is held (the store refuses writes for now). */
  get holding(): boolean {
    return this.#holding !== undefined;
  }

  record(event: NewEvent, ledger?: LedgerEntry): void {
    if (this.#stopped) return;
    this.#recorded += 1;
    this.#events.push(event);
    if (ledger) this.#ledger.push(ledger);
    if (!this.#scheduled) {
      this.#scheduled = true;
      this.#openedAt = performance.now();
      const batch = ++this.#opened;
      // Not before the end of this turn: every cascade that runs until then (items finishing
      // together) shares the transaction, and the snapshot is read after all of them.
      setImmediate(() => this.#closeWhenDue(batch));
    }
  }

  /**
   * Closes batch number `batch` if its window has passed, or looks again when it will have;
   * nothing if it was closed already. While the store has a write of this run under way (on
   * Postgres, round trips that take a while), the batch stays open until that write is
   * answered: what is recorded meanwhile joins it, one transaction instead of a queue of them.
   */
  #closeWhenDue(batch: number): void {
    this.#windowTimer = undefined;
    if (!this.#scheduled || batch !== this.#opened) return;
    const left = (this.#opts.batchWindowMs ?? 0) - (performance.now() - this.#openedAt);
    if (left > 0) this.#windowTimer = setTimeout(() => this.#closeWhenDue(batch), left);
    else if (this.#writing > 0) this.#dueAfterWrite = batch;
    else this.#close();
  }

  /** A write was answered: a batch that came due meanwhile closes at the end of this turn. */
  #written(): void {
    this.#writing -= 1;
    const due = this.#dueAfterWrite;
    if (this.#writing > 0 || due === undefined) return;
    this.#dueAfterWrite = undefined;
    setImmediate(() => this.#closeWhenDue(due));
  }

  /** Closes the open batch now (if any) and resolves once everything recorded so far is durable, however long that takes. */
  async flush(): Promise<void> {
    this.#close();
    await this.#tail;
    // A batch held meanwhile kept later records open: they are closed once it lands.
    while (!this.#stopped && !this.#faulted && (this.#events.length > 0 || this.#ledger.length > 0)) {
      this.#close();
      await this.#tail;
    }
  }

  /**
   * As `flush`, for a caller that answers someone (an HTTP request): rejects with a
   * `StoreUnavailableError` as soon as a batch is held rather than waiting for the store. What
   * was recorded stays in the journal and is written when the store is back.
   */
  async acknowledged(): Promise<void> {
    if (this.#holding !== undefined) throw new StoreUnavailableError(undefined, { cause: this.#holding });
    let reject: ((err: unknown) => void) | undefined;
    const held = new Promise<never>((_, r) => {
      reject = (err) => r(new StoreUnavailableError(undefined, { cause: err }));
      this.#waiters.add(reject);
    });
    try {
      await Promise.race([this.#durableUpTo(this.#recorded), held]);
    } finally {
      this.#waiters.delete(reject!);
    }
  }

  /**
   * Resolves once the first `target` recorded events are durable. Unlike `flush`, events recorded
   * meanwhile do not keep it waiting: a run whose items finish faster than a commit would
   * otherwise hold its caller's answer until the run ends.
   */
  async #durableUpTo(target: number): Promise<void> {
    while (!this.#stopped && !this.#faulted && this.#durable < target) {
      this.#close();
      await this.#tail;
    }
  }

  /** Writes a batch of its own (after whatever is open), for callers that need its result. */
  async write(batch: Omit<CommitBatch, keyof RunCheckpoint>): Promise<CommitResult> {
    // While a batch is held, earlier records wait in the open batch: this one may not pass them.
    if (this.#holding !== undefined) throw new StoreUnavailableError(undefined, { cause: this.#holding });
    this.#close();
    return this.#enqueue({ ...batch, ...this.#opts.checkpoint(), owner: this.#opts.owner });
  }

  /** Stops writing: the run has left this process. A held batch is dropped (it was never acknowledged). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#windowTimer);
    this.#events = [];
    this.#ledger = [];
    this.#wake?.();
  }

  #close(): void {
    clearTimeout(this.#windowTimer);
    this.#windowTimer = undefined;
    this.#scheduled = false;
    if (this.#events.length === 0 && this.#ledger.length === 0) return;
    // Held: what is recorded meanwhile joins one batch, closed when the held one lands.
    if (this.#holding !== undefined || this.#stopped) return;
    const batch: CommitBatch = { events: this.#events, ledger: this.#ledger, ...this.#opts.checkpoint(), owner: this.#opts.owner };
    this.#events = [];
    this.#ledger = [];
    this.#enqueue(batch, batch.events.length).catch(() => {
      // Reported through onFault by #enqueue.
    });
  }

  /** `recorded`: how many of the batch's events came through `record`. */
  #enqueue(batch: CommitBatch, recorded = 0): Promise<CommitResult> {
    this.#writing += 1;
    const result = this.#tail.then(() => this.#writeHeld(batch, recorded));
    this.#tail = result.then(
      () => this.#written(),
      () => this.#written(),
    );
    return result;
  }

  async #writeHeld(batch: CommitBatch, recorded: number): Promise<CommitResult> {
    for (let attempt = 0; ; attempt++) {
      if (this.#faulted) throw new Error(`journal of run ${this.#opts.runId} stopped after a failed write`);
      if (this.#stopped) throw new JournalStoppedError(`run ${this.#opts.runId} left this process before the batch was written`);
      try {
        const started = performance.now();
        const res = await this.#commit(batch, attempt > 0);
        this.#opts.onWritten?.((performance.now() - started) / 1000);
        if (this.#stopped) throw new JournalStoppedError(`run ${this.#opts.runId} left this process`);
        this.#seq = res.events.at(-1)?.seq ?? this.#seq;
        this.#durable += recorded;
        if (res.events.length > 0) this.#opts.onAppended(res.events);
        if (this.#holding !== undefined) {
          this.#holding = undefined;
          this.#opts.onResume?.();
          // What was recorded while held goes next.
          setImmediate(() => this.#close());
        }
        return res;
      } catch (err) {
        if (this.#stopped || err instanceof JournalStoppedError) throw err;
        if (!isTransient(err)) {
          this.#faulted = true;
          this.#holding = undefined;
          this.#opts.onFault(err);
          throw err;
        }
        const first = this.#holding === undefined;
        this.#holding = err;
        if (first) this.#opts.onHold?.(err);
        for (const tell of [...this.#waiters]) tell(err);
        await this.#sleep((this.#opts.retryDelay ?? defaultRetryDelay)(attempt));
      }
    }
  }

  /** One try. A retry that finds the log already past this batch by exactly its events reads them back: the earlier try landed. */
  async #commit(batch: CommitBatch, retry: boolean): Promise<CommitResult> {
    const expected = this.#seq;
    try {
      return await this.#opts.store.commit(this.#opts.runId, { ...batch, expectLastSeq: expected });
    } catch (err) {
      const n = batch.events.length;
      if (!retry || !(err instanceof SeqConflictError) || n === 0 || err.lastSeq !== expected + n) throw err;
      const events = await this.#opts.store.readEvents(this.#opts.runId, expected, n);
      if (events.length !== n) throw err;
      return { events, seqs: events.map((e) => e.seq) };
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    }).finally(() => (this.#wake = undefined));
  }
}
