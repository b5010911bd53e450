import { assertEvent, assign, enqueueActions, fromPromise, sendParent, setup } from 'xstate';
import {
  itemActorId,
  waitActorId,
  type ChildError,
  type ItemDone,
  type RetryItem,
  type ItemOutcome,
  type ItemRecord,
  type LoadOutcome,
  type LoaderDone,
  type StageNotice,
  type WaitDone,
} from './events.js';

/** How one stage works its items. Everything per item lives outside the context. */
export interface StageSettings {
  /** Items in flight at once, retry waits included. */
  concurrency: number;
  /** Attempts per item before it is recorded as failed. */
  maxAttempts: number;
  /** First retry delay; doubles per attempt up to `backoffMaxMs`. */
  backoffMs: number;
  backoffMaxMs: number;
  /** The run waits in `awaiting_approval` before starting this stage. [false] */
  approval?: boolean;
}

export interface StageInput extends StageSettings {
  runId: string;
  /** 1-based stage number, as in traces and the API. */
  stage: number;
}

/** An item with an attempt in flight, and the attempt number. */
export interface ActiveItem {
  index: number;
  attempt: number;
  /**
   * The item's last attempt: only for items `retry_failed` gave new attempts (numbered on from
   * the ones they had); the others have `maxAttempts`.
   */
  upTo?: number;
}

/** An item waiting to be (re)started: after a failed attempt, or put back by a fault. */
export interface WaitingItem extends ActiveItem {
  /** Epoch ms before which the attempt must not start. */
  until: number;
}

export interface StageContext extends StageInput {
  /** null until `loadItems` has answered. */
  total: number | null;
  /** Index of the next item never started. Items are addressed by index in the loaded list. */
  cursor: number;
  /** Items finished: succeeded or failed after their last attempt. */
  processed: number;
  failed: number;
  creditsUsed: number;
  active: ActiveItem[];
  waiting: WaitingItem[];
  /**
   * Failed items given new attempts by `retry_failed`, not started yet: the attempt each starts
   * with next. `fill` starts them before any item never started.
   */
  retrying: ActiveItem[];
  pauseRequested: boolean;
  startedAt: number | null;
  error: string | null;
}

export interface ItemJob {
  runId: string;
  stage: number;
  index: number;
  attempt: number;
}

/** The commands a stage takes from its run. */
export type StageCommand =
  | { type: 'start_requested' }
  | { type: 'pause_requested' }
  | { type: 'resume_requested' }
  | { type: 'cancel_requested' }
  | { type: 'retry_requested' }
  /** The stage's failed items to run again (the service reads them from the ledger). */
  | { type: 'retry_failed_requested'; items: RetryItem[] };

/** Commands, and what its children (loader, item workers, retry timers) report when they end. */
export type StageEvent = StageCommand | LoaderDone | ItemDone | WaitDone | ChildError;

export interface StageOutput {
  stage: number;
  processed: number;
  failed: number;
}

export function backoffDelay(ctx: Pick<StageSettings, 'backoffMs' | 'backoffMaxMs'>, failedAttempt: number): number {
  return Math.min(ctx.backoffMaxMs, ctx.backoffMs * 2 ** (failedAttempt - 1));
}

/** An effect the service must supply (docs/machines.md: the machines hold no I/O). */
function notProvided<TOutput, TInput>(what: string) {
  return fromPromise<TOutput, TInput>(async () => {
    throw new Error(`${what} was not provided: supply it with machine.provide()`);
  });
}

/** Tells the run that this stage failed; the error comes with the event that failed it. */
const notifyFault = {
  type: 'notifyParent',
  params: ({ context, event }: { context: StageContext; event: StageEvent }): StageNotice => {
    assertEvent(event, 'xstate.error.actor.*');
    return { type: 'stage_failed', stage: context.stage, error: errorText(event.error) };
  },
} as const;

/** Tells the run that this stage finished: completed, or empty. */
const notifyCompleted = {
  type: 'notifyParent',
  params: ({ context }: { context: StageContext }): StageNotice => ({ type: 'stage_completed', stage: context.stage }),
} as const;

/** The item in flight at `index`. */
function activeOf(context: StageContext, index: number): ActiveItem {
  return context.active.find((a) => a.index === index) ?? { index, attempt: 1 };
}

