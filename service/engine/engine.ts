import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino, type Logger } from 'pino';
import type { InspectionEvent } from 'xstate';
import { COMMAND_EVENT, isTerminalRunState, type RunContext } from '../../machines/index.js';
import { RunstateError, isErrorCode } from '../errors.js';
import { isName, isRunId, isTrigger, runId as makeRunId } from '../ids.js';
import { PipelineOptionsError, type AnyPipeline } from '../pipelines/types.js';
import { LeaseLostError, StoreConflictError, type QueuedCommand, type RunFilter, type RunRecord, type Store, type StoredEvent } from '../store/store.js';
import { EXTERNAL_PIPELINE, ExternalRuns, describeExternal, describeExternalProcessing, initialExternalState } from './external.js';
import { provideMachines, type ProvidedRunMachine } from './providers.js';
import { RunHost } from './run-host.js';
import { describeProcessing, describeRun, type ProcessingView, type RunView } from './view.js';
import type { RunTelemetry } from '../telemetry/telemetry.js';

export type Command = 'pause' | 'resume' | 'cancel' | 'retry' | 'close';
export const COMMANDS: readonly Command[] = ['pause', 'resume', 'cancel', 'retry', 'close'];

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
  /** OpenTelemetry spans for runs, stages and item attempts (service/telemetry/); none: off. */
  telemetry?: RunTelemetry | null;
}

export interface StartRunRequest {
  accountId: string;
  siteId: string;
  pipeline: string;
  /** [default: 'manual'] */
  trigger?: string;
  options?: unknown;
  /** `pipeline: "external"` only: the name of the engine's machine (DESIGN §9). */
  machineName?: string;
  /** The caller's W3C `traceparent`, kept with the run: its spans are children of that trace. */
  traceParent?: string | null;
}

export interface CommandRequest {
  /** Who sent it: the token's name. */
  by: string;
  reason?: string | undefined;
}

