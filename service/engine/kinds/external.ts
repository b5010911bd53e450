// The kind of run whose machines run outside the service (docs/ingest.md). Their events
// arrive from the ingest doors; here they are checked against the run, appended in order,
// folded into the run's view, and announced like the service's own. The only place that
// knows such a run by its pipeline name.
import type { Logger } from 'pino';
import { isTerminalRunState } from '../../../machines/index.js';
import { RunstateError, ingestFailure } from '../../errors.js';
import { events as make, type Command, type ItemRef, type NewEvent, type StoredEvent } from '../../events.js';
import type { RunRecord, Store } from '../../store/store.js';
import { allowedCommands, decide, type CommandState } from '../commands.js';
import type { ProcessingView, RunView } from '../view.js';
import { percentage, recordFields } from '../view.js';
import type { PipelineListing } from '../../pipelines/loader.js';
import type { CommandRequest, CommandResult, DurableView, PreparedStart, RunKind, StartRunRequest } from './kind.js';

/** One event as an external engine sends it, once the ingest doors have checked its shape (service/ingest/events.ts). */
export interface IngestEvent {
  run_id: string;
  event_id: string | null;
  machine_name: string;
  event_type: 'state_change' | 'activity_log' | 'item_processed';
  payload: Record<string, unknown>;
}

/** The pipeline name a run fed from outside is started with. */
export const EXTERNAL_PIPELINE = 'external';

/** What the run's snapshot holds for an external run: a fold over its events. */
export interface ExternalState {
  machineName: string;
  /** The run's status: `running` until the engine reports the `run` machine elsewhere. */
  status: string;
  /** The states the engine's machine has been in, in order of first entry, with item counts. */
  states: { name: string; processed: number; total: number | null }[];
  lastItem: ItemRef | null;
  /** A pause was asked for and the engine outside has not reported the run paused yet. */
  pauseRequested?: boolean;
}

/** One answer per event, in the order sent. */
export type IngestReply = { ok: true; seq: number } | ReturnType<typeof ingestFailure>;

export function initialExternalState(machineName: string): ExternalState {
  return { machineName, status: 'running', states: [], lastItem: null };
}

/** Folds one event into the state (a new object) and says how it is stored. */
function apply(state: ExternalState, e: IngestEvent, at: string): { state: ExternalState; stored: NewEvent } {
  const p = e.payload;
  const base = { machine_name: e.machine_name, ...(e.event_id === null ? {} : { event_id: e.event_id }) };
  if (e.event_type === 'state_change') {
    const to = p.to_state as string;
    const next = { ...state };
    if (e.machine_name === 'run') {
      next.status = to;
      // As the service's own run machine does: a new run state ends a pause under way.
      next.pauseRequested = false;
    } else if (!state.states.some((s) => s.name === to)) next.states = [...state.states, { name: to, processed: 0, total: null }];
    else next.states = [...state.states.filter((s) => s.name !== to), state.states.find((s) => s.name === to)!];
    const payload = {
      from_state: (p.from_state as string | undefined) ?? null,
      to_state: to,
      event_trigger: (p.event_trigger as string | undefined) ?? 'external',
      timestamp: (p.timestamp as number | undefined) ?? Date.now() / 1000,
    };
    return { state: next, stored: make.stateChange({ ...base, payload }, at) };
  }
  if (e.event_type === 'activity_log') {
    return { state, stored: make.activityLog({ ...base, message: p.message as string }, at) };
  }
  const item = p.item as { id: string | number; title: string };
  const ref = { id: item.id, title: item.title };
  const states = state.states.length ? [...state.states] : [{ name: state.machineName, processed: 0, total: null }];
  const current = states.length - 1;
  states[current] = { ...states[current]!, processed: p.processed as number, total: p.total as number };
  return {
    state: { ...state, states, lastItem: ref },
    stored: make.itemProcessed({ ...base, stage: current + 1, processed: p.processed as number, total: p.total as number, item: ref }, at),
  };
}

function commandState(record: RunRecord, st = stateOf(record)): CommandState {
  return { status: st.status, closed: record.closedAt !== null, pauseRequested: st.pauseRequested ?? false };
}

function stateOf(record: RunRecord): ExternalState {
  return (record.snapshot as ExternalState | null) ?? initialExternalState(record.machineName ?? 'external');
}

function currentStageState(status: string): string {
  if (status === 'running' || status === 'paused' || status === 'failed' || status === 'cancelled') return status;
  return status === 'completed' ? 'completed' : 'pending';
}

