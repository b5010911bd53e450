// Which command each state of a run allows (docs/api.md, "Commands"): one set of rules for
// every kind of run. The engine asks it before applying a command (409 or no-op), and every
// run view lists what it allows (`allowed_commands`), so the dashboard's buttons agree.
import { isTerminalRunState } from '../../machines/index.js';
import { COMMANDS, type Command } from '../events.js';

export { COMMANDS, isCommand, type Command } from '../events.js';

/** What the rules look at. */
export interface CommandState {
  /** The run machine's state. */
  status: string;
  /** The run was closed. */
  closed: boolean;
  /** A pause was asked for and the run is still finishing its items in flight. */
  pauseRequested: boolean;
  /** Items `retry_failed` would give new attempts (retry-failed.ts). [0] */
  failedToRetry?: number;
}

/** `apply`: do it; `no-op`: already so, answer 200 with nothing changed; else refused (409) and why. */
export type Verdict = { kind: 'apply' } | { kind: 'no-op' } | { kind: 'refuse'; message: string };

const APPLY: Verdict = { kind: 'apply' };
const NO_OP: Verdict = { kind: 'no-op' };

/** The commands the run machine takes in each of its live states. */
const LIVE: Readonly<Record<string, readonly Command[]>> = {
  idle: ['cancel'],
  running: ['pause', 'resume', 'cancel'],
  paused: ['pause', 'resume', 'cancel'],
  failed: ['retry', 'cancel'],
  awaiting_approval: ['approve', 'reject', 'cancel'],
};

export function decide(command: Command, s: CommandState): Verdict {
  const refuse = (message = `Cannot ${command} a run that is ${s.status}.`): Verdict => ({ kind: 'refuse', message });
  if (command === 'retry_failed') {
    if (s.status !== 'completed' && s.status !== 'failed') return refuse(`Cannot retry the failed items of a run that is ${s.status}: only completed or failed runs.`);
    if (s.closed) return refuse('Cannot retry the failed items of a closed run.');
    return (s.failedToRetry ?? 0) > 0 ? APPLY : refuse('The run has no failed items to retry.');
  }
  if (command === 'close') {
    if (!isTerminalRunState(s.status)) return refuse(`Cannot close a run that is ${s.status}: only completed or cancelled runs close.`);
    return s.closed ? NO_OP : APPLY;
  }
  if (isTerminalRunState(s.status)) return command === 'cancel' && s.status === 'cancelled' ? NO_OP : refuse();
  if (!(LIVE[s.status] ?? []).includes(command)) return refuse();
  if (command === 'pause' && (s.status === 'paused' || (s.status === 'running' && s.pauseRequested))) return NO_OP;
  if (command === 'resume' && s.status === 'running' && !s.pauseRequested) return NO_OP;
  return APPLY;
}

/** The commands that would change something now: the buttons a screen offers. */
export function allowedCommands(s: CommandState): Command[] {
  return COMMANDS.filter((c) => decide(c, s).kind === 'apply');
}

/** One run's outcome in a bulk command (`POST /runs/bulk/:command`): the status and body it would have had if commanded alone. */
export type BulkResult =
  | { run_id: string; status: 200; accepted: boolean; run_status: string }
  | { run_id: string; status: number; code: string; message: string };
