import { describe, expect, it } from 'vitest';
import { events, isCommand, runEnteredState, stageMachineName, stageOf, stageOfEvent } from '../../service/events.js';

const AT = '2025-12-04T19:03:32.123Z';

describe('events', () => {
  it('builds each event of docs/protocol.md with its fields in the documented order', () => {
    const change = events.stateChange(
      { machine_name: 'stage_4', payload: { from_state: 'running', to_state: 'pausing', event_trigger: 'pause_requested', timestamp: 1761339196.68 } },
      AT,
    );
    expect(Object.keys(change)).toEqual(['event', 'machine_name', 'event_type', 'payload', 'timestamp']);
    expect(change).toEqual({
      event: 'state_change',
      machine_name: 'stage_4',
      event_type: 'state_change',
      payload: { from_state: 'running', to_state: 'pausing', event_trigger: 'pause_requested', timestamp: 1761339196.68 },
      timestamp: AT,
    });
    expect(events.runStarted({ trigger: 'manual' }, AT)).toEqual({ event: 'run_started', trigger: 'manual', timestamp: AT });
    expect(events.itemProcessed({ stage: 4, processed: 7, total: 10, item: { id: 123, title: 't' } }, AT)).toEqual({
      event: 'stage_item_processed',
      stage: 4,
      processed: 7,
      total: 10,
      item: { id: 123, title: 't' },
      timestamp: AT,
    });
    expect(events.activityLog({ message: 'Verifying dimensions' }, AT)).toEqual({ event: 'activity_log', message: 'Verifying dimensions', timestamp: AT });
  });

  it('leaves an empty or absent reason out of a command event', () => {
    expect(events.command({ command: 'pause', by: 'ops', reason: 'outage' }, AT)).toEqual({ event: 'command', command: 'pause', by: 'ops', reason: 'outage', timestamp: AT });
    expect(events.command({ command: 'pause', by: 'ops', reason: '' }, AT)).toEqual({ event: 'command', command: 'pause', by: 'ops', timestamp: AT });
    expect(events.command({ command: 'close', by: 'ops' }, AT)).not.toHaveProperty('reason');
  });

  it('names stage machines stage_<n> and reads the number back', () => {
    expect(stageMachineName(4)).toBe('stage_4');
    expect(stageOf('stage_4')).toBe(4);
    expect(stageOf('stage_12')).toBe(12);
    for (const name of ['run', 'stage_', 'stage_0', 'stage_x', 'stage_4a', 'face_processor']) expect(stageOf(name), name).toBeUndefined();
  });

  it('finds the stage an event is about and the state a run entered', () => {
    const runChange = events.stateChange({ machine_name: 'run', payload: { from_state: 'running', to_state: 'completed', event_trigger: 'x', timestamp: 1 } }, AT);
    const stageChange = events.stateChange({ machine_name: 'stage_2', payload: { from_state: 'pending', to_state: 'loading', event_trigger: 'x', timestamp: 1 } }, AT);
    expect(stageOfEvent(stageChange)).toBe(2);
    expect(stageOfEvent(runChange)).toBeUndefined();
    expect(stageOfEvent(events.activityLog({ stage: 3, message: 'm' }, AT))).toBe(3);
    expect(runEnteredState(runChange)).toBe('completed');
    expect(runEnteredState(stageChange)).toBeUndefined();
  });

  it('knows the commands', () => {
    expect(isCommand('pause')).toBe(true);
    expect(isCommand('approve')).toBe(false);
    expect(isCommand(5)).toBe(false);
  });
});
