import { assertEvent, assign, enqueueActions, setup } from 'xstate';
import { stageActorId, type RetryItem, type StageDone, type StageNotice } from './events.js';
import { stageMachine, type StageCommand, type StageSettings } from './stage.machine.js';

/** The items of one stage that `retry_failed` gives new attempts. */
export interface StageRetry {
  stage: number;
  items: RetryItem[];
}

/**
 * A `retry_failed` under way: the stages still to retry, in order, and what the run goes back
 * to once they are done (the state, current stage and error it had when the command came).
 */
export interface RunRetry {
  queue: StageRetry[];
  then: 'completed' | 'failed';
  current: number;
  error: string | null;
}

export interface RunInput {
  runId: string;
  /** One entry per stage, in order. */
  stages: StageSettings[];
}

export interface RunContext extends RunInput {
  /** 1-based number of the stage the run is on (or finished last, while paused between stages). */
  current: number;
  pauseRequested: boolean;
  /** Paused between stages: the current stage finished, the next starts on resume. */
  betweenStages: boolean;
  error: string | null;
  /** null unless a `retry_failed` is under way. */
  retry: RunRetry | null;
}

export type RunEvent =
  | { type: 'start_requested' }
  | { type: 'pause_requested' }
  | { type: 'resume_requested' }
  | { type: 'cancel_requested' }
  | { type: 'retry_requested' }
  | { type: 'approve_requested' }
  | { type: 'reject_requested' }
  /** The service lists the failed items from the ledger (docs/machines.md, "Retrying failed items"). */
  | { type: 'retry_failed_requested'; stages: StageRetry[] }
  | StageNotice
  /** Ignored: a stage's end reaches the run as `stage_completed` (or `stage_failed`). */
  | StageDone;

