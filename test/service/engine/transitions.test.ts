import { describe, expect, it } from 'vitest';
import { initialStateOf, transitionEvents, type StageCounts } from '../../../service/engine/transitions.js';

const NOW = Date.parse('2025-12-04T19:03:32.500Z');
const AT = '2025-12-04T19:03:32.500Z';
const counts: StageCounts = { total: 10, processed: 7, failed: 1, creditsUsed: 1.23456789, startedAt: NOW - 125_000 };
const stage = (from: string, to: string, eventType = 'xstate.done.actor.loader', context = counts) =>
  ({ machine: 'stage', stage: 4, stageName: 'Tasks → Content', from, to, eventType, context }) as const;

describe('transitions', () => {
  it('makes one state_change of a run transition, with the trigger named as traces name it', () => {
    expect(transitionEvents({ machine: 'run', from: 'running', to: 'completed', eventType: 'xstate.done.actor.stage.7' }, NOW)).toEqual([
      {
        event: 'state_change',
        machine_name: 'run',
        event_type: 'state_change',
        payload: { from_state: 'running', to_state: 'completed', event_trigger: 'stage_finished', timestamp: NOW / 1000 },
        timestamp: AT,
      },
    ]);
  });

  it('keeps a command event type as its own trigger', () => {
    const [e] = transitionEvents({ machine: 'run', from: 'running', to: 'cancelled', eventType: 'cancel_requested' }, NOW);
    expect(e).toMatchObject({ payload: { event_trigger: 'cancel_requested' } });
  });

  it('makes nothing when the state did not change', () => {
    expect(transitionEvents({ machine: 'run', from: 'running', to: 'running', eventType: 'pause_requested' }, NOW)).toEqual([]);
    expect(transitionEvents(stage('running', 'running'), NOW)).toEqual([]);
  });

  it('names a stage machine stage_<n>', () => {
    const [e] = transitionEvents(stage('running', 'pausing', 'pause_requested'), NOW);
    expect(e).toMatchObject({ event: 'state_change', machine_name: 'stage_4', payload: { from_state: 'running', to_state: 'pausing' } });
  });

  it('adds stage_start when a stage leaves loading for running, paused or empty', () => {
    for (const to of ['running', 'paused', 'empty']) {
      const out = transitionEvents(stage('loading', to), NOW);
      expect(out[1], to).toEqual({ event: 'stage_start', stage: 4, stage_name: 'Tasks → Content', total_items: 10, timestamp: AT });
    }
    expect(transitionEvents(stage('loading', 'failed', 'xstate.error.actor.loader'), NOW).map((e) => e.event)).toEqual(['state_change']);
    expect(transitionEvents(stage('paused', 'running', 'resume_requested'), NOW).map((e) => e.event)).toEqual(['state_change']);
  });

  it('adds stage_complete with counts, elapsed time and credits when a stage completes', () => {
    const out = transitionEvents(stage('running', 'completed', 'xstate.done.actor.item.9'), NOW);
    expect(out.map((e) => e.event)).toEqual(['state_change', 'stage_complete']);
    expect(out[0]).toMatchObject({ payload: { event_trigger: 'item_finished' } });
    expect(out[1]).toEqual({ event: 'stage_complete', stage: 4, processed_count: 7, failed_count: 1, time_elapsed: '2m 5s', credits_used: 1.234568, timestamp: AT });
  });

  it('starts and completes an empty stage in one step, 0 items in 0s', () => {
    const empty: StageCounts = { total: 0, processed: 0, failed: 0, creditsUsed: 0, startedAt: null };
    const out = transitionEvents(stage('loading', 'empty', 'xstate.done.actor.loader', empty), NOW);
    expect(out.map((e) => e.event)).toEqual(['state_change', 'stage_start', 'stage_complete']);
    expect(out[1]).toMatchObject({ total_items: 0 });
    expect(out[2]).toMatchObject({ processed_count: 0, time_elapsed: '0s', credits_used: 0 });
  });

  it('takes a machine never seen before to start from idle (run) or pending (stage)', () => {
    expect(initialStateOf('run')).toBe('idle');
    expect(initialStateOf('stage')).toBe('pending');
  });
});
