// The engine's front (docs/architecture.md, "The engine"): starts and commands runs and
// serves their views, asking each run's kind (kinds/) what that means, ownership.ts who
// works which run, and commands.ts what each state allows.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { pino, type Logger } from 'pino';
import type { InspectionEvent } from 'xstate';
import { RunstateError } from '../errors.js';
import type { Command, StoredEvent } from '../events.js';
import type { FaultSink } from '../health.js';
import { StoreUnavailableError } from '../store/faults.js';
import { isName, isRunId, isTrigger, runId as makeRunId } from '../ids.js';
import { describePipeline, type PipelineListing } from '../pipelines/loader.js';
import type { AnyPipeline } from '../pipelines/types.js';
import { IdempotencyKeyTakenError, StoreConflictError, type RunFilter, type RunRecord, type Store } from '../store/store.js';
import { ExternalRuns } from './kinds/external.js';
import { InternalRuns } from './kinds/internal.js';
import type { CommandRequest, CommandResult, DurableView, PreparedStart, RunKind, StartRunRequest } from './kinds/kind.js';
import { Ownership } from './ownership.js';
import type { RunTelemetry } from '../telemetry/telemetry.js';
import type { ProcessingView, RunView } from './view.js';

export { COMMANDS, type Command } from './commands.js';
export type { CommandRequest, CommandResult, StartRunRequest } from './kinds/kind.js';

export interface EngineOptions {
  store: Store;
  pipelines: readonly AnyPipeline[];
  /** [default: a silent logger] */
  logger?: Logger;
  /** Epoch ms. [default: Date.now] */
  now?: () => number;
  /** Told how long each durable write took (seconds), for metrics. */
  onWritten?: (seconds: number) => void;
  /** This instance's name in run leases. [default: `<hostname>-<pid>-<random>`] */
  instanceId?: string;
  /** How long a run's lease lasts without renewal; another instance takes the run over after it. [10000] */
  leaseMs?: number;
  /** How long a command for a run another instance holds may wait for that instance. [5000] */
  commandTimeoutMs?: number;
  /** Called with runs this instance is about to resume (claimed at start or taken over), before they run. */
  beforeResume?: (runs: readonly RunRecord[]) => Promise<void>;
  /** Sees every inspection event of every run's actors (the Stately inspector, service/inspect.ts). */
  inspect?: (ev: InspectionEvent) => void;
  /** Told when runs' writes are held (database away, disk full) and when they go through again. */
  faults?: FaultSink;
  /** OpenTelemetry spans for runs, stages and item attempts (service/telemetry/); none: off. */
  telemetry?: RunTelemetry | null;
  /** Items of a run's stage hosted here that wait for a limit (service/limits/), for the processing card. */
  waitingOnLimit?: (runId: string, stage: number) => { key: string; items: number } | undefined;
  /** How many loaded stage items, over every run, stay in memory between reads (stage-items.ts). [100000] */
  itemsInMemory?: number;
  /**
   * How long a run's journal batch stays open for more records (journal.ts): a run whose items
   * finish in quick succession writes a transaction and a snapshot per window. [10]
   */
  batchWindowMs?: number;
}

/** A name for this instance when none is configured: `<hostname>-<pid>-<random>`. */
export function newInstanceId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/** How long an `Idempotency-Key` keeps answering with the run it made (docs/api.md). */
export const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000;

/** Called once per durable batch, in seq order per run. */
export type EventsListener = (run: RunRecord, events: readonly StoredEvent[]) => void;

/**
 * Hosts run actors, starts and commands them, and serves their views. Everything durable
 * goes through the store; everything live is announced to `onEvents` listeners.
 */
export class Engine {
  readonly #store: Store;
  readonly #pipelines: ReadonlyMap<string, AnyPipeline>;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #owner: string;
  readonly #leaseMs: number;
  readonly #listeners = new Set<EventsListener>();
  readonly #retired = new Set<(runId: string) => void>();
  /** Next free suffix per `run_<date>_<time>_<trigger>`, so a burst of starts does not probe. */
  readonly #suffixes = new Map<string, number>();
  readonly #internal: InternalRuns;
  readonly #external: ExternalRuns;
  readonly #kinds: readonly RunKind[];
  readonly #ownership: Ownership;
  readonly #waitingOnLimit: EngineOptions['waitingOnLimit'];
  #stopped = false;

