import { assign, enqueueActions, fromPromise, sendParent, setup } from 'xstate';
import {
  itemActorId,
  waitActorId,
  type ItemOutcome,
  type ItemRecord,
  type LoadOutcome,
  type StageNotice,
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
}

export interface StageInput extends StageSettings {
  runId: string;
  /** 1-based stage number, as in traces and the API. */
  stage: number;
}

/** An item waiting to be (re)started: after a failed attempt, or put back by a fault. */
export interface WaitingItem {
  index: number;
  attempt: number;
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
  /** Items with an attempt in flight, and the attempt number. */
  active: { index: number; attempt: number }[];
  waiting: WaitingItem[];
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

export type StageEvent =
  | { type: 'start_requested' }
  | { type: 'pause_requested' }
  | { type: 'resume_requested' }
  | { type: 'cancel_requested' }
  | { type: 'retry_requested' };

export interface StageOutput {
  stage: number;
  processed: number;
  failed: number;
}

export function backoffDelay(ctx: Pick<StageSettings, 'backoffMs' | 'backoffMaxMs'>, failedAttempt: number): number {
  return Math.min(ctx.backoffMaxMs, ctx.backoffMs * 2 ** (failedAttempt - 1));
}

const notProvided = (what: string) =>
  fromPromise<never, unknown>(async () => {
    throw new Error(`${what} was not provided: supply it with machine.provide()`);
  });

/** Tells the run that this stage failed; the error comes with the event that failed it. */
const notifyFault = {
  type: 'notifyParent',
  params: ({ context, event }: { context: StageContext; event: unknown }): StageNotice => ({
    type: 'stage_failed',
    stage: context.stage,
    error: errorText((event as { error?: unknown }).error),
  }),
} as const;

export const stageMachine = setup({
  types: {
    context: {} as StageContext,
    input: {} as StageInput,
    events: {} as StageEvent,
    output: {} as StageOutput,
  },
  actors: {
    loadItems: notProvided('loadItems') as unknown as ReturnType<
      typeof fromPromise<LoadOutcome, { runId: string; stage: number }>
    >,
    processItem: notProvided('processItem') as unknown as ReturnType<typeof fromPromise<ItemOutcome, ItemJob>>,
    wait: notProvided('wait') as unknown as ReturnType<typeof fromPromise<void, { until: number }>>,
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
      const out = (event as unknown as { output: LoadOutcome }).output;
      return { total: out.total, startedAt: out.loadedAt };
    }),
    assignError: assign({ error: ({ event }) => errorText((event as unknown as { error: unknown }).error) }),
    assignCancelled: assign({ error: 'cancelled' }),
    /** Starts waiting items whose turn it is, then new items, up to the concurrency. */
    fill: enqueueActions(({ context, enqueue }) => {
      const total = context.total ?? 0;
      let free = context.concurrency - context.active.length - context.waiting.length;
      let cursor = context.cursor;
      const started: { index: number; attempt: number }[] = [];
      while (free > 0 && cursor < total) {
        started.push({ index: cursor, attempt: 1 });
        cursor += 1;
        free -= 1;
      }
      for (const job of started) {
        enqueue.spawnChild('processItem', {
          id: itemActorId(job.index),
          input: { runId: context.runId, stage: context.stage, ...job },
        });
      }
      enqueue.assign({ cursor, active: [...context.active, ...started] });
    }),
    /** Arms a timer for every waiting item (on entering running; timers are not kept while paused). */
    armWaits: enqueueActions(({ context, enqueue }) => {
      for (const w of context.waiting) {
        enqueue.spawnChild('wait', { id: waitActorId(w.index), input: { until: w.until } });
      }
    }),
    /** Counts a finished item (done, or failed after its last attempt), records it, releases its actor. */
    countItem: enqueueActions(({ context, event, enqueue }) => {
      const out = (event as unknown as { output: ItemOutcome }).output;
      const attempts = context.active.find((a) => a.index === out.index)?.attempt ?? 1;
      const record: ItemRecord = {
        stage: context.stage,
        index: out.index,
        status: out.outcome === 'done' ? 'done' : 'failed',
        attempts,
        cost: out.outcome === 'done' ? out.cost : 0,
        error: out.outcome === 'error' ? out.error : null,
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
      const out = (event as unknown as { output: ItemOutcome }).output;
      if (out.outcome !== 'error') return;
      const attempt = context.active.find((a) => a.index === out.index)?.attempt ?? 1;
      const until = out.at + backoffDelay(context, attempt);
      enqueue.stopChild(itemActorId(out.index));
      if (params.arm) enqueue.spawnChild('wait', { id: waitActorId(out.index), input: { until } });
      enqueue.assign({
        active: context.active.filter((a) => a.index !== out.index),
        waiting: [...context.waiting, { index: out.index, attempt: attempt + 1, until }],
      });
    }),
    /** A backoff ran out: the item's next attempt starts now. */
    startRetry: enqueueActions(({ context, event, enqueue }) => {
      const actorId = (event as unknown as { actorId: string }).actorId;
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
        active: [...context.active, { index, attempt: w.attempt }],
      });
    }),
    disarmWaits: enqueueActions(({ context, enqueue }) => {
      for (const w of context.waiting) enqueue.stopChild(waitActorId(w.index));
    }),
    /** Aborts every item in flight (their AbortSignals fire) and drops the retry timers. */
    abortAll: enqueueActions(({ context, enqueue }) => {
      for (const a of context.active) enqueue.stopChild(itemActorId(a.index));
      for (const w of context.waiting) enqueue.stopChild(waitActorId(w.index));
      enqueue.assign({ active: [], waiting: [] });
    }),
    /** After a fault, items that were in flight are put back to start again on retry. */
    requeueActive: enqueueActions(({ context, enqueue }) => {
      for (const a of context.active) enqueue.stopChild(itemActorId(a.index));
      for (const w of context.waiting) enqueue.stopChild(waitActorId(w.index));
      enqueue.assign({
        active: [],
        waiting: [...context.waiting, ...context.active.map((a) => ({ index: a.index, attempt: a.attempt, until: 0 }))],
      });
    }),
  },
  guards: {
    noItems: ({ event }) => (event as unknown as { output: LoadOutcome }).output.total === 0,
    pauseRequested: ({ context }) => context.pauseRequested,
    /** The attempt failed and the item has attempts left. */
    canRetry: ({ context, event }) => {
      const out = (event as unknown as { output: ItemOutcome }).output;
      if (out.outcome !== 'error') return false;
      const attempt = context.active.find((a) => a.index === out.index)?.attempt ?? 1;
      return attempt < context.maxAttempts;
    },
    allDone: ({ context }) => context.total !== null && context.processed >= context.total,
    drained: ({ context }) => context.active.length === 0,
    loaded: ({ context }) => context.total !== null,
    cancelled: ({ context }) => context.error === 'cancelled',
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
        cancel_requested: { target: 'failed', actions: ['stopLoader', 'assignCancelled'] },
      },
    },
    running: {
      entry: ['armWaits', 'fill'],
      always: { guard: 'allDone', target: 'completed' },
      on: {
        'xstate.done.actor.item.*': [
          { guard: 'canRetry', actions: [{ type: 'queueRetry', params: { arm: true } }, 'fill'] },
          { actions: ['countItem', 'fill'] },
        ],
        'xstate.done.actor.wait.*': { actions: 'startRetry' },
        'xstate.error.actor.*': { target: 'failed', actions: ['requeueActive', 'assignError', notifyFault] },
        pause_requested: { target: 'pausing', actions: 'disarmWaits' },
        cancel_requested: { target: 'failed', actions: ['abortAll', 'assignCancelled'] },
      },
    },
    pausing: {
      always: [
        { guard: 'allDone', target: 'completed' },
        { guard: 'drained', target: 'paused' },
      ],
      on: {
        'xstate.done.actor.item.*': [
          { guard: 'canRetry', actions: { type: 'queueRetry', params: { arm: false } } },
          { actions: 'countItem' },
        ],
        'xstate.error.actor.*': { target: 'failed', actions: ['requeueActive', 'assignError', notifyFault] },
        resume_requested: { target: 'running' },
        cancel_requested: { target: 'failed', actions: ['abortAll', 'assignCancelled'] },
      },
    },
    paused: {
      entry: [
        assign({ pauseRequested: false }),
        { type: 'notifyParent', params: ({ context }) => ({ type: 'stage_paused', stage: context.stage }) },
      ],
      on: {
        resume_requested: { target: 'running' },
        cancel_requested: { target: 'failed', actions: ['abortAll', 'assignCancelled'] },
      },
    },
    empty: { type: 'final' },
    completed: { type: 'final' },
    failed: {
      on: {
        retry_requested: [
          // A cancelled stage stays cancelled.
          { guard: 'cancelled' },
          { guard: 'loaded', target: 'running', actions: assign({ error: null }) },
          { target: 'loading', actions: assign({ error: null }) },
        ],
      },
    },
  },
  output: ({ context }) => ({ stage: context.stage, processed: context.processed, failed: context.failed }),
});

function errorText(error: unknown): string {
  if (error instanceof Error) return error.message;
  return typeof error === 'string' ? error : 'unknown error';
}
