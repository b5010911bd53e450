// Names shared by the machines, the engine and the tests. Event types double as the
// `event_trigger` of `state_change` events, so they read as what happened.

export const RUN_STATES = ['idle', 'running', 'paused', 'awaiting_approval', 'completed', 'failed', 'cancelled'] as const;
export type RunState = (typeof RUN_STATES)[number];

export const STAGE_STATES = [
  'pending',
  'loading',
  'running',
  'pausing',
  'paused',
  'empty',
  'completed',
  'failed',
  'cancelled',
] as const;
export type StageState = (typeof STAGE_STATES)[number];

export const COMMAND_EVENT = {
  pause: 'pause_requested',
  resume: 'resume_requested',
  cancel: 'cancel_requested',
  retry: 'retry_requested',
  approve: 'approve_requested',
  reject: 'reject_requested',
  retry_failed: 'retry_failed_requested',
} as const;

/**
 * A failed item that `retry_failed` gives new attempts: its position in the stage's items and
 * the last attempt it made. Its new attempts are numbered on from there, as many as a new
 * item gets (`maxAttempts`).
 */
export interface RetryItem {
  index: number;
  attempt: number;
}

/**
 * What an item worker reports for one attempt. The stage decides what follows: count it,
 * retry it after a backoff, or record it as failed after its last attempt.
 */
export type ItemOutcome =
  | { outcome: 'done'; index: number; cost: number }
  /**
   * `at`: epoch ms of the failure, from the service's clock (machines own no clock). `final`:
   * the attempt says no other attempt can succeed (a worker's `retryable: false`): recorded as
   * failed now, attempts left or not.
   */
  | { outcome: 'error'; index: number; error: string; at: number; final?: boolean }
  /**
   * The attempt never started and is given back (a worker job not yet claimed when the run
   * paused): the item waits to start again with the same attempt number.
   */
  | { outcome: 'released'; index: number };

/** A finished item, as the stage hands it to the service to record durably. */
export interface ItemRecord {
  stage: number;
  index: number;
  status: 'done' | 'failed';
  attempts: number;
  cost: number;
  error: string | null;
  /** The item had been recorded as failed and `retry_failed` ran it again: its record replaces that one. */
  retried?: true;
}

export interface LoadOutcome {
  total: number;
  /** Epoch ms, from the service's clock: machines own no clock. */
  loadedAt: number;
}

/** Stage → run notifications. */
export type StageNotice =
  /** Every item finished (or there were none): the run moves on. */
  | { type: 'stage_completed'; stage: number }
  | { type: 'stage_paused'; stage: number }
  | { type: 'stage_failed'; stage: number; error: string };

/*
 * What XState sends a parent when a spawned child ends, typed by child. The ids are the ones
 * below (`item.3`, `wait.3`): the dot is what lets `xstate.done.actor.item.*` match them.
 */
export interface LoaderDone {
  type: 'xstate.done.actor.loader';
  actorId: 'loader';
  output: LoadOutcome;
}
export interface ItemDone {
  type: `xstate.done.actor.item.${number}`;
  actorId: `item.${number}`;
  output: ItemOutcome;
}
export interface WaitDone {
  type: `xstate.done.actor.wait.${number}`;
  actorId: `wait.${number}`;
  output: undefined;
}
/** A child that threw: the loader, or a worker whose fault is not the item's (the store failed). */
export interface ChildError {
  type: `xstate.error.actor.${string}`;
  actorId: string;
  error: unknown;
}
export interface StageDone {
  type: `xstate.done.actor.stage.${number}`;
  actorId: `stage.${number}`;
  output: { stage: number; processed: number; failed: number };
}

export function stageActorId(stage: number): `stage.${number}` {
  return `stage.${stage}`;
}

export function itemActorId(index: number): `item.${number}` {
  return `item.${index}`;
}

export function waitActorId(index: number): `wait.${number}` {
  return `wait.${index}`;
}

/**
 * Internal XState events mapped to the trigger names that appear in traces. Event types
 * not listed (the command events) are their own trigger.
 */
export function triggerOf(eventType: string): string {
  if (eventType === 'xstate.done.actor.loader') return 'items_loaded';
  if (eventType === 'xstate.error.actor.loader') return 'load_failed';
  if (eventType.startsWith('xstate.done.actor.item.')) return 'item_finished';
  if (eventType.startsWith('xstate.error.actor.item.')) return 'item_fault';
  if (eventType.startsWith('xstate.done.actor.wait.')) return 'retry_due';
  if (eventType.startsWith('xstate.done.actor.stage.') || eventType === 'stage_completed') return 'stage_finished';
  if (eventType === 'xstate.init') return 'restored';
  return eventType;
}
