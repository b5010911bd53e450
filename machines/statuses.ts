/**
 * The run states in which a run may still do work: it is leased, renewed and resumed after a
 * crash. The stores build their SQL from this list, so a new state is added here only.
 */
export const LIVE_RUN_STATUSES = ['idle', 'running', 'paused', 'awaiting_approval', 'failed'] as const;

/** A run in one of these states does no more work; only `close` applies. */
export function isTerminalRunState(state: string): state is 'completed' | 'cancelled' {
  return state === 'completed' || state === 'cancelled';
}