/** The same item's next attempt, keeping its last. */
function nextAttempt(a: ActiveItem, attempt: number): ActiveItem {
  return a.upTo === undefined ? { index: a.index, attempt } : { index: a.index, attempt, upTo: a.upTo };
}

export const stageMachine = setup({
  types: {
    context: {} as StageContext,
    input: {} as StageInput,
    events: {} as StageEvent,
    output: {} as StageOutput,
  },
  actors: {
    loadItems: notProvided<LoadOutcome, { runId: string; stage: number }>('loadItems'),
    processItem: notProvided<ItemOutcome, ItemJob>('processItem'),
    wait: notProvided<void, { until: number }>('wait'),
  },
  actions: {
    // Named so a standalone stage (tests, graph traversal) can be given a stand-in.
    notifyParent: sendParent((_, notice: StageNotice) => notice),
    /**
     * The service records a finished item (ledger + `stage_item_processed`/`_failed`) in
     * the same durable write as the snapshot that counts it. Stand-in: nothing.
     */
    recordItem: (_, _record: ItemRecord) => {},
    spawnLoader: enqueueActions(({ context, enqueue }) => {
      enqueue.spawnChild('loadItems', { id: 'loader', input: { runId: context.runId, stage: context.stage } });
    }),
    stopLoader: enqueueActions(({ enqueue }) => enqueue.stopChild('loader')),
    assignLoaded: assign(({ event }) => {
      assertEvent(event, 'xstate.done.actor.loader');
      return { total: event.output.total, startedAt: event.output.loadedAt };
    }),
    assignError: assign({
      error: ({ event }) => {
        assertEvent(event, 'xstate.error.actor.*');
        return errorText(event.error);
      },
    }),
    /** Starts failed items given new attempts, then new items, up to the concurrency. */
    fill: enqueueActions(({ context, enqueue }) => {
      const total = context.total ?? 0;
      const free = context.concurrency - context.active.length - context.waiting.length;
      // Snapshots persisted before `retrying` existed have none.
      const queued = context.retrying ?? [];
      const started: ActiveItem[] = queued.slice(0, Math.max(0, free));
      let cursor = context.cursor;
      while (started.length < free && cursor < total) {
        started.push({ index: cursor, attempt: 1 });
        cursor += 1;
      }
      for (const job of started) {
        enqueue.spawnChild('processItem', {
          id: itemActorId(job.index),
          input: { runId: context.runId, stage: context.stage, ...job },
        });
      }
      const fromQueue = Math.min(queued.length, started.length);
      enqueue.assign({ cursor, active: [...context.active, ...started], retrying: fromQueue > 0 ? queued.slice(fromQueue) : queued });
    }),
    /** `retry_failed`: the failed items wait to start again; they count as unfinished until they finish again. */
    queueFailed: assign(({ context, event }) => {
      assertEvent(event, 'retry_failed_requested');
      const items = event.items.map((i) => ({ index: i.index, attempt: i.attempt + 1, upTo: i.attempt + context.maxAttempts }));
      return {
        retrying: [...(context.retrying ?? []), ...items],
        processed: context.processed - items.length,
        failed: context.failed - items.length,
      };
    }),
    /** Arms a timer for every waiting item (on entering running; timers are not kept while paused). */
    armWaits: enqueueActions(({ context, enqueue }) => {
      for (const w of context.waiting) {
        enqueue.spawnChild('wait', { id: waitActorId(w.index), input: { until: w.until } });
      }
    }),
    /** Counts a finished item (done, or failed after its last attempt), records it, releases its actor. */
    countItem: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, 'xstate.done.actor.item.*');
      const out = event.output;
      const active = activeOf(context, out.index);
      const record: ItemRecord = {
        stage: context.stage,
        index: out.index,
        status: out.outcome === 'done' ? 'done' : 'failed',
        attempts: active.attempt,
        cost: out.outcome === 'done' ? out.cost : 0,
        error: out.outcome === 'error' ? out.error : null,
        ...(active.upTo === undefined ? {} : { retried: true as const }),
      };
      enqueue.stopChild(itemActorId(out.index));
      enqueue({ type: 'recordItem', params: record } as never);
      enqueue.assign({
        active: context.active.filter((a) => a.index !== out.index),
        processed: context.processed + 1,
        failed: context.failed + (record.status === 'failed' ? 1 : 0),
        creditsUsed: context.creditsUsed + record.cost,
      });
    }),
    /** Moves an item whose attempt failed to `waiting`, with its backoff deadline. */
    queueRetry: enqueueActions(({ context, event, enqueue }, params: { arm: boolean }) => {
      assertEvent(event, 'xstate.done.actor.item.*');
      const out = event.output;
      if (out.outcome !== 'error') return;
      const active = activeOf(context, out.index);
      const until = out.at + backoffDelay(context, active.attempt);
      enqueue.stopChild(itemActorId(out.index));
      if (params.arm) enqueue.spawnChild('wait', { id: waitActorId(out.index), input: { until } });
      enqueue.assign({
        active: context.active.filter((a) => a.index !== out.index),
        waiting: [...context.waiting, { ...nextAttempt(active, active.attempt + 1), until }],
      });
    }),
    /** An attempt given back before it started: it waits, same attempt, to start at once (armed) or on resume. */
    putBack: enqueueActions(({ context, event, enqueue }, params: { arm: boolean }) => {
      assertEvent(event, 'xstate.done.actor.item.*');
      const index = event.output.index;
      const active = activeOf(context, index);
      enqueue.stopChild(itemActorId(index));
      if (params.arm) enqueue.spawnChild('wait', { id: waitActorId(index), input: { until: 0 } });
      enqueue.assign({
        active: context.active.filter((a) => a.index !== index),
        waiting: [...context.waiting, { ...active, until: 0 }],
      });
    }),
    /** A backoff ran out: the item's next attempt starts now. */
    startRetry: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, 'xstate.done.actor.wait.*');
      const actorId = event.actorId;
      const index = Number(actorId.slice('wait.'.length));
      const w = context.waiting.find((x) => x.index === index);
      enqueue.stopChild(actorId);
      if (!w) return;
      enqueue.spawnChild('processItem', {
        id: itemActorId(index),
        input: { runId: context.runId, stage: context.stage, index, attempt: w.attempt },
      });
      enqueue.assign({
        waiting: context.waiting.filter((x) => x.index !== index),
        active: [...context.active, nextAttempt(w, w.attempt)],
      });
    }),
    disarmWaits: enqueueActions(({ context, enqueue }) => {
      for (const w of context.waiting) enqueue.stopChild(waitActorId(w.index));
    }),
    /**
     * Aborts every item in flight (their AbortSignals fire) and drops the retry timers. Failed
     * items that `retry_failed` was running again stay recorded as failed, so they count as such.
     */
    abortAll: enqueueActions(({ context, enqueue }) => {
      for (const a of context.active) enqueue.stopChild(itemActorId(a.index));
      for (const w of context.waiting) enqueue.stopChild(waitActorId(w.index));
      const stillFailed = [...context.active, ...context.waiting, ...(context.retrying ?? [])].filter((a) => a.upTo !== undefined).length;
      enqueue.assign({
        active: [],
        waiting: [],
        retrying: [],
        processed: context.processed + stillFailed,
        failed: context.failed + stillFailed,
      });
    }),
    /** After a fault, items that were in flight are put back to start again on retry. */
    requeueActive: enqueueActions(({ context, enqueue }) => {
      for (const a of context.active) enqueue.stopChild(itemActorId(a.index));
      for (const w of context.waiting) enqueue.stopChild(waitActorId(w.index));
      enqueue.assign({
        active: [],
        waiting: [...context.waiting, ...context.active.map((a) => ({ ...a, until: 0 }))],
      });
    }),
  },
  guards: {
    noItems: ({ event }) => {
      assertEvent(event, 'xstate.done.actor.loader');
      return event.output.total === 0;
    },
    pauseRequested: ({ context }) => context.pauseRequested,
    /** The attempt failed and the item has attempts left. */
    canRetry: ({ context, event }) => {
      assertEvent(event, 'xstate.done.actor.item.*');
      const out = event.output;
      const active = activeOf(context, out.index);
      return out.outcome === 'error' && out.final !== true && active.attempt < (active.upTo ?? context.maxAttempts);
    },
    /** `retry_failed` named items to run again. */
    hasRetries: ({ event }) => {
      assertEvent(event, 'retry_failed_requested');
      return event.items.length > 0;
    },
    /** The attempt was given back before it started. */
    released: ({ event }) => {
      assertEvent(event, 'xstate.done.actor.item.*');
      return event.output.outcome === 'released';
    },
    allDone: ({ context }) => context.total !== null && context.processed >= context.total,
    drained: ({ context }) => context.active.length === 0,
    loaded: ({ context }) => context.total !== null,
  },
}).createMachine({
  id: 'stage',
  context: ({ input }) => ({
    ...input,
    total: null,
    cursor: 0,
    processed: 0,
    failed: 0,
    creditsUsed: 0,
    active: [],
    waiting: [],
    retrying: [],
    pauseRequested: false,
    startedAt: null,
    error: null,
  }),
  initial: 'pending',
  states: {
    pending: {
      on: { start_requested: { target: 'loading' } },
    },
    loading: {
      entry: 'spawnLoader',
      on: {
        'xstate.done.actor.loader': [
          { guard: 'noItems', target: 'empty', actions: ['stopLoader', 'assignLoaded'] },
          { guard: 'pauseRequested', target: 'paused', actions: ['stopLoader', 'assignLoaded'] },
          { target: 'running', actions: ['stopLoader', 'assignLoaded'] },
        ],
        'xstate.error.actor.loader': {
          target: 'failed',
          actions: ['stopLoader', 'assignError', notifyFault],
        },
        pause_requested: { actions: assign({ pauseRequested: true }) },
        resume_requested: { actions: assign({ pauseRequested: false }) },
        cancel_requested: { target: 'cancelled', actions: 'stopLoader' },
      },
    },
    running: {
      entry: ['armWaits', 'fill'],
      always: { guard: 'allDone', target: 'completed' },
      on: {
        'xstate.done.actor.item.*': [
          { guard: 'released', actions: { type: 'putBack', params: { arm: true } } },
          { guard: 'canRetry', actions: [{ type: 'queueRetry', params: { arm: true } }, 'fill'] },
          { actions: ['countItem', 'fill'] },
        ],
        'xstate.done.actor.wait.*': { actions: 'startRetry' },
        'xstate.error.actor.*': { target: 'failed', actions: ['requeueActive', 'assignError', notifyFault] },
        pause_requested: { target: 'pausing', actions: 'disarmWaits' },
        cancel_requested: { target: 'cancelled', actions: 'abortAll' },
      },
    },
    pausing: {
      always: [
        { guard: 'allDone', target: 'completed' },
        { guard: 'drained', target: 'paused' },
      ],
      on: {
        'xstate.done.actor.item.*': [
          { guard: 'released', actions: { type: 'putBack', params: { arm: false } } },
          { guard: 'canRetry', actions: { type: 'queueRetry', params: { arm: false } } },
          { actions: 'countItem' },
        ],
        'xstate.error.actor.*': { target: 'failed', actions: ['requeueActive', 'assignError', notifyFault] },
        resume_requested: { target: 'running' },
        cancel_requested: { target: 'cancelled', actions: 'abortAll' },
      },
    },
    paused: {
      entry: [
        assign({ pauseRequested: false }),
        { type: 'notifyParent', params: ({ context }) => ({ type: 'stage_paused', stage: context.stage }) },
      ],
      on: {
        resume_requested: { target: 'running' },
        cancel_requested: { target: 'cancelled', actions: 'abortAll' },
      },
    },
    empty: { type: 'final', entry: notifyCompleted },
    /**
     * Every item finished. Not final: `retry_failed` gives its failed items new attempts and
     * takes it back to `running` (docs/machines.md, "Retrying failed items").
     */
    completed: {
      entry: notifyCompleted,
      on: {
        retry_failed_requested: { guard: 'hasRetries', target: 'running', actions: 'queueFailed' },
      },
    },
    failed: {
      on: {
        retry_requested: [
          { guard: 'loaded', target: 'running', actions: assign({ error: null }) },
          { target: 'loading', actions: assign({ error: null }) },
        ],
        // The run was cancelled while this stage had failed: the items put back are dropped,
        // the error still says why it had stopped.
        cancel_requested: { target: 'cancelled', actions: 'abortAll' },
      },
    },
    /**
     * Cancelled by the run: in-flight items aborted, nothing more happens. Final, so no retry
     * revives it. Its done event reaches the run after the run is `cancelled`, which ignores it
     * (docs/machines.md).
     */
    cancelled: { type: 'final' },
  },
  output: ({ context }) => ({ stage: context.stage, processed: context.processed, failed: context.failed }),
});

function errorText(error: unknown): string {
  if (error instanceof Error) return error.message;
  return typeof error === 'string' ? error : 'unknown error';
}
