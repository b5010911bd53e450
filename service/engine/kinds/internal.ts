// The kind of run the service works itself: its pipelines' stages as XState actors, one
// RunHost per run in memory, each leased to this instance (docs/architecture.md, "The engine").
import type { Logger } from 'pino';
import type { InspectionEvent } from 'xstate';
import { COMMAND_EVENT, isTerminalRunState, type RunContext, type RunEvent } from '../../../machines/index.js';
import { RunstateError } from '../../errors.js';
import { events, isCommand, type Command, type StoredEvent } from '../../events.js';
import type { FaultSink } from '../../health.js';
import { resolveOptions } from '../../pipelines/schema.js';
import { PipelineOptionsError, type AnyPipeline } from '../../pipelines/types.js';
import { LeaseLostError, type CommandOutcome, type QueuedCommand, type RunRecord, type Store } from '../../store/store.js';
import { decide, type CommandState, type Verdict } from '../commands.js';
import { failedToRetry, retryableStages, retryFailedEvent } from '../retry-failed.js';
import { provideMachines, type ProvidedRunMachine } from '../providers.js';
import { RunHost, type HostDeps } from '../run-host.js';
import { StageItems } from '../stage-items.js';
import { describeProcessing, describeRun, type ProcessingView, type RunView } from '../view.js';
import type { RunTelemetry } from '../../telemetry/telemetry.js';
import type { CommandRequest, CommandResult, DurableView, PreparedStart, RunKind, StartRunRequest } from './kind.js';

export interface InternalRunsOptions {
  store: Store;
  pipelines: ReadonlyMap<string, AnyPipeline>;
  /** This instance: the holder of the leases of the runs it hosts. */
  owner: string;
  logger: Logger;
  now: () => number;
  inspect: ((ev: InspectionEvent) => void) | undefined;
  /** OpenTelemetry spans of runs, stages and item attempts (service/telemetry/); undefined: off. */
  telemetry?: RunTelemetry | undefined;
  /** How many loaded stage items stay in memory (stage-items.ts). [100000] */
  itemsInMemory?: number | undefined;
  batchWindowMs: number;
  onWritten: ((seconds: number) => void) | undefined;
  announce: (record: RunRecord, events: readonly StoredEvent[]) => void;
  /** A run left memory: it finished, or this instance can no longer write it. */
  onReleased: (runId: string) => void;
  /** A run finished and left memory (before `onReleased`). */
  onRetired?: (runId: string) => void;
  /** Told when runs' writes are held (database away, disk full) and when they go through again. */
  faults?: FaultSink | undefined;
  /** Leases a completed run to this instance, for `retry_failed`; undefined when another holds it (ownership.ts). */
  leaseFinished: (runId: string) => Promise<RunRecord | undefined>;
  /** Commands a live run that another instance holds: queued for it (ownership.ts). */
  commandElsewhere: (record: RunRecord, command: Command, req: CommandRequest) => Promise<CommandResult>;
}

/** The service's own runs: hosts them, resumes them, and applies their commands. */
export class InternalRuns implements RunKind {
  readonly hosted = true;
  readonly #opts: InternalRunsOptions;
  readonly #machine: ProvidedRunMachine;
  readonly #hosts = new Map<string, RunHost>();
  readonly #items: StageItems;

  /** What every host is given: one object for all of them, its callbacks told which host calls. */
  readonly #hostDeps: HostDeps;

  constructor(opts: InternalRunsOptions) {
    this.#opts = opts;
    this.#items = new StageItems(opts.itemsInMemory === undefined ? {} : { maxItems: opts.itemsInMemory });
    this.#machine = provideMachines((id) => this.#requireHost(id), opts.now);
    this.#hostDeps = this.#makeHostDeps();
  }

  serves(pipeline: string): boolean {
    return this.#opts.pipelines.has(pipeline);
  }

  prepare(req: StartRunRequest): PreparedStart {
    const pipeline = this.#pipeline(req.pipeline);
    if (req.machineName !== undefined) throw new RunstateError('BAD_REQUEST', '`machine_name` applies to external runs only.');
    const { stored, options } = parseOptions(pipeline, req.options);
    return {
      machineName: null,
      options: stored,
      start: async (record) => {
        const host = this.#host(record, pipeline, options);
        host.start();
        // Answered at once while the store holds the first batch (DATABASE_UNAVAILABLE): the run keeps its place.
        await host.journal.acknowledged();
        return host.view();
      },
    };
  }