export interface CommandResult {
  /** False when the command changed nothing (pausing a paused run). */
  accepted: boolean;
  run: RunView;
}

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
  readonly #machine: ProvidedRunMachine;
  readonly #onWritten: ((seconds: number) => void) | undefined;
  readonly #telemetry: RunTelemetry | undefined;
  readonly #hosts = new Map<string, RunHost>();
  readonly #listeners = new Set<EventsListener>();
  readonly #retired = new Set<(runId: string) => void>();
  /** Next free suffix per `run_<date>_<time>_<trigger>`, so a burst of starts does not probe. */
  readonly #suffixes = new Map<string, number>();
  readonly #external: ExternalRuns;
  readonly #owner: string;
  readonly #leaseMs: number;
  readonly #commandTimeoutMs: number;
  readonly #beforeResume: ((runs: readonly RunRecord[]) => Promise<void>) | undefined;
  readonly #inspect: ((ev: InspectionEvent) => void) | undefined;
  readonly #timers: NodeJS.Timeout[] = [];
  #claiming: Promise<unknown> = Promise.resolve();
  #stopped = false;

  constructor(opts: EngineOptions) {
    this.#store = opts.store;
    this.#pipelines = new Map(opts.pipelines.map((p) => [p.name, p]));
    this.#log = opts.logger ?? pino({ level: 'silent' });
    this.#now = opts.now ?? Date.now;
    this.#onWritten = opts.onWritten;
    this.#telemetry = opts.telemetry ?? undefined;
    this.#owner = opts.instanceId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.#leaseMs = opts.leaseMs ?? 10_000;
    this.#commandTimeoutMs = opts.commandTimeoutMs ?? 5000;
    this.#beforeResume = opts.beforeResume;
    this.#inspect = opts.inspect;
    if (!Number.isFinite(this.#leaseMs) || this.#leaseMs < 100) throw new TypeError(`Expected \`leaseMs\` to be at least 100, got ${this.#leaseMs}.`);
    this.#machine = provideMachines((id) => this.#requireHost(id), this.#now);
    this.#external = new ExternalRuns({ store: this.#store, now: this.#now, logger: this.#log, announce: (r, e) => this.#announce(r, e) });
  }

  /** Runs whose machines run outside the service: their events come in through the ingest doors. */
  get external(): ExternalRuns {
    return this.#external;
  }

  get store(): Store {
    return this.#store;
  }

  pipelines(): { name: string; description: string; stages: { number: number; key: string; name: string }[] }[] {
    return [...this.#pipelines.values()].map((p) => ({
      name: p.name,
      description: p.description ?? '',
      stages: p.stages.map((s, i) => ({ number: i + 1, key: s.key, name: s.name })),
    }));
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
    return this.#hosts.has(runId);
  }

  /** Runs hosted in memory right now. */
  get hostedRuns(): number {
    return this.#hosts.size;
  }

  async startRun(req: StartRunRequest): Promise<RunView> {
    this.#assertRunning();
    const external = req.pipeline === EXTERNAL_PIPELINE;
    const pipeline = this.#pipelines.get(req.pipeline);
    if (!pipeline && !external) {
      throw new RunstateError(
        'UNKNOWN_PIPELINE',
        `No pipeline named ${JSON.stringify(req.pipeline)}; registered: ${[...this.#pipelines.keys()].join(', ')}.`,
      );
    }
    if (!isName(req.accountId)) throw new RunstateError('BAD_REQUEST', 'Expected `account_id` to be 1–64 letters, digits, `_`, `.` or `-`.');
    if (!isName(req.siteId)) throw new RunstateError('BAD_REQUEST', 'Expected `site_id` to be 1–64 letters, digits, `_`, `.` or `-`.');
    const trigger = req.trigger ?? 'manual';
    if (!isTrigger(trigger)) throw new RunstateError('BAD_REQUEST', 'Expected `trigger` to be 1–32 lowercase letters, digits or `-`.');
    if (external && (typeof req.machineName !== 'string' || !/^[A-Za-z0-9_.:-]{1,100}$/.test(req.machineName))) {
      throw new RunstateError('BAD_REQUEST', 'An external run needs `machine_name`: 1–100 letters, digits, `_`, `.`, `:` or `-`.');
    }
    if (!external && req.machineName !== undefined) throw new RunstateError('BAD_REQUEST', '`machine_name` applies to external runs only.');
    const options = pipeline ? parseOptions(pipeline, req.options) : (req.options ?? {});

    const createdAt = new Date(this.#now());
    const base = makeRunId(createdAt, trigger);
    let record: RunRecord | undefined;
    // Runs started in the same second take the next suffix; another instance may take one first.
    const first = this.#suffixes.get(base) ?? 1;
    for (let attempt = first; !record; attempt++) {
      try {
        record = await this.#store.createRun({
          runId: makeRunId(createdAt, trigger, attempt),
          accountId: req.accountId,
          siteId: req.siteId,
          pipeline: pipeline?.name ?? EXTERNAL_PIPELINE,
          trigger,
          options: (req.options ?? {}) as Record<string, unknown>,
          machineName: external ? req.machineName : null,
          hosted: !external,
          createdAt: createdAt.toISOString(),
          traceParent: req.traceParent ?? null,
          ...(external ? {} : { lease: { owner: this.#owner, ms: this.#leaseMs } }),
        });
        if (this.#suffixes.size > 64) this.#suffixes.clear();
        this.#suffixes.set(base, attempt + 1);
      } catch (err) {
        if (!(err instanceof StoreConflictError) || attempt - first > 10_000) throw err;
      }
    }
    if (!pipeline) {
      // The engine outside reports the states; the run is running until it says otherwise.
      const state = initialExternalState(req.machineName!);
      const started = { event: 'run_started', trigger, machine_name: req.machineName, timestamp: createdAt.toISOString() };
      const res = await this.#store.commit(record.runId, { events: [started], snapshot: state, status: state.status });
      const stored = { ...record, snapshot: state, status: state.status, lastSeq: res.events.at(-1)!.seq };
      this.#announce(stored, res.events);
      return describeExternal(stored);
    }
    const host = this.#host(record, pipeline, options);
    host.start();
    await host.journal.flush();
    return host.view();
  }

  /**
   * Takes over the runs nobody works and puts them back into memory: running runs go on
   * where their last durable write left them (items in flight then run again, same
   * idempotency key); paused and failed runs wait for a command. With SQLite this instance is
   * the only one, so at start it takes every live run; with Postgres only runs whose lease
   * expired or was released. Then keeps doing so (`start`).
   */
  async recover(): Promise<RunRecord[]> {
    return this.#claim(this.#store.kind === 'sqlite');
  }

  /**
   * Keeps this instance's leases alive, takes over runs whose owner died, and applies the
   * commands other instances queue for runs held here. Call once, after `recover`.
   */
  start(): void {
    const every = (ms: number, work: () => Promise<unknown>) => {
      let busy = false;
      const timer = setInterval(() => {
        if (busy || this.#stopped) return;
        busy = true;
        work()
          .catch((err: unknown) => this.#log.error({ err }, 'ownership task failed'))
          .finally(() => (busy = false));
      }, ms);
      timer.unref();
      this.#timers.push(timer);
    };
    every(Math.max(50, Math.floor(this.#leaseMs / 3)), () => this.#renew());
    every(Math.max(50, Math.floor(this.#leaseMs / 2)), () => this.#claim(false));
    every(200, () => this.#applyQueuedCommands());
  }

  async #claim(all: boolean): Promise<RunRecord[]> {
    const run = async () => {
      const claimed = (await this.#store.claimRuns(this.#owner, this.#leaseMs, 100, { all })).filter((r) => !this.#hosts.has(r.runId));
      if (claimed.length === 0) return [];
      await this.#beforeResume?.(claimed);
      const resumed: RunRecord[] = [];
      for (const record of claimed) {
        if (this.#stopped) break;
        const pipeline = this.#pipelines.get(record.pipeline);
        let options: unknown;
        try {
          if (!pipeline) throw new Error(`pipeline ${record.pipeline} is not registered`);
          options = pipeline.parseOptions(record.options);
        } catch (err) {
          this.#log.error({ err, runId: record.runId, pipeline: record.pipeline }, 'cannot resume run; releasing it');
          await this.#store.releaseLeases(this.#owner, [record.runId]);
          continue;
        }
        this.#host(record, pipeline, options).start();
        resumed.push(record);
        this.#log.info({ runId: record.runId, status: record.status, lastSeq: record.lastSeq, owner: this.#owner }, 'run resumed');
      }
      return resumed;
    };
    // One claim at a time: a run is hosted once.
    const result = this.#claiming.then(run, run);
    this.#claiming = result.catch(() => undefined);
    return result;
  }

  /** Renews the leases; a run whose lease was lost is another instance's now: let it go, write nothing. */
  async #renew(): Promise<void> {
    const held = new Set(await this.#store.renewLeases(this.#owner, this.#leaseMs));
    for (const host of [...this.#hosts.values()]) {
      if (held.has(host.runId) || isTerminalRunState(host.state)) continue;
      this.#log.warn({ runId: host.runId, owner: this.#owner }, 'lease lost: another instance has the run');
      host.stop();
      this.#release(host);
    }
  }

  async #applyQueuedCommands(): Promise<void> {
    for (const cmd of await this.#store.takeCommands(this.#owner)) {
      await this.#store.finishCommand(cmd.id, await this.#applyQueued(cmd));
    }
  }

  async #applyQueued(cmd: QueuedCommand) {
    const host = this.#hosts.get(cmd.runId);
    if (!host) return { error: { code: 'UNAVAILABLE', message: 'The run is between instances; try again.' } };
    try {
      const res = await this.#commandHosted(host, cmd.command as Command, { by: cmd.by, reason: cmd.reason ?? undefined });
      return { accepted: res.accepted };
    } catch (err) {
      if (err instanceof RunstateError) return { error: { code: err.code, message: err.message } };
      throw err;
    }
  }

  async getRun(runId: string): Promise<RunView | undefined> {
    const host = this.#hosts.get(runId);
    if (host) return host.view();
    if (!isRunId(runId)) return undefined;
    const record = await this.#store.getRun(runId);
    return record ? this.#describe(record) : undefined;
  }

  /**
   * The run as of its last durable write, with that write's seq: what a subscriber starts
   * from before it follows the events after `seq`. Read from the store, where the snapshot and
   * `last_seq` are written together, so view and seq always agree.
   */
  async durableView(runId: string): Promise<{ seq: number; run: RunView & { processing: ProcessingView | null } } | undefined> {
    if (!isRunId(runId)) return undefined;
    const record = await this.#store.getRun(runId);
    if (!record) return undefined;
    if (record.pipeline === EXTERNAL_PIPELINE) {
      const processing = record.closedAt === null ? describeExternalProcessing(record) : undefined;
      return { seq: record.lastSeq, run: { ...describeExternal(record), processing: processing ?? null } };
    }
    const stages = this.#stagesOf(record);
    const current = (record.snapshot as { context?: { current?: number } } | null)?.context?.current ?? 1;
    const items = this.#hosts.get(runId)?.cachedItems(current) ?? (await this.#store.getStageItems(runId, current));
    const processing = record.closedAt === null ? describeProcessing(record, stages, (n) => (n === current ? items : undefined)) : undefined;
    return { seq: record.lastSeq, run: { ...describeRun(record, stages), processing: processing ?? null } };
  }

  /** The processing card's data; undefined for an unknown or closed run. */
  async currentProcessing(runId: string): Promise<ProcessingView | undefined> {
    const host = this.#hosts.get(runId);
    if (host) return host.processing();
    if (!isRunId(runId)) return undefined;
    const record = await this.#store.getRun(runId);
    if (!record || record.closedAt !== null) return undefined;
    if (record.pipeline === EXTERNAL_PIPELINE) return describeExternalProcessing(record);
    return describeProcessing(record, this.#stagesOf(record), () => undefined);
  }

  async listRuns(filter: RunFilter): Promise<RunView[]> {
    const records = await this.#store.listRuns(filter);
    return records.map((r) => this.#hosts.get(r.runId)?.view() ?? this.#describe(r));
  }

  async command(runId: string, command: Command, req: CommandRequest): Promise<CommandResult> {
    this.#assertRunning();
    const host = this.#hosts.get(runId);
    if (host) return this.#commandHosted(host, command, req);
    const record = isRunId(runId) ? await this.#store.getRun(runId) : undefined;
    if (!record) throw new RunstateError('RUN_NOT_FOUND', `No run with id ${JSON.stringify(runId)}.`);
    if (record.pipeline === EXTERNAL_PIPELINE) {
      const accepted = await this.#external.command(runId, command, req.by, req.reason);
      return { accepted, run: (await this.getRun(runId))! };
    }
    if (command === 'close' || isTerminalRunState(record.status)) {
      return this.#commandFinished(runId, record.status, command, this.#commandEvent(command, req), undefined, record);
    }
    return this.#commandRemote(record, command, req);
  }

  #commandEvent(command: Command, req: CommandRequest) {
    return { event: 'command', command, by: req.by, ...(req.reason ? { reason: req.reason } : {}) };
  }

  async #commandHosted(host: RunHost, command: Command, req: CommandRequest): Promise<CommandResult> {
    const state = host.state;
    if (command === 'close' || isTerminalRunState(state)) {
      return this.#commandFinished(host.runId, state, command, this.#commandEvent(command, req), host, undefined);
    }
    const ctx = host.actor.getSnapshot().context as RunContext;
    if (noOp(command, state, ctx)) return { accepted: false, run: host.view() };
    const type = COMMAND_EVENT[command];
    if (!host.actor.getSnapshot().can({ type })) {
      throw new RunstateError('COMMAND_NOT_ALLOWED', `Cannot ${command} a run that is ${state}.`);
    }
    host.append(this.#commandEvent(command, req));
    host.actor.send({ type });
    await host.journal.flush();
    return { accepted: true, run: host.view() };
  }

  /**
   * A live run another instance holds (or nobody, for a moment after its owner died): the
   * command is queued for the holder, which applies it and answers. Nothing is applied after
   * the wait is given up.
   */
  async #commandRemote(record: RunRecord, command: Command, req: CommandRequest): Promise<CommandResult> {
    const id = await this.#store.enqueueCommand({ runId: record.runId, command, by: req.by, reason: req.reason });
    const deadline = performance.now() + this.#commandTimeoutMs;
    for (;;) {
      const outcome = await this.#store.commandOutcome(id);
      if (outcome === 'expired') break;
      if (outcome !== 'pending') {
        if ('error' in outcome) throw new RunstateError(isErrorCode(outcome.error.code) ? outcome.error.code : 'INTERNAL', outcome.error.message);
        return { accepted: outcome.accepted, run: (await this.getRun(record.runId))! };
      }
      // Once taken, the holder answers: wait for it. Untaken past the deadline: give it up.
      if (performance.now() > deadline && (await this.#store.expireCommand(id))) break;
      await sleep(20);
    }
    throw new RunstateError('UNAVAILABLE', 'The instance that runs this run did not answer in time; nothing was done. Try again.');
  }

  /**
   * Resolves when the run has left memory (or already had): it reached completed or cancelled,
   * or a failed write stopped it.
   */
  async whenRetired(runId: string): Promise<void> {
    if (!this.#hosts.has(runId)) return;
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
    await Promise.allSettled([...this.#hosts.values()].map((h) => h.journal.flush()));
  }

  /**
   * Stops every run actor after writing what they recorded. Items in flight are aborted; they
   * run again, with the same idempotency key, when the service starts next.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    await this.#claiming;
    const hosts = [...this.#hosts.values()];
    await Promise.allSettled(hosts.map((h) => h.journal.flush()));
    for (const h of hosts) h.stop();
    this.#hosts.clear();
    // Another instance may take these runs over at once rather than after the lease runs out.
    await this.#store.releaseLeases(this.#owner).catch((err: unknown) => this.#log.error({ err }, 'releasing leases failed'));
  }

  // --- internals -------------------------------------------------------------------------

  #assertRunning(): void {
    if (this.#stopped) throw new RunstateError('UNAVAILABLE');
  }

  #requireHost(runId: string): RunHost {
    const host = this.#hosts.get(runId);
    if (!host) throw new Error(`run ${runId} is not hosted by this engine`);
    return host;
  }

  #describe(record: RunRecord): RunView {
    return record.pipeline === EXTERNAL_PIPELINE ? describeExternal(record) : describeRun(record, this.#stagesOf(record));
  }

  #stagesOf(record: RunRecord): { key: string; name: string }[] {
    return this.#pipelines.get(record.pipeline)?.stages.map((s) => ({ key: s.key, name: s.name })) ?? [];
  }

  #host(record: RunRecord, pipeline: AnyPipeline, options: unknown): RunHost {
    const host = new RunHost(record, pipeline, options, {
      store: this.#store,
      owner: this.#owner,
      inspect: this.#inspect,
      machine: this.#machine,
      now: this.#now,
      onAppended: (h, events) => this.#announce(h.record, events),
      onWritten: this.#onWritten,
      onFault: (h, err) => {
        // The store refused a write: what is durable stays as it was, and the run resumes from
        // there (here at the next start, or on the instance that took its lease). Holding it in
        // memory would only drift further.
        if (err instanceof LeaseLostError) this.#log.warn({ runId: h.runId }, 'lease lost: another instance has the run');
        else this.#log.error({ err, runId: h.runId }, 'run stopped: its events could not be written');
        h.stop();
        this.#release(h);
      },
      onRetired: (h) => this.#release(h),
      telemetry: this.#telemetry,
    });
    this.#hosts.set(record.runId, host);
    return host;
  }

  #release(host: RunHost): void {
    this.#hosts.delete(host.runId);
    for (const fn of [...this.#retired]) fn(host.runId);
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

  /** close, and commands on runs that are completed or cancelled. */
  async #commandFinished(
    runId: string,
    state: string,
    command: Command,
    commandEvent: { event: string; [k: string]: unknown },
    host: RunHost | undefined,
    record: RunRecord | undefined,
  ): Promise<CommandResult> {
    const view = async () => (await this.getRun(runId))!;
    if (command === 'cancel' && state === 'cancelled') return { accepted: false, run: await view() };
    if (command !== 'close') throw new RunstateError('COMMAND_NOT_ALLOWED', `Cannot ${command} a run that is ${state}.`);
    if (!isTerminalRunState(state)) {
      throw new RunstateError('COMMAND_NOT_ALLOWED', `Cannot close a run that is ${state}: only completed or cancelled runs close.`);
    }
    const current = record ?? (await this.#store.getRun(runId))!;
    if (current.closedAt !== null) return { accepted: false, run: await view() };
    const closedAt = new Date(this.#now()).toISOString();
    const event = { ...commandEvent, timestamp: closedAt };
    if (host) {
      await host.journal.write({ events: [event], closedAt });
      host.record.closedAt = closedAt;
    } else {
      const res = await this.#store.commit(runId, { events: [event], closedAt });
      this.#announce({ ...current, closedAt }, res.events);
    }
    return { accepted: true, run: await view() };
  }
}

function noOp(command: Command, state: string, ctx: RunContext): boolean {
  switch (command) {
    case 'pause':
      return state === 'paused' || (state === 'running' && ctx.pauseRequested);
    case 'resume':
      return state === 'running' && !ctx.pauseRequested;
    default:
      return false;
  }
}

function parseOptions(pipeline: AnyPipeline, raw: unknown): unknown {
  try {
    return pipeline.parseOptions(raw);
  } catch (err) {
    if (err instanceof PipelineOptionsError) throw new RunstateError('INVALID_OPTIONS', err.message);
    throw err;
  }
}