export const runMachine = setup({
  types: {
    context: {} as RunContext,
    input: {} as RunInput,
    events: {} as RunEvent,
  },
  actors: { stage: stageMachine },
  actions: {
    /**
     * A stage's actor is spawned when the stage starts: until then it is `pending` with nothing
     * in its context, which is what the view shows for a stage with no actor (docs/machines.md),
     * and thousands of runs in memory do not each carry actors for stages not started yet.
     */
    spawnStage: enqueueActions(({ context, enqueue }, { stage }: { stage: number }) => {
      const settings = context.stages[stage - 1];
      if (settings) enqueue.spawnChild('stage', { id: stageActorId(stage), input: { runId: context.runId, stage, ...settings } });
    }),
    /** Spawns the stage the run is on and starts it. */
    startCurrent: enqueueActions(({ context, enqueue }) => {
      enqueue({ type: 'spawnStage', params: { stage: context.current } } as never);
      enqueue.sendTo(stageActorId(context.current), { type: 'start_requested' });
    }),
    /** Passes a command on to the stage the run is on. */
    forward: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, ['pause_requested', 'resume_requested', 'cancel_requested', 'retry_requested']);
      const command: StageCommand = { type: event.type };
      enqueue.sendTo(stageActorId(context.current), command);
    }),
    advance: assign({ current: ({ context }) => context.current + 1 }),
    /** Resuming between stages when the next stage needs approval: the run moves to it and waits. */
    advanceBetween: assign({ current: ({ context }) => context.current + 1, betweenStages: false }),
    /** Starts a `retry_failed`: remembers where the run was (`then`) and hands the first stage its items. */
    beginRetry: enqueueActions(({ context, event, enqueue }, { then }: { then: RunRetry['then'] }) => {
      assertEvent(event, 'retry_failed_requested');
      const [first, ...queue] = event.stages.filter((s) => s.items.length > 0);
      if (!first) return;
      enqueue.assign({ retry: { queue, then, current: context.current, error: context.error }, current: first.stage, error: null, pauseRequested: false });
      enqueue.sendTo(stageActorId(first.stage), { type: 'retry_failed_requested', items: first.items });
    }),
    /** The stage being retried finished: the next one in the queue gets its items. */
    nextRetry: enqueueActions(({ context, enqueue }) => {
      const [next, ...queue] = context.retry?.queue ?? [];
      if (!next || !context.retry) return;
      enqueue.assign({ retry: { ...context.retry, queue }, current: next.stage, betweenStages: false });
      enqueue.sendTo(stageActorId(next.stage), { type: 'retry_failed_requested', items: next.items });
    }),
    /** Every stage retried: the run is where the command found it again. */
    endRetry: assign(({ context }) => ({ current: context.retry?.current ?? context.current, error: context.retry?.error ?? null, retry: null })),
    /** Resuming after a pause that landed between stages starts the next one. */
    resumeWork: enqueueActions(({ context, enqueue }) => {
      if (context.betweenStages && context.retry) {
        enqueue({ type: 'nextRetry' } as never);
      } else if (context.betweenStages) {
        enqueue.assign({ current: context.current + 1, betweenStages: false });
        enqueue({ type: 'spawnStage', params: { stage: context.current + 1 } } as never);
        enqueue.sendTo(stageActorId(context.current + 1), { type: 'start_requested' });
      } else {
        enqueue.sendTo(stageActorId(context.current), { type: 'resume_requested' });
      }
    }),
  },
  guards: {
    isLastStage: ({ context }) => context.current >= context.stages.length,
    pauseRequested: ({ context }) => context.pauseRequested,
    /** Stage 1 waits for someone to approve it (`approval: true`). */
    firstNeedsApproval: ({ context }) => context.stages[0]?.approval === true,
    /** The stage after the current one waits for someone to approve it. */
    nextNeedsApproval: ({ context }) => context.stages[context.current]?.approval === true,
    /** Paused between stages, and the next one waits for approval. */
    nextNeedsApprovalBetween: ({ context }) =>
      context.betweenStages && context.retry === null && context.stages[context.current]?.approval === true,
    /** A `retry_failed` with items to retry, and none under way. */
    hasRetries: ({ context, event }) => {
      assertEvent(event, 'retry_failed_requested');
      return context.retry === null && event.stages.some((s) => s.items.length > 0);
    },
    inRetry: ({ context }) => context.retry !== null,
    /** A stage of a `retry_failed` finished with a pause asked for: the run pauses before the next. */
    retryPauseRequested: ({ context }) => context.retry !== null && context.pauseRequested,
    /** The last stage of a `retry_failed` finished; the run had been completed (or failed). */
    retryDone: ({ context }) => context.retry !== null && context.retry.queue.length === 0 && context.retry.then === 'completed',
    retryDoneFailed: ({ context }) => context.retry !== null && context.retry.queue.length === 0 && context.retry.then === 'failed',
  },
}).createMachine({
  id: 'run',
  context: ({ input }) => ({ ...input, current: 1, pauseRequested: false, betweenStages: false, error: null, retry: null }),
  initial: 'idle',
  states: {
    idle: {
      on: {
        start_requested: [
          { guard: 'firstNeedsApproval', target: 'awaiting_approval' },
          { target: 'running', actions: 'startCurrent' },
        ],
        cancel_requested: { target: 'cancelled' },
      },
    },
    running: {
      on: {
        // The stage finished (completed or empty). Within a `retry_failed` the queue of stages to
        // retry decides what follows; otherwise the pipeline's order.
        stage_completed: [
          { guard: 'retryDone', target: 'completed', actions: 'endRetry' },
          { guard: 'retryDoneFailed', target: 'failed', actions: 'endRetry' },
          { guard: 'retryPauseRequested', target: 'paused', actions: assign({ betweenStages: true }) },
          { guard: 'inRetry', actions: 'nextRetry' },
          { guard: 'isLastStage', target: 'completed' },
          { guard: 'pauseRequested', target: 'paused', actions: assign({ betweenStages: true }) },
          { guard: 'nextNeedsApproval', target: 'awaiting_approval', actions: 'advance' },
          { actions: ['advance', 'startCurrent'] },
        ],
        stage_paused: { target: 'paused' },
        stage_failed: { target: 'failed', actions: assign({ error: ({ event }) => event.error }) },
        pause_requested: { actions: [assign({ pauseRequested: true }), 'forward'] },
        resume_requested: { actions: [assign({ pauseRequested: false }), 'forward'] },
        cancel_requested: { target: 'cancelled', actions: 'forward' },
      },
    },
    paused: {
      entry: assign({ pauseRequested: false }),
      on: {
        resume_requested: [
          { guard: 'nextNeedsApprovalBetween', target: 'awaiting_approval', actions: 'advanceBetween' },
          { target: 'running', actions: 'resumeWork' },
        ],
        cancel_requested: { target: 'cancelled', actions: [assign({ betweenStages: false }), 'forward'] },
      },
    },
    /**
     * The current stage has `approval: true` and has not started (it is `pending`): approve
     * starts it; reject or cancel end the run. The state is persisted like any other, so it
     * survives a restart.
     */
    awaiting_approval: {
      on: {
        approve_requested: { target: 'running', actions: 'startCurrent' },
        reject_requested: { target: 'cancelled' },
        cancel_requested: { target: 'cancelled' },
      },
    },
    failed: {
      on: {
        retry_requested: { target: 'running', actions: [assign({ error: null }), 'forward'] },
        retry_failed_requested: { guard: 'hasRetries', target: 'running', actions: { type: 'beginRetry', params: { then: 'failed' } } },
        cancel_requested: { target: 'cancelled', actions: 'forward' },
      },
    },
    // Terminal, but not `final`: a final root stops its children and drops their snapshots,
    // and the stages' last states and counts are what a finished run is read for. Only
    // `retry_failed` takes it back to work.
    completed: {
      on: {
        retry_failed_requested: { guard: 'hasRetries', target: 'running', actions: { type: 'beginRetry', params: { then: 'completed' } } },
      },
    },
    cancelled: {},
  },
});