  /** Puts a run claimed from the store back into memory; false (and logged) when it cannot run here. */
  resume(record: RunRecord): boolean {
    const pipeline = this.#opts.pipelines.get(record.pipeline);
    let options: unknown;
    try {
      if (!pipeline) throw new Error(`pipeline ${record.pipeline} is not registered`);
      options = resolveOptions(pipeline, record.options).options;
    } catch (err) {
      this.#opts.logger.error({ err, runId: record.runId, pipeline: record.pipeline }, 'cannot resume run');
      return false;
    }
    this.#host(record, pipeline, options).start();
    return true;
  }

  /** The runs in memory. */
  get hosts(): ReadonlyMap<string, RunHost> {
    return this.#hosts;
  }

  /**
   * The runs held here, and whether each still needs its lease (it has not finished), made as
   * they are read: a caller that only asks whether there are any reads one.
   */
  *held(): Generator<{ runId: string; live: boolean }> {
    for (const h of this.#hosts.values()) yield { runId: h.runId, live: !isTerminalRunState(h.state) };
  }

  /** Applies a command another instance queued for a run held here, and says how it went. */
  async applyQueued(cmd: QueuedCommand): Promise<CommandOutcome> {
    const host = this.#hosts.get(cmd.runId);
    if (!isCommand(cmd.command)) return { error: { code: 'BAD_REQUEST', message: `Unknown command ${JSON.stringify(cmd.command)}.` } };
    if (!host) return { error: { code: 'UNAVAILABLE', message: 'The run is between instances; try again.' } };
    try {
      const res = await this.commandHosted(host, cmd.command, { by: cmd.by, reason: cmd.reason ?? undefined });
      return { accepted: res.accepted };
    } catch (err) {
      if (err instanceof RunstateError) return { error: { code: err.code, message: err.message } };
      throw err;
    }
  }

  /** Stops a run's actor and forgets it: another instance has it now, or it must not write again. */
  letGo(runId: string): void {
    const host = this.#hosts.get(runId);
    if (!host) return;
    host.stop();
    this.#release(host);
  }

  view(record: RunRecord): RunView {
    return this.#hosts.get(record.runId)?.view() ?? describeRun(record, this.#stagesOf(record));
  }

  /** For a run not in memory here (the engine asks a hosted run's host). */
  processing(record: RunRecord): ProcessingView | undefined {
    return describeProcessing(record, this.#stagesOf(record), () => undefined);
  }

  async durableView(record: RunRecord): Promise<DurableView> {
    const stages = this.#stagesOf(record);
    const current = (record.snapshot as { context?: Partial<RunContext> } | null)?.context?.current ?? 1;
    const items = this.#hosts.get(record.runId)?.cachedItems(current) ?? (await this.#opts.store.getStageItems(record.runId, current));
    const processing = record.closedAt === null ? describeProcessing(record, stages, (n) => (n === current ? items : undefined)) : undefined;
    return { seq: record.lastSeq, run: { ...describeRun(record, stages), processing: processing ?? null } };
  }

  async command(record: RunRecord, command: Command, req: CommandRequest): Promise<CommandResult> {
    const host = this.#hosts.get(record.runId);
    if (host) return this.commandHosted(host, command, req);
    const view = describeRun(record, this.#stagesOf(record));
    // Only a finished run is settled enough to decide here; a live one is its holder's to decide.
    if (command !== 'close' && !isTerminalRunState(view.status)) return this.#opts.commandElsewhere(record, command, req);
    const verdict = decide(command, { status: view.status, closed: record.closedAt !== null, pauseRequested: false, failedToRetry: failedToRetry(record.snapshot) });
    if (command === 'retry_failed' && applies(verdict)) return this.#revive(record, req);
    if (!applies(verdict)) return { accepted: false, run: view };
    const closedAt = new Date(this.#opts.now()).toISOString();
    const res = await this.#opts.store.commit(record.runId, { events: [events.command({ command, by: req.by, reason: req.reason }, closedAt)], closedAt });
    const closed = { ...record, closedAt, lastSeq: res.events.at(-1)?.seq ?? record.lastSeq };
    this.#opts.announce(closed, res.events);
    return { accepted: true, run: describeRun(closed, this.#stagesOf(closed)) };
  }

  /** A command for a run in memory here. */
  async commandHosted(host: RunHost, command: Command, req: CommandRequest): Promise<CommandResult> {
    if (command === 'retry_failed') return this.#retryFailed(host, req);
    const snap = host.actor.getSnapshot();
    const status = String(snap.value);
    const verdict = decide(command, commandStateOf(host));
    // A live run whose batch is held (the store away) takes no command until it lands; close goes through the journal, which says so itself.
    if (command !== 'close' && !isTerminalRunState(status) && host.journal.holding) throw new RunstateError('DATABASE_UNAVAILABLE');
    if (!applies(verdict)) return { accepted: false, run: host.view() };
    const at = new Date(this.#opts.now()).toISOString();
    const event = events.command({ command, by: req.by, reason: req.reason }, at);
    if (command === 'close') {
      await host.journal.write({ events: [event], closedAt: at });
      host.record.closedAt = at;
      return { accepted: true, run: host.view() };
    }
    host.append(event);
    host.actor.send({ type: COMMAND_EVENT[command] } as RunEvent);
    await host.journal.acknowledged();
    return { accepted: true, run: host.view() };
  }

  /**
   * `retry_failed` on a run in memory: reads its failed items from the ledger (once everything
   * it recorded is durable) and hands them to the run machine (docs/api.md, "Retry failed items").
   */
  async #retryFailed(host: RunHost, req: CommandRequest): Promise<CommandResult> {
    if (host.journal.holding) throw new RunstateError('DATABASE_UNAVAILABLE');
    applies(decide('retry_failed', commandStateOf(host)));
    await host.journal.acknowledged();
    const store = this.#opts.store;
    const stages = retryableStages(host.liveSnapshot());
    const ledger = await store.ledger(host.runId);
    const items = new Map(await Promise.all(stages.map(async (n) => [n, host.cachedItems(n) ?? (await store.getStageItems(host.runId, n))] as const)));
    // The run may have moved while the ledger was read: it left memory (it had just completed,
    // and retired), or another command came. Decide again, from where it is now.
    if (this.#hosts.get(host.runId) !== host) {
      const record = await store.getRun(host.runId);
      if (!record) throw new RunstateError('RUN_NOT_FOUND', `No run with id ${JSON.stringify(host.runId)}.`);
      return this.command(record, 'retry_failed', req);
    }
    applies(decide('retry_failed', commandStateOf(host)));
    const retry = retryFailedEvent(stages, ledger, (n) => items.get(n));
    if (retry.stages.length === 0) throw new RunstateError('COMMAND_NOT_ALLOWED', 'The run has no failed items to retry.');
    host.append(events.command({ command: 'retry_failed', by: req.by, reason: req.reason }, new Date(this.#opts.now()).toISOString()));
    host.actor.send(retry);
    await host.journal.acknowledged();
    return { accepted: true, run: host.view() };
  }

  /**
   * `retry_failed` on a completed run, which is in no instance's memory: leased here and put
   * back into memory as it was, then commanded. Another instance that got there first has it.
   */
  async #revive(record: RunRecord, req: CommandRequest): Promise<CommandResult> {
    const leased = await this.#opts.leaseFinished(record.runId);
    if (!leased) {
      const now = await this.#opts.store.getRun(record.runId);
      if (now && !isTerminalRunState(now.status)) return this.#opts.commandElsewhere(now, 'retry_failed', req);
      throw new RunstateError('UNAVAILABLE', 'Another instance is taking this run back to work; try again.');
    }
    const host = this.#hosts.get(record.runId);
    if (host) return this.commandHosted(host, 'retry_failed', req);
    if (!this.resume(leased)) throw new RunstateError('INTERNAL', `Run ${record.runId} cannot be resumed here.`);
    const revived = this.#hosts.get(record.runId)!;
    try {
      return await this.commandHosted(revived, 'retry_failed', req);
    } catch (err) {
      // Nothing was sent to the machine (or it was refused): the run goes back to rest, unleased.
      if (revived.state === 'completed') {
        this.letGo(record.runId);
        await this.#opts.store.releaseLeases(this.#opts.owner, [record.runId]).catch(() => undefined);
      }
      throw err;
    }
  }

  /** Resolves once everything every run has recorded so far is durable (and announced). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.#hosts.values()].map((h) => h.journal.flush()));
  }

  /** Writes what every run recorded, then stops every actor; items in flight run again at the next start. */
  async stopAll(): Promise<void> {
    const hosts = [...this.#hosts.values()];
    // Not past a held write: with the store away, what it holds was never acknowledged and runs again.
    await Promise.allSettled(hosts.map((h) => h.journal.acknowledged()));
    for (const h of hosts) h.stop();
    this.#hosts.clear();
  }

  #pipeline(name: string): AnyPipeline {
    const pipeline = this.#opts.pipelines.get(name);
    if (!pipeline) throw new RunstateError('UNKNOWN_PIPELINE', `No pipeline named ${JSON.stringify(name)}.`);
    return pipeline;
  }

  #requireHost(runId: string): RunHost {
    const host = this.#hosts.get(runId);
    if (!host) throw new Error(`run ${runId} is not hosted by this engine`);
    return host;
  }

  #stagesOf(record: RunRecord): { key: string; name: string }[] {
    return this.#opts.pipelines.get(record.pipeline)?.stages.map((s) => ({ key: s.key, name: s.name })) ?? [];
  }

  #host(record: RunRecord, pipeline: AnyPipeline, options: unknown): RunHost {
    const host = new RunHost(record, pipeline, options, this.#hostDeps);
    this.#hosts.set(record.runId, host);
    return host;
  }

  #makeHostDeps(): HostDeps {
    const log = this.#opts.logger;
    return {
      store: this.#opts.store,
      owner: this.#opts.owner,
      inspect: this.#opts.inspect,
      machine: this.#machine,
      now: this.#opts.now,
      onAppended: (h, batch) => this.#opts.announce(h.record, batch),
      onWritten: this.#opts.onWritten,
      batchWindowMs: this.#opts.batchWindowMs,
      onHold: (h, err) => {
        log.warn({ err, runId: h.runId }, 'a write is held: the store refuses writes for now; the run keeps its place');
        this.#opts.faults?.fault('writes', err);
      },
      onResume: (h) => {
        log.info({ runId: h.runId }, 'the held write went through; the run goes on');
        this.#opts.faults?.ok('writes');
      },
      onFault: (h, err) => {
        // The store refused a write: what is durable stays as it was, and the run resumes from
        // there (here at the next start, or on the instance that took its lease). Holding it in
        // memory would only drift further.
        if (err instanceof LeaseLostError) log.warn({ runId: h.runId }, 'lease lost: another instance has the run');
        else log.error({ err, runId: h.runId }, 'run stopped: its events could not be written');
        h.stop();
        this.#release(h);
      },
      onRetired: (h) => {
        if (this.#hosts.get(h.runId) === h) this.#opts.onRetired?.(h.runId);
        this.#release(h);
      },
      telemetry: this.#opts.telemetry,
      items: this.#items,
    };
  }

  #release(host: RunHost): void {
    // A host already replaced (or let go) is not released twice.
    if (this.#hosts.get(host.runId) !== host) return;
    this.#hosts.delete(host.runId);
    this.#items.drop(host.runId, host.pipeline.stages.length);
    this.#opts.onReleased(host.runId);
  }
}

/** What the rules of commands.ts look at, for a run in memory. */
function commandStateOf(host: RunHost): CommandState {
  const snap = host.actor.getSnapshot();
  return {
    status: String(snap.value),
    closed: host.record.closedAt !== null,
    pauseRequested: snap.context.pauseRequested,
    failedToRetry: failedToRetry(host.liveSnapshot()),
  };
}

/** Applies or no-ops; a refusal is the 409 of docs/api.md. */
function applies(verdict: Verdict): boolean {
  if (verdict.kind === 'refuse') throw new RunstateError('COMMAND_NOT_ALLOWED', verdict.message);
  return verdict.kind === 'apply';
}

function parseOptions(pipeline: AnyPipeline, raw: unknown): ReturnType<typeof resolveOptions> {
  try {
    return resolveOptions(pipeline, raw);
  } catch (err) {
    if (err instanceof PipelineOptionsError) throw new RunstateError('INVALID_OPTIONS', err.message);
    throw err;
  }
}
