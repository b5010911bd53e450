import { describe, expect, it } from 'vitest';
import type { StoredEvent } from '../../../service/events.js';
import { HumanLog } from '../../../service/trace/human-log.js';

const at = '2026-12-01T09:37:44.125Z';
const events = [
  { event: 'run_started', run_id: 'r', seq: 1, trigger: 'manual', timestamp: at },
  { event: 'state_change', run_id: 'r', seq: 2, machine_name: 'stage_1', event_type: 'state_change', payload: { from_state: 'running', to_state: 'failed', event_trigger: 'x' }, timestamp: '2026-12-01T09:37:44.005Z' },
  { event: 'stage_item_failed', run_id: 'r', seq: 3, stage: 1, item: { id: 1, title: 'a\nb "q"' }, attempts: 3, error: 'boom', timestamp: at },
  { event: 'activity_log', run_id: 'r', seq: 4, stage: 2, message: 'msg with {json} and \\ back\u0007', timestamp: at },
] as unknown as StoredEvent[];

describe('human log', () => {
  it('writes one line per event as pino-pretty did: [UTC time] LEVEL: message', () => {
    const { run, stages } = new HumanLog().format(events);
    expect(run).toBe(
      '[2026-12-01 09:37:44.125] INFO: Run r started (trigger: manual)\n' +
        '[2026-12-01 09:37:44.005] ERROR: Stage 1: running → failed (x)\n' +
        '[2026-12-01 09:37:44.125] WARN: Stage 1: #1 "a b "q"" failed after 3 attempts: boom\n' +
        '[2026-12-01 09:37:44.125] INFO: msg with {json} and \\ back \n',
    );
    expect([...stages.keys()]).toEqual([1, 2]);
    expect(stages.get(2)).toBe('[2026-12-01 09:37:44.125] INFO: msg with {json} and \\ back \n');
  });

  it('writes the diagnostic summary at warn unless the run completed', () => {
    const summary = { time: at, runId: 'r', accountId: 'a', siteId: 's', pipeline: 'p', processed: 1, failed: 2, events: 3, durationMs: 5000 };
    expect(new HumanLog().summary({ ...summary, status: 'failed' })).toBe('[2026-12-01 09:37:44.125] WARN: r failed: p for a/s, 1 items processed, 2 failed, 3 events in 5s\n');
    expect(new HumanLog().summary({ ...summary, status: 'completed' })).toMatch(/^\[2026-12-01 09:37:44\.125\] INFO: r completed: /);
  });
});
