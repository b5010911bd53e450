import { setTimeout as sleep } from 'node:timers/promises';
import { createActor, type Actor, type InspectionEvent } from 'xstate';
import {
  isTerminalRunState,
  restorableRunSnapshot,
  type ItemJob,
  type ItemOutcome,
  type ItemRecord,
  type LoadOutcome,
  type StageContext,
} from '../../machines/index.js';
import { events, type NewEvent, type StoredEvent } from '../events.js';
import { errorMessage } from '../format.js';
import { isFinalAttempt, isReleasedAttempt } from '../pipelines/attempts.js';
import type { AnyPipeline, ItemContext, LoadContext, StageDefinition } from '../pipelines/types.js';
import { isTransient } from '../store/faults.js';
import type { Item, RunRecord, Store } from '../store/store.js';
import type { RunSpans, RunTelemetry } from '../telemetry/telemetry.js';
import { Journal, type JournalOptions, type RunCheckpoint } from './journal.js';
import type { ProvidedRunMachine } from './providers.js';
import type { StageItems } from './stage-items.js';
import { initialStateOf, transitionEvents } from './transitions.js';
import { describeProcessing, describeRun, type ProcessingView, type RunView } from './view.js';

export interface HostDeps {
  store: Store;
  /** This instance: the holder of the run's lease. */
  owner: string;
  /** Also sees the actors' inspection events (the Stately inspector). */
  inspect?: ((ev: InspectionEvent) => void) | undefined;
  machine: ProvidedRunMachine;
  now: () => number;
  onAppended: (host: RunHost, events: StoredEvent[]) => void;
  onFault: (host: RunHost, err: unknown) => void;
  onWritten?: (seconds: number) => void;
  /** How long a journal batch stays open for more records (journal.ts). */
  batchWindowMs: number;
  /** A write is held: the store refuses writes for now (database away, disk full); the run keeps its place. */
  onHold?: (host: RunHost, err: unknown) => void;
  /** The held write went through. */
  onResume?: (host: RunHost) => void;
  /** The run reached completed or cancelled and everything about it is durable. */
  onRetired: (host: RunHost) => void;
  /** OpenTelemetry spans of runs, stages and item attempts (service/telemetry/); none: off. */
  telemetry?: RunTelemetry | undefined;
  /** The loaded items of stages at work, for every host of the engine (stage-items.ts). */
  items: StageItems;
}

type RunActor = Actor<ProvidedRunMachine>;

/**
 * One run in memory: its actor, its journal, and the stage items it works through. Each
 * machine transition it sees becomes events through transitions.ts.
 */
export class RunHost {
  readonly record: RunRecord;
  readonly pipeline: AnyPipeline;
  readonly options: unknown;
  readonly journal: Journal;
  readonly #deps: HostDeps;
  /**
   * Each item's current attempt, by `<stage>:<index>`: the item (its record names it) and when
   * the attempt began (epoch ms; its event says how long it took). Only these items stay with
   * the run; its stages' lists are the engine's to keep or let go (stage-items.ts).
   */
  readonly #attempts = new Map<string, { item: Item; startedAt: number }>();
  /** Last state value seen per machine actor (by session id). */
  readonly #states = new Map<string, string>();
  #actor: RunActor | undefined;
  #retiring = false;
  /** This run's spans while hosted here; undefined when telemetry is off. */
  #spans: RunSpans | undefined;
  /** The persisted snapshot the actor starts from (null: a new run), until `start` has read it. */
  #restoreFrom: unknown;

  constructor(record: RunRecord, pipeline: AnyPipeline, options: unknown, deps: HostDeps) {
    // The persisted snapshot is read once, by `start`; the actor holds the run's state from then on.
    this.record = { ...record, snapshot: null };
    this.#restoreFrom = record.snapshot ? restorableRunSnapshot(record.snapshot) : null;
    this.pipeline = pipeline;
    this.options = options;
    this.#deps = deps;
    this.journal = new Journal(new HostJournalOptions(this, record, deps));
  }

  get runId(): string {
    return this.record.runId;
  }

  /** The run's last durable seq. */
  get lastSeq(): number {
    return this.journal.seq;
  }

  get actor(): RunActor {
    return this.#requireActor();
  }

