import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { COMMAND_EVENT, runMachine, type RunEvent } from '../../../machines/index.js';
import { COMMANDS, allowedCommands, decide, type CommandState } from '../../../service/engine/commands.js';

const at = (status: string, more: Partial<CommandState> = {}): CommandState => ({ status, closed: false, pauseRequested: false, ...more });

describe('command rules', () => {
  it('allows per state what docs/api.md lists', () => {
    expect(allowedCommands(at('idle'))).toEqual(['cancel']);
    expect(allowedCommands(at('running'))).toEqual(['pause', 'cancel']);
    expect(allowedCommands(at('running', { pauseRequested: true }))).toEqual(['resume', 'cancel']);
    expect(allowedCommands(at('paused'))).toEqual(['resume', 'cancel']);
    expect(allowedCommands(at('failed'))).toEqual(['cancel', 'retry']);
    expect(allowedCommands(at('awaiting_approval'))).toEqual(['cancel', 'approve', 'reject']);
    expect(allowedCommands(at('completed'))).toEqual(['close']);
    expect(allowedCommands(at('cancelled'))).toEqual(['close']);
    expect(allowedCommands(at('completed', { closed: true }))).toEqual([]);
  });

  it('answers a command that changes nothing with a no-op, not a refusal', () => {
    expect(decide('pause', at('paused'))).toEqual({ kind: 'no-op' });
    expect(decide('pause', at('running', { pauseRequested: true }))).toEqual({ kind: 'no-op' });
    expect(decide('resume', at('running'))).toEqual({ kind: 'no-op' });
    expect(decide('cancel', at('cancelled'))).toEqual({ kind: 'no-op' });
    expect(decide('close', at('completed', { closed: true }))).toEqual({ kind: 'no-op' });
  });

  it('refuses what the state does not allow, saying why', () => {
    expect(decide('resume', at('failed'))).toEqual({ kind: 'refuse', message: 'Cannot resume a run that is failed.' });
    expect(decide('retry', at('running'))).toEqual({ kind: 'refuse', message: 'Cannot retry a run that is running.' });
    expect(decide('cancel', at('completed'))).toEqual({ kind: 'refuse', message: 'Cannot cancel a run that is completed.' });
    expect(decide('close', at('failed'))).toEqual({ kind: 'refuse', message: 'Cannot close a run that is failed: only completed or cancelled runs close.' });
    expect(decide('pause', at('idle')).kind).toBe('refuse');
    expect(decide('approve', at('running'))).toEqual({ kind: 'refuse', message: 'Cannot approve a run that is running.' });
    expect(decide('reject', at('completed')).kind).toBe('refuse');
    expect(decide('pause', at('awaiting_approval')).kind).toBe('refuse');
    expect(decide('retry', at('awaiting_approval')).kind).toBe('refuse');
  });

  it('allows retry_failed on a completed or failed run with failed items to retry, and only then', () => {
    expect(allowedCommands(at('completed', { failedToRetry: 3 }))).toEqual(['close', 'retry_failed']);
    expect(allowedCommands(at('failed', { failedToRetry: 1 }))).toEqual(['cancel', 'retry', 'retry_failed']);
    expect(decide('retry_failed', at('completed'))).toEqual({ kind: 'refuse', message: 'The run has no failed items to retry.' });
    expect(decide('retry_failed', at('completed', { failedToRetry: 2, closed: true }))).toEqual({
      kind: 'refuse',
      message: 'Cannot retry the failed items of a closed run.',
    });
    for (const status of ['idle', 'running', 'paused', 'awaiting_approval', 'cancelled']) {
      expect(decide('retry_failed', at(status, { failedToRetry: 2 })), status).toEqual({
        kind: 'refuse',
        message: `Cannot retry the failed items of a run that is ${status}: only completed or failed runs.`,
      });
    }
  });

  it('agrees with the run machine: every command it applies to a live state, the machine takes', () => {
    const snapshots = [
      { value: 'idle', pauseRequested: false },
      { value: 'running', pauseRequested: false },
      { value: 'running', pauseRequested: true },
      { value: 'paused', pauseRequested: false },
      { value: 'failed', pauseRequested: false },
      { value: 'awaiting_approval', pauseRequested: false },
    ];
    const actor = createActor(runMachine, { input: { runId: 'r', stages: [] } });
    const base = actor.getSnapshot();
    for (const s of snapshots) {
      const snap = runMachine.resolveState({ value: s.value, context: { ...base.context, pauseRequested: s.pauseRequested } });
      for (const command of COMMANDS) {
        if (command === 'close') continue;
        const verdict = decide(command, at(s.value, { pauseRequested: s.pauseRequested }));
        const event = (command === 'retry_failed' ? { type: COMMAND_EVENT[command], stages: [] } : { type: COMMAND_EVENT[command] }) as RunEvent;
        if (verdict.kind === 'apply') expect(snap.can(event), `${command} in ${s.value}`).toBe(true);
        if (verdict.kind === 'refuse') expect(snap.can(event), `${command} in ${s.value}`).toBe(false);
      }
    }
  });
});
