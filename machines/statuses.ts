/** A run in one of these states does no more work; only `close` applies. */
export function isTerminalRunState(state: string): state is 'completed' | 'cancelled' {
  return state === 'completed' || state === 'cancelled';
}
