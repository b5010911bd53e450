import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { COMMAND_EVENT, runMachine } from '../../../machines/index.js';
import { COMMANDS, allowedCommands, decide, type CommandState } from '../../../service/engine/commands.js';

const at = (status: string, more: Partial<CommandState> = {}): CommandState => ({ status, closed: false, pauseRequested: false, ...more });

describe('command rules', () => {
  it('allows per state what docs/api.md lists', () => {
    expect(allowedCommands(at('idle'))).toEqual(['cancel']);
    expect(allowedCommands(at('running'))).toEqual(['pause', 'cancel']);
    expect(allowedCommands(at('running', { pauseRequested: true }))).toEqual(['resume', 'cancel']);
    expect(allowedCommands(at('paused'))).toEqual(['resume', 'cancel']);
    expect(allowedCommands(at('failed'))).toEqual(['cancel', 'retry']);
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
  });

  it('agrees with the run machine: every command it applies to a live state, the machine takes', () => {
    const snapshots = [
      { value: 'idle', pauseRequested: false },
      { value: 'running', pauseRequested: false },
      { value: 'running', pauseRequested: true },
      { value: 'paused', pauseRequested: false },
      { value: 'failed', pauseRequested: false },
    ];
    const actor = createActor(runMachine, { input: { runId: 'r', stages: [] } });
    const base = actor.getSnapshot();
    for (const s of snapshots) {
      const snap = runMachine.resolveState({ value: s.value, context: { ...base.context, pauseRequested: s.pauseRequested } });
      for (const command of COMMANDS) {
        if (command === 'close') continue;
        const verdict = decide(command, at(s.value, { pauseRequested: s.pauseRequested }));
        if (verdict.kind === 'apply') expect(snap.can({ type: COMMAND_EVENT[command] }), `${command} in ${s.value}`).toBe(true);
        if (verdict.kind === 'refuse') expect(snap.can({ type: COMMAND_EVENT[command] }), `${command} in ${s.value}`).toBe(false);
      }
    }
  });
});