  /** Creates the actor: fresh, or from the persisted snapshot when there is one. */
  start(): void {
    const input = { runId: this.runId, stages: this.#stageSettings() };
    const inspect = (ev: InspectionEvent) => this.#inspect(ev);
    const restored = this.#restoreFrom !== null;
    const actor = restored
      ? createActor(this.#deps.machine, { input, snapshot: this.#restoreFrom as never, inspect })
      : createActor(this.#deps.machine, { input, inspect });
    this.#restoreFrom = null;
    this.#actor = actor;
    this.#spans = this.#deps.telemetry?.runHosted(this.record, restored);
    if (restored) this.#primeStates();
    actor.start();
    if (!restored) {
      this.append(events.runStarted({ trigger: this.record.trigger }, this.#at()));
      actor.send({ type: 'start_requested' });
    }
  }

  /** Stops the actor and its journal: nothing more is worked or written here (a batch held is dropped, never acknowledged). */
  stop(): void {
    this.journal.stop();
    this.#actor?.stop();
    this.#spans?.stop();
  }

  /** The run machine's state right now. */
  get state(): string {
    return String(this.#requireActor().getSnapshot().value);
  }

  /** Appends an event to the run's log (in the batch of the current cascade). */
  append(event: NewEvent): void {
    this.journal.record(event);
  }

  /** Now, as events stamp it. */
  #at(): string {
    return isoAt(this.#deps.now());
  }

  /**
   * The run as the API shows it, made from the live snapshots each time: cheap (no tree is
   * serialised), and nothing is kept per run between two reads, which with thousands of runs in
   * memory is what counts (docs/benchmarks.md, the service part's memory figure).
   */
  view(): RunView {
    return describeRun(this.#liveRecord(), this.pipeline.stages, this.lastSeq);
  }

  /**
   * The actor tree as view.ts reads a persisted snapshot (value, context, each child's value,
   * status and context), taken from the live snapshots without serialising the tree: what
   * the view and the command rules read, many times between two durable writes.
   */
  liveSnapshot(): unknown {
    const snap = this.#requireActor().getSnapshot();
    const children: Record<string, { snapshot: { value: unknown; status: string; context: unknown } }> = {};
    for (const [id, child] of Object.entries(snap.children)) {
      const s = child?.getSnapshot() as { value?: unknown; status: string; context?: unknown } | undefined;
      if (s) children[id] = { snapshot: { value: s.value, status: s.status, context: s.context } };
    }
    return { value: snap.value, context: snap.context, children };
  }

  /** The processing card: its items from memory, or from the store when they were let go. */
  async processing(): Promise<ProcessingView | undefined> {
    const current = this.#requireActor().getSnapshot().context.current;
    const items = this.#stageContext(current)?.total == null ? undefined : await this.#itemsOf(current);
    return describeProcessing(this.#liveRecord(), this.pipeline.stages, (stage) => (stage === current ? items : undefined));
  }

  /** A stage's items if they are in memory. */
  cachedItems(stage: number): readonly Item[] | undefined {
    return this.#deps.items.get(this.runId, stage);
  }

  // --- what the machines call through the providers -------------------------------------

  async loadItems(stage: number, signal: AbortSignal): Promise<LoadOutcome> {
    const store = this.#deps.store;
    // With the store away the stage stays loading (holds its place) rather than failing.
    let items = await whileUnavailable(() => store.getStageItems(this.runId, stage), signal);
    if (!items) {
      const loaded = checkItems(await this.#stageDef(stage).loadItems(this.#loadContext(stage, signal)), stage);
      items = await whileUnavailable(() => store.saveStageItems(this.runId, stage, loaded), signal);
    }
    this.#deps.items.set(this.runId, stage, items);
    return { total: items.length, loadedAt: this.#deps.now() };
  }

  async processItem(job: ItemJob, signal: AbortSignal): Promise<ItemOutcome> {
    // Neither waits unless it must: an item costs no extra turn of the microtask queue.
    const busy = yieldIfBusy();
    if (busy) await busy;
    const item = (this.#deps.items.get(this.runId, job.stage) ?? (await this.#itemsOf(job.stage, signal)))[job.index];
    if (!item) throw new Error(`stage ${job.stage} has no item at position ${job.index}`);
    const ctx: ItemContext<unknown> = {
      ...this.#loadContext(job.stage, signal),
      idempotencyKey: `${this.runId}:${job.stage}:${item.id}`,
      attempt: job.attempt,
    };
    this.#attempts.set(`${job.stage}:${job.index}`, { item, startedAt: this.#deps.now() });
    const span = this.#spans?.attempt(job.stage, item.id, job.attempt);
    try {
      const result = await this.#stageDef(job.stage).processItem(item, ctx);
      const cost = Number(result?.cost ?? 0);
      span?.end('done');
      return { outcome: 'done', index: job.index, cost: Number.isFinite(cost) ? cost : 0 };
    } catch (err) {
      if (isReleasedAttempt(err)) {
        // Given back by a worker stopping: not an attempt that failed, so not the item's fault.
        span?.end('error', 'released');
        return { outcome: 'released', index: job.index };
      }
      span?.end('error', errorMessage(err));
      const final = isFinalAttempt(err) ? { final: true } : {};
      return { outcome: 'error', index: job.index, error: errorMessage(err), at: this.#deps.now(), ...final };
    }
  }

  /** Called from the stage's `recordItem` action, inside the cascade that counts the item. */
  recordItem(rec: ItemRecord): void {
    // The outcome being recorded came from this attempt, which `processItem` began here.
    const key = `${rec.stage}:${rec.index}`;
    const attempt = this.#attempts.get(key);
    if (!attempt) throw new Error(`stage ${rec.stage} has no attempt in flight at position ${rec.index}`);
    this.#attempts.delete(key);
    const { item, startedAt: started } = attempt;
    const stage = this.#stageContext(rec.stage);
    const total = stage?.total ?? 0;
    const processed = (stage?.processed ?? 0) + 1;
    const ref = { id: item.id, title: item.title };
    const now = this.#deps.now();
    const at = isoAt(now);
    // The last attempt's time, kept with the event (GET /runs/:id/items shows it).
    const timed = { duration_ms: Math.max(0, now - started) };
    const event =
      rec.status === 'done'
        ? events.itemProcessed({ stage: rec.stage, processed, total, item: ref, ...timed }, at)
        : events.itemFailed({ stage: rec.stage, processed, total, item: ref, attempts: rec.attempts, error: rec.error, ...timed }, at);
    this.journal.record(
      event,
      { stage: rec.stage, itemId: item.id, status: rec.status, attempts: rec.attempts, cost: rec.cost, error: rec.error, ...(rec.retried ? { retried: true } : {}) },
    );
  }

  // --- internals -------------------------------------------------------------------------

  #requireActor(): RunActor {
    if (!this.#actor) throw new Error(`run ${this.runId} has no actor yet`);
    return this.#actor;
  }

  #liveRecord(): RunRecord {
    const actor = this.#requireActor();
    return { ...this.record, snapshot: this.liveSnapshot(), status: String(actor.getSnapshot().value) };
  }

  #stageDef(stage: number): StageDefinition<unknown> {
    const def = this.pipeline.stages[stage - 1];
    if (!def) throw new Error(`pipeline ${this.pipeline.name} has no stage ${stage}`);
    return def;
  }

  async #itemsOf(stage: number, signal?: AbortSignal): Promise<readonly Item[]> {
    const cached = this.#deps.items.get(this.runId, stage);
    if (cached) return cached;
    const stored = await whileUnavailable(() => this.#deps.store.getStageItems(this.runId, stage), signal);
    if (!stored) throw new Error(`stage ${stage} has not loaded its items`);
    this.#deps.items.set(this.runId, stage, stored);
    return stored;
  }

  #loadContext(stage: number, signal: AbortSignal): LoadContext<unknown> {
    return {
      runId: this.runId,
      stage,
      options: this.options,
      signal,
      log: (message: string) => this.append(events.activityLog({ stage, message: String(message) }, this.#at())),
    };
  }

  #stageSettings() {
    const retry = typeof this.pipeline.retry === 'function' ? this.pipeline.retry(this.options) : (this.pipeline.retry ?? {});
    return this.pipeline.stages.map((def, i) => ({
      concurrency: this.pipeline.concurrencyOf?.(this.options, i + 1) ?? def.concurrency ?? 1,
      maxAttempts: def.maxAttempts ?? retry.attempts ?? 3,
      backoffMs: retry.backoffMs ?? 1000,
      backoffMaxMs: retry.backoffMaxMs ?? 60_000,
      approval: this.pipeline.approvalOf?.(this.options, i + 1) ?? def.approval ?? false,
    }));
  }

  #stageContext(stage: number): StageContext | undefined {
    const child = this.#actor?.getSnapshot().children[`stage.${stage}`];
    return child?.getSnapshot().context as StageContext | undefined;
  }

  /** A restored actor's machines start where they were: no transition into that state is emitted. */
  #primeStates(): void {
    const snap = this.#requireActor().getSnapshot();
    this.#states.set(this.#requireActor().sessionId, String(snap.value));
    for (const child of Object.values(snap.children)) {
      const value = (child?.getSnapshot() as { value?: unknown } | undefined)?.value;
      if (child && typeof value === 'string') this.#states.set(child.sessionId, value);
    }
  }

  /** Glue: finds which machine moved and from where, and appends what transitions.ts makes of it. */
  #inspect(ev: InspectionEvent): void {
    this.#deps.inspect?.(ev);
    if (ev.type !== '@xstate.microstep') return;
    const ref = ev.actorRef;
    const isRoot = ev.rootId === ref.sessionId;
    const stage = isRoot ? undefined : stageNumberOf((ref as { id?: string }).id ?? '');
    if (!isRoot && stage === undefined) return;
    const snapshot = ev.snapshot as { value?: unknown; context?: unknown };
    const to = String(snapshot.value);
    const from = this.#states.get(ref.sessionId) ?? initialStateOf(isRoot ? 'run' : 'stage');
    if (from === to) return;
    this.#states.set(ref.sessionId, to);
    const step =
      stage === undefined
        ? { machine: 'run' as const, from, to, eventType: ev.event.type }
        : { machine: 'stage' as const, stage, stageName: this.#stageDef(stage).name, from, to, eventType: ev.event.type, context: snapshot.context as StageContext };
    for (const e of transitionEvents(step, this.#deps.now())) this.append(e);
    if (this.#spans) {
      const error = (snapshot.context as { error?: string | null } | undefined)?.error ?? null;
      if (stage === undefined) traceRun(this.#spans, to, error);
      else traceStage(this.#spans, stage, this.#stageDef(stage).name, to, error);
    }
    if (isRoot && isTerminalRunState(to)) this.#retire();
  }

  #retire(): void {
    if (this.#retiring) return;
    this.#retiring = true;
    // Called mid-cascade: the batch must close after the cascade, with the final snapshot.
    new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.journal.flush())
      .then(() => {
        // Stopped meanwhile (let go, a fault): what it held was dropped, and it is no longer the run's host.
        if (this.journal.stopped) return;
        // Back at work meanwhile (retry_failed on the run just completed): it retires when it finishes again.
        if (!isTerminalRunState(this.state)) {
          this.#retiring = false;
          return;
        }
        this.#actor?.stop();
        this.#deps.onRetired(this);
      })
      .catch(() => {
        // The fault was reported through onFault; the run is recovered from the store on restart.
      });
  }
}

/**
 * What a host's journal is given: an object of a class, its methods on the prototype, rather
 * than callbacks made for each run, which with thousands of runs in memory weighed more than
 * the rest of the journal (docs/architecture.md, "Memory per run").
 */
class HostJournalOptions implements JournalOptions {
  readonly store: Store;
  readonly runId: string;
  readonly owner: string;
  readonly lastSeq: number;
  readonly onWritten: ((seconds: number) => void) | undefined;
  readonly batchWindowMs: number;
  readonly #host: RunHost;
  readonly #deps: HostDeps;

  constructor(host: RunHost, record: RunRecord, deps: HostDeps) {
    this.store = deps.store;
    this.runId = record.runId;
    this.owner = deps.owner;
    this.lastSeq = record.lastSeq;
    this.onWritten = deps.onWritten;
    this.batchWindowMs = deps.batchWindowMs;
    this.#host = host;
    this.#deps = deps;
  }

  checkpoint(): RunCheckpoint {
    const actor = this.#host.actor;
    const snap = actor.getSnapshot();
    return { snapshot: actor.getPersistedSnapshot(), status: String(snap.value), error: snap.context.error };
  }

  onAppended(events: StoredEvent[]): void {
    this.#deps.onAppended(this.#host, events);
  }

  onFault(err: unknown): void {
    this.#deps.onFault(this.#host, err);
  }

  onHold(err: unknown): void {
    this.#deps.onHold?.(this.#host, err);
  }

  onResume(): void {
    this.#deps.onResume?.(this.#host);
  }
}

/**
 * Calls `work` until it does not fail for a passing reason (database away, disk full), with
 * backoff and jitter (50 ms doubling to 2 s); a real fault, or `signal` aborting, ends it.
 */
async function whileUnavailable<T>(work: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      if (!isTransient(err) || signal?.aborted) throw err;
      await sleep(Math.min(2000, 50 * 2 ** attempt) * (0.5 + Math.random() / 2), undefined, signal ? { signal } : undefined);
    }
  }
}

/** The run span ends where the run machine stops working (completed, failed, cancelled) and opens again on a retry. */
function traceRun(spans: RunSpans, to: string, error: string | null): void {
  if (to === 'completed' || to === 'failed' || to === 'cancelled') spans.runEnded(to, error);
  else if (to === 'running') spans.runActive();
}

/** A stage's span covers its loading and running (paused included), up to its final state. */
function traceStage(spans: RunSpans, stage: number, name: string, to: string, error: string | null): void {
  if (to === 'completed' || to === 'empty' || to === 'failed' || to === 'cancelled') spans.stageEnded(stage, to, error);
  else if (to !== 'pending') spans.stageActive(stage, name);
}

/** The ISO time of the last epoch ms asked for: items finish many to a millisecond. */
let lastIso = { ms: NaN, iso: '' };

/** `new Date(ms).toISOString()`, made once per millisecond. */
function isoAt(ms: number): string {
  if (ms !== lastIso.ms) lastIso = { ms, iso: new Date(ms).toISOString() };
  return lastIso.iso;
}

/** When the chain of items running now resumed, and when the turn it runs in began (performance.now()). */
let chainStarted = performance.now();
let turnStarted = chainStarted;
/** Whether a chain resumed on this turn has set `turnStarted`; cleared at the next turn. */
let turnMarked = false;
/** A chain's item work before it gives the turn up; past the cap, every chain resumed in the turn gives up after one item. */
const CHAIN_BUDGET_MS = 1;
const TURN_CAP_MS = 32;

/**
 * Items that finish at once would chain promise after promise (SQLite commits are
 * synchronous) and starve timers and sockets (heartbeats, commands, database answers) until
 * the whole stage is done. So an item starts on a fresh turn of the event loop once its chain
 * has run a millisecond without one. Each chain of items resumed on a turn gets its own
 * millisecond, so a turn runs about 1 ms per chain in flight (16 ms for a run at concurrency
 * 16), up to 32 ms: past that, each chain resumed runs one item and gives up, so a turn of
 * 100 runs at concurrency 4 lasts ~50 ms by this rule, not ~400. Tighter budgets were
 * measured and not kept: each made every item cost more (docs/architecture.md, "Turns of the
 * event loop"). Journal batches do not depend on turns: each stays open for its window
 * (journal.ts).
 *
 * Returns nothing when the item may start now, so that it costs no promise.
 */
function yieldIfBusy(): Promise<void> | undefined {
  const now = performance.now();
  if (now - chainStarted < CHAIN_BUDGET_MS && now - turnStarted < TURN_CAP_MS) return undefined;
  return new Promise<void>((resolve) =>
    setImmediate(() => {
      chainStarted = performance.now();
      if (!turnMarked) {
        turnMarked = true;
        turnStarted = chainStarted;
        setImmediate(() => (turnMarked = false));
      }
      resolve();
    }),
  );
}

function stageNumberOf(actorId: string): number | undefined {
  if (!actorId.startsWith('stage.')) return undefined;
  const n = Number(actorId.slice('stage.'.length));
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/** Items a pipeline loaded must have an id and a title, and ids must be unique in the stage. */
function checkItems(items: unknown, stage: number): Item[] {
  if (!Array.isArray(items)) throw new Error(`loadItems of stage ${stage} returned ${typeof items}, expected an array`);
  const seen = new Set<string>();
  items.forEach((item: unknown, i) => {
    const it = item as Partial<Item> | null;
    if (!it || (typeof it.id !== 'string' && typeof it.id !== 'number') || typeof it.title !== 'string') {
      throw new Error(`loadItems of stage ${stage}: item ${i} needs an \`id\` (string or number) and a \`title\` (string)`);
    }
    const key = String(it.id);
    if (seen.has(key)) throw new Error(`loadItems of stage ${stage}: item id ${key} appears twice`);
    seen.add(key);
  });
  return items as Item[];
}