  constructor(opts: EngineOptions) {
    this.#store = opts.store;
    this.#pipelines = new Map(opts.pipelines.map((p) => [p.name, p]));
    this.#log = opts.logger ?? pino({ level: 'silent' });
    this.#now = opts.now ?? Date.now;
    this.#owner = opts.instanceId ?? newInstanceId();
    this.#leaseMs = opts.leaseMs ?? 10_000;
    this.#waitingOnLimit = opts.waitingOnLimit;
    const announce = (r: RunRecord, e: readonly StoredEvent[]) => this.#announce(r, e);
    this.#ownership = new Ownership({
      store: this.#store,
      owner: this.#owner,
      leaseMs: this.#leaseMs,
      commandTimeoutMs: opts.commandTimeoutMs ?? 5000,
      logger: this.#log,
      beforeResume: opts.beforeResume,
      held: () => this.#internal.held(),
      resume: (record) => this.#internal.resume(record),
      lose: (runId) => this.#internal.letGo(runId),
      apply: (cmd) => this.#internal.applyQueued(cmd),
    });
    this.#internal = new InternalRuns({
      store: this.#store,
      pipelines: this.#pipelines,
      owner: this.#owner,
      logger: this.#log,
      now: this.#now,
      inspect: opts.inspect,
      telemetry: opts.telemetry ?? undefined,
      itemsInMemory: opts.itemsInMemory,
      batchWindowMs: opts.batchWindowMs ?? 10,
      onWritten: opts.onWritten,
      announce,
      onReleased: (runId) => {
        for (const fn of [...this.#retired]) fn(runId);
      },
      onRetired: (runId) => this.#ownership.retired(runId),
      faults: opts.faults,
      leaseFinished: (runId) => this.#ownership.leaseFinished(runId),
      commandElsewhere: async (record, command, req) => {
        const res = await this.#ownership.commandElsewhere(record.runId, command, req.by, req.reason);
        return { accepted: res.accepted, run: (await this.getRun(record.runId))! };
      },
    });
    this.#external = new ExternalRuns({ store: this.#store, now: this.#now, logger: this.#log, announce });
    this.#kinds = [this.#external, this.#internal];
  }

  /** Runs whose machines run outside the service: their events come in through the ingest doors. */
  get external(): ExternalRuns {
    return this.#external;
  }

  get store(): Store {
    return this.#store;
  }

  /** The pipelines runs can be started with: the registered ones, then runs fed from outside. */
  pipelines(): PipelineListing[] {
    return [...[...this.#pipelines.values()].map(describePipeline), this.#external.pipeline];
  }

  /** Subscribes to every durable batch of every run. Returns the unsubscribe function. */
  onEvents(listener: EventsListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** This instance's name in run leases. */
  get instanceId(): string {
    return this.#owner;
  }

  /** Whether this instance works the run (and so announces its events itself). */
  isHosted(runId: string): boolean {
    return this.#internal.hosts.has(runId);
  }

  /** A stage's state as its machine has it now, for a run hosted here; undefined otherwise. */
  stageState(runId: string, stage: number): string | undefined {
    const child = this.#internal.hosts.get(runId)?.actor.getSnapshot().children[`stage.${stage}`];
    const value = (child?.getSnapshot() as { value?: unknown } | undefined)?.value;
    return typeof value === 'string' ? value : undefined;
  }

  /** Runs hosted in memory right now. */
  get hostedRuns(): number {
    return this.#internal.hosts.size;
  }

  async startRun(req: StartRunRequest): Promise<RunView> {
    return (await this.#startRun(req, undefined)).run;
  }

  /**
   * Starts a run unless `key` (in `scope`) already made one within `IDEMPOTENCY_WINDOW_MS`: then
   * answers that run, `replayed`, if it was asked for with the same `fingerprint`, and refuses
   * with `IDEMPOTENCY_KEY_REUSED` otherwise. The store's unique key decides, so concurrent
   * starts with one key make one run, on any number of instances.
   */
  async startRunOnce(req: StartRunRequest, key: { scope: string; key: string; fingerprint: string }): Promise<{ run: RunView; replayed: boolean }> {
    return this.#startRun(req, key);
  }

  /**
   * Checks a start request as `startRun` would (pipeline, ids, trigger, options against the
   * pipeline's schema) without starting anything: schedules check what they will start.
   * Throws the `RunstateError` the start would.
   */
  checkStart(req: StartRunRequest): void {
    this.#prepare(req);
  }

  #prepare(req: StartRunRequest): { kind: RunKind; trigger: string; prepared: PreparedStart } {
    const kind = this.#kinds.find((k) => k.serves(req.pipeline));
    if (!kind) {
      throw new RunstateError(
        'UNKNOWN_PIPELINE',
        `No pipeline named ${JSON.stringify(req.pipeline)}; registered: ${[...this.#pipelines.keys()].join(', ')}.`,
      );
    }
    if (!isName(req.accountId)) throw new RunstateError('BAD_REQUEST', 'Expected `account_id` to be 1–64 letters, digits, `_`, `.` or `-`.');
    if (!isName(req.siteId)) throw new RunstateError('BAD_REQUEST', 'Expected `site_id` to be 1–64 letters, digits, `_`, `.` or `-`.');
    const trigger = req.trigger ?? 'manual';
    if (!isTrigger(trigger)) throw new RunstateError('BAD_REQUEST', 'Expected `trigger` to be 1–32 lowercase letters, digits or `-`.');
    return { kind, trigger, prepared: kind.prepare(req) };
  }

  async #startRun(req: StartRunRequest, idem: { scope: string; key: string; fingerprint: string } | undefined): Promise<{ run: RunView; replayed: boolean }> {
    this.#assertRunning();
    const { kind, trigger, prepared } = this.#prepare(req);

    const createdAt = new Date(this.#now());
    const base = makeRunId(createdAt, trigger);
    let record: RunRecord | undefined;
    const leasedFrom = performance.now();
    // Runs started in the same second take the next suffix; another instance may take one first.
    const first = this.#suffixes.get(base) ?? 1;
    for (let attempt = first; !record; attempt++) {
      try {
        record = await this.#store.createRun({
          runId: makeRunId(createdAt, trigger, attempt),
          accountId: req.accountId,
          siteId: req.siteId,
          pipeline: req.pipeline,
          trigger,
          // With the schema's defaults filled in: the run shows, and resumes with, what it ran with.
          options: prepared.options,
          machineName: prepared.machineName,
          createdAt: createdAt.toISOString(),
          traceParent: req.traceParent ?? null,
          hosted: kind.hosted,
          ...(kind.hosted ? { lease: { owner: this.#owner, ms: this.#leaseMs } } : {}),
          ...(idem ? { idempotency: { ...idem, atMs: createdAt.getTime(), windowMs: IDEMPOTENCY_WINDOW_MS } } : {}),
        });
        if (this.#suffixes.size > 64) this.#suffixes.clear();
        this.#suffixes.set(base, attempt + 1);
      } catch (err) {
        if (err instanceof IdempotencyKeyTakenError) return this.#replay(err, idem!.fingerprint);
        if (!(err instanceof StoreConflictError) || attempt - first > 10_000) throw err;
      }
    }
    if (kind.hosted) this.#ownership.leased(leasedFrom);
    return { run: await prepared.start(record, trigger), replayed: false };
  }

  async #replay(held: IdempotencyKeyTakenError, fingerprint: string): Promise<{ run: RunView; replayed: boolean }> {
    if (held.fingerprint !== fingerprint) {
      throw new RunstateError('IDEMPOTENCY_KEY_REUSED', `This Idempotency-Key started run ${held.runId} with another body; use a new key for another run.`);
    }
    const run = await this.getRun(held.runId);
    if (!run) throw new Error(`idempotency key held by run ${held.runId}, which is not there`);
    return { run, replayed: true };
  }

  /**
   * Takes over the runs nobody works and puts them back into memory: running runs go on
   * where their last durable write left them (items in flight then run again, same
   * idempotency key); paused and failed runs wait for a command. With SQLite this instance is
   * the only one, so at start it takes every live run; with Postgres only runs whose lease
   * expired or was released. Then keeps doing so (`start`).
   */
  async recover(): Promise<RunRecord[]> {
    return this.#ownership.recover(this.#store.kind === 'sqlite');
  }

  /**
   * Keeps this instance's leases alive, takes over runs whose owner died, and applies the
   * commands other instances queue for runs held here. Call once, after `recover`.
   */
  start(): void {
    this.#ownership.start();
  }

  async getRun(runId: string): Promise<RunView | undefined> {
    const host = this.#internal.hosts.get(runId);
    if (host) return host.view();
    const record = await this.#record(runId);
    return record ? this.#kindOf(record).view(record) : undefined;
  }

  /**
   * The run as of its last durable write, with that write's seq: what a subscriber starts
   * from before it follows the events after `seq`. Read from the store, where the snapshot and
   * `last_seq` are written together, so view and seq always agree.
   */
  async durableView(runId: string): Promise<DurableView | undefined> {
    const record = await this.#record(runId);
    return record ? this.#kindOf(record).durableView(record) : undefined;
  }

  /**
   * Writes what a run hosted here has recorded so far (its journal's open batch is closed, not
   * left to its window), so that what the store then says of it is the run as it is now: for
   * reads that combine the stored snapshot with the ledger. Nothing for a run not hosted here;
   * while its writes are held, the store shows it as of its last write.
   */
  async caughtUp(runId: string): Promise<void> {
    const host = this.#internal.hosts.get(runId);
    if (!host) return;
    await host.journal.acknowledged().catch((err: unknown) => {
      if (!(err instanceof StoreUnavailableError)) throw err;
    });
  }

  /** The processing card's data; undefined for an unknown or closed run. */
  async currentProcessing(runId: string): Promise<ProcessingView | undefined> {
    const host = this.#internal.hosts.get(runId);
    if (host) {
      const card = await host.processing();
      const waiting = card && this.#waitingOnLimit?.(runId, card.stage_number);
      return card && waiting ? { ...card, limit_waiting: waiting } : card;
    }
    const record = await this.#record(runId);
    if (!record || record.closedAt !== null) return undefined;
    return this.#kindOf(record).processing(record);
  }

  async listRuns(filter: RunFilter): Promise<RunView[]> {
    const records = await this.#store.listRuns(filter);
    return records.map((r) => this.#kindOf(r).view(r));
  }

  async command(runId: string, command: Command, req: CommandRequest): Promise<CommandResult> {
    this.#assertRunning();
    const host = this.#internal.hosts.get(runId);
    if (host) return this.#internal.commandHosted(host, command, req);
    const record = await this.#record(runId);
    if (!record) throw new RunstateError('RUN_NOT_FOUND', `No run with id ${JSON.stringify(runId)}.`);
    return this.#kindOf(record).command(record, command, req);
  }

  /**
   * Resolves when the run has left memory (or already had): it reached completed or cancelled,
   * or a failed write stopped it.
   */
  async whenRetired(runId: string): Promise<void> {
    if (!this.#internal.hosts.has(runId)) return;
    await new Promise<void>((resolve) => {
      const done = (id: string) => {
        if (id !== runId) return;
        this.#retired.delete(done);
        resolve();
      };
      this.#retired.add(done);
    });
  }

  /** Resolves once everything every run has recorded so far is durable (and announced). */
  async settle(): Promise<void> {
    await this.#internal.settle();
  }

  /**
   * Stops every run actor after writing what they recorded. Items in flight are aborted; they
   * run again, with the same idempotency key, when the service starts next.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#ownership.stop();
    await this.#internal.stopAll();
    // Another instance may take these runs over at once rather than after the lease runs out.
    await this.#ownership.release();
  }

  #assertRunning(): void {
    if (this.#stopped) throw new RunstateError('UNAVAILABLE');
  }

  async #record(runId: string): Promise<RunRecord | undefined> {
    return isRunId(runId) ? this.#store.getRun(runId) : undefined;
  }

  /** A stored run of a pipeline no kind serves (no longer registered) reads as the service's own. */
  #kindOf(record: RunRecord): RunKind {
    return this.#kinds.find((k) => k.serves(record.pipeline)) ?? this.#internal;
  }

  #announce(record: RunRecord, events: readonly StoredEvent[]): void {
    for (const listener of this.#listeners) {
      try {
        listener(record, events);
      } catch (err) {
        this.#log.error({ err, runId: record.runId }, 'an events listener threw');
      }
    }
  }
}