export function describeExternal(record: RunRecord): RunView {
  const st = stateOf(record);
  const last = st.states.length - 1;
  return {
    ...recordFields(record),
    status: st.status,
    state: st.states[last]?.name ?? null,
    current_stage: last >= 0 ? last + 1 : null,
    error: record.error,
    allowed_commands: allowedCommands(commandState(record, st)),
    stages: st.states.map((s, i) => ({
      number: i + 1,
      name: s.name,
      type: st.machineName,
      state: i === last ? currentStageState(st.status) : 'completed',
      total_items: s.total,
      processed_items: s.processed,
      failed_items: 0,
      credits_used: 0,
      error: null,
    })),
  };
}

export function describeExternalProcessing(record: RunRecord): ProcessingView | undefined {
  const st = stateOf(record);
  const current = st.states.at(-1);
  if (!current) return undefined;
  const total = current.total ?? 0;
  return {
    stage_number: st.states.length,
    stage_name: current.name,
    stage_type: st.machineName,
    total_items: total,
    processed_items: current.processed,
    percentage: current.total === null ? 0 : percentage(current.processed, total),
    // The engine reports what it finished, not what it is working on.
    currently_processing: [],
    up_next: [],
    remaining_count: Math.max(0, total - current.processed),
    status: st.status,
    stage_state: currentStageState(st.status),
  };
}

interface Host {
  record: RunRecord;
  /** Idempotency keys seen, with their seqs. */
  keys: Map<string, number>;
  tail: Promise<unknown>;
}

export interface ExternalRunsOptions {
  store: Store;
  now: () => number;
  logger: Logger;
  announce: (record: RunRecord, events: readonly StoredEvent[]) => void;
}

/** Runs fed from outside: appends their engines' events, one run at a time, in the order they were sent. */
export class ExternalRuns implements RunKind {
  readonly hosted = false;
  readonly #opts: ExternalRunsOptions;
  readonly #hosts = new Map<string, Promise<Host>>();
  readonly #commandListeners = new Set<(runId: string, command: Command) => void>();

  constructor(opts: ExternalRunsOptions) {
    this.#opts = opts;
  }

  serves(pipeline: string): boolean {
    return pipeline === EXTERNAL_PIPELINE;
  }

  /** How `GET /pipelines` lists this kind. */
  get pipeline(): PipelineListing {
    return { name: EXTERNAL_PIPELINE, description: 'Events from an engine outside the service (docs/ingest.md)', stages: [], options_schema: null };
  }

  prepare(req: StartRunRequest): PreparedStart {
    const machineName = req.machineName;
    if (typeof machineName !== 'string' || !/^[A-Za-z0-9_.:-]{1,100}$/.test(machineName)) {
      throw new RunstateError('BAD_REQUEST', 'An external run needs `machine_name`: 1–100 letters, digits, `_`, `.`, `:` or `-`.');
    }
    return {
      machineName,
      options: (req.options ?? {}) as Record<string, unknown>,
      start: async (record, trigger) => {
        // The engine outside reports the states; the run is running until it says otherwise.
        const state = initialExternalState(machineName);
        const started = make.runStarted({ trigger, machine_name: machineName }, record.createdAt);
        const res = await this.#opts.store.commit(record.runId, { events: [started], snapshot: state, status: state.status });
        const stored = { ...record, snapshot: state, status: state.status, lastSeq: res.events.at(-1)!.seq };
        this.#opts.announce(stored, res.events);
        return describeExternal(stored);
      },
    };
  }

  view(record: RunRecord): RunView {
    return describeExternal(record);
  }

  processing(record: RunRecord): ProcessingView | undefined {
    return describeExternalProcessing(record);
  }

  async durableView(record: RunRecord): Promise<DurableView> {
    const processing = record.closedAt === null ? describeExternalProcessing(record) : undefined;
    return { seq: record.lastSeq, run: { ...describeExternal(record), processing: processing ?? null } };
  }

  /** Commands for external runs go to whoever listens (the ingest socket). */
  onCommand(listener: (runId: string, command: Command) => void): () => void {
    this.#commandListeners.add(listener);
    return () => this.#commandListeners.delete(listener);
  }

  /**
   * Appends events of one run in order. `canSee` checks the run's site against the sender.
   * Returns one reply per event: its seq (a repeated `event_id` gets its first seq), or why not.
   */
  async ingest(runId: string, events: readonly IngestEvent[], canSee: (siteId: string) => boolean): Promise<IngestReply[]> {
    const host = await this.#host(runId);
    if (!host) return events.map(() => failure(new RunstateError('RUN_NOT_FOUND', `No run with id ${runId}.`)));
    if (!this.serves(host.record.pipeline)) {
      return events.map(() => failure(new RunstateError('COMMAND_NOT_ALLOWED', `Run ${runId} is run by the service itself; it takes no events from outside.`)));
    }
    if (!canSee(host.record.siteId)) return events.map(() => failure(new RunstateError('FORBIDDEN', `This sender may not reach run ${runId}.`)));
    return this.#serial(host, () => this.#append(host, events));
  }

