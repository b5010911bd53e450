import type { RunState, StageState } from './events.js';

/** A run in one of these states does no more work; only `close` applies. */
export function isTerminalRunState(state: string): state is 'completed' | 'cancelled' {
  return state === 'completed' || state === 'cancelled';
}

/** Runs that current_processing answers for (completed ones until closed). */
export function isVisibleRunState(state: string): state is RunState {
  return state === 'running' || state === 'paused' || state === 'failed' || state === 'completed';
}

/** A run the service hosts as a live actor: work may still happen in it. */
export function isLiveRunState(state: string): boolean {
  return state === 'idle' || state === 'running' || state === 'paused' || state === 'failed';
}

export function isFinishedStageState(state: string): state is 'completed' | 'empty' {
  return state === 'completed' || state === 'empty';
}

export function isActiveStageState(state: StageState): boolean {
  return state === 'loading' || state === 'running' || state === 'pausing';
}