  /** A command for an external run, by the rules of commands.ts: recorded, then passed to the engine's connection. */
  async command(record: RunRecord, command: Command, req: CommandRequest): Promise<CommandResult> {
    const host = await this.#host(record.runId);
    if (!host) throw new RunstateError('RUN_NOT_FOUND', `No run with id ${record.runId}.`);
    return this.#serial(host, async () => {
      const state = stateOf(host.record);
      const verdict = decide(command, commandState(host.record, state));
      if (verdict.kind === 'refuse') throw new RunstateError('COMMAND_NOT_ALLOWED', verdict.message);
      if (verdict.kind === 'no-op') return { accepted: false, run: describeExternal(host.record) };
      const at = new Date(this.#opts.now()).toISOString();
      const event = make.command({ command, by: req.by, reason: req.reason }, at);
      const closedAt = command === 'close' ? at : undefined;
      const snapshot: ExternalState =
        command === 'pause' ? { ...state, pauseRequested: true } : command === 'resume' ? { ...state, pauseRequested: false } : state;
      const res = await this.#opts.store.commit(record.runId, { events: [event], closedAt, snapshot, status: snapshot.status });
      host.record = {
        ...host.record,
        snapshot,
        lastSeq: res.events.at(-1)?.seq ?? host.record.lastSeq,
        closedAt: closedAt ?? host.record.closedAt,
      };
      this.#opts.announce(host.record, res.events);
      if (command !== 'close') for (const l of this.#commandListeners) l(record.runId, command);
      return { accepted: true, run: describeExternal(host.record) };
    });
  }

  /** Forgets the cached run (its record changed elsewhere). */
  forget(runId: string): void {
    this.#hosts.delete(runId);
  }

  async #append(host: Host, events: readonly IngestEvent[]): Promise<IngestReply[]> {
    const replies: (IngestReply | null)[] = [];
    const batch: NewEvent[] = [];
    const keys: (string | null)[] = [];
    /** Index in `replies` → index in `batch`. */
    const slot = new Map<number, number>();
    const inBatch = new Map<string, number>();
    let state = stateOf(host.record);
    const at = new Date(this.#opts.now()).toISOString();
    events.forEach((e, i) => {
      const seen = e.event_id === null ? undefined : host.keys.get(e.event_id);
      if (seen !== undefined) return void replies.push({ ok: true, seq: seen });
      const twin = e.event_id === null ? undefined : inBatch.get(e.event_id);
      if (twin !== undefined) {
        slot.set(i, twin);
        return void replies.push(null);
      }
      if (isTerminalRunState(state.status)) {
        return void replies.push(failure(new RunstateError('COMMAND_NOT_ALLOWED', `Run ${e.run_id} is ${state.status}; it takes no more events.`)));
      }
      const next = apply(state, e, at);
      state = next.state;
      slot.set(i, batch.length);
      if (e.event_id !== null) inBatch.set(e.event_id, batch.length);
      batch.push(next.stored);
      keys.push(e.event_id);
      replies.push(null);
    });
    if (batch.length > 0) {
      const res = await this.#opts.store.commit(host.record.runId, { events: batch, eventKeys: keys, snapshot: state, status: state.status });
      for (const [i, j] of slot) replies[i] = { ok: true, seq: res.seqs[j]! };
      keys.forEach((k, j) => k !== null && host.keys.set(k, res.seqs[j]!));
      host.record = { ...host.record, snapshot: state, status: state.status, lastSeq: res.events.at(-1)?.seq ?? host.record.lastSeq };
      if (res.events.length > 0) this.#opts.announce(host.record, res.events);
    }
    return replies as IngestReply[];
  }

  #serial<T>(host: Host, work: () => Promise<T>): Promise<T> {
    const result = host.tail.then(work);
    host.tail = result.catch(() => undefined);
    return result;
  }

  #host(runId: string): Promise<Host | undefined> {
    let host = this.#hosts.get(runId);
    if (!host) {
      host = (async () => {
        const record = await this.#opts.store.getRun(runId);
        if (!record) throw new Error('missing');
        const keys = this.serves(record.pipeline) ? await this.#opts.store.eventKeys(runId) : new Map<string, number>();
        return { record, keys, tail: Promise.resolve() };
      })();
      this.#hosts.set(runId, host);
      host.catch(() => this.#hosts.delete(runId));
    }
    return host.catch(() => undefined);
  }
}

function failure(err: RunstateError): IngestReply {
  return ingestFailure(err);
}
