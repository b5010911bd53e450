import { describe, expect, it } from 'vitest';
import { planCommit } from '../../../service/store/commit-plan.js';
import { events, type NewEvent } from '../../../service/events.js';
import { webhookEventOf } from '../../../service/store/outbox.js';

const at = '2026-12-01T00:00:00.000Z';
const runChange = (to: string, machine = 'run'): NewEvent =>
  events.stateChange({ machine_name: machine, payload: { from_state: 'running', to_state: to, event_trigger: 'x', timestamp: 0 } }, at);
const item = events.itemProcessed({ stage: 1, processed: 1, total: 1, item: { id: 1, title: 'One' } }, at);
const complete = (stage: number) => events.stageComplete({ stage, processed_count: 1, failed_count: 0, time_elapsed: '0s', credits_used: 0 }, at);

describe('the outbox', () => {
  it('names the webhook kind of each event that has one', () => {
    expect(webhookEventOf(runChange('completed'))).toBe('run_completed');
    expect(webhookEventOf(runChange('failed'))).toBe('run_failed');
    expect(webhookEventOf(runChange('cancelled'))).toBe('run_cancelled');
    expect(webhookEventOf(runChange('awaiting_approval'))).toBe('awaiting_approval');
    expect(webhookEventOf(runChange('paused'))).toBeNull();
    expect(webhookEventOf(runChange('completed', 'stage_2'))).toBeNull();
    expect(webhookEventOf(complete(2))).toBe('stage_complete');
    expect(webhookEventOf(item)).toBeNull();
  });

  it('is planned with the events it reports, at their seqs, and never for a repeated key', () => {
    const plan = planCommit({
      runId: 'run_1',
      batch: {
        events: [
          item,
          complete(1),
          runChange('completed'),
          runChange('completed'),
        ],
        eventKeys: [null, null, 'k', 'k'],
      },
      run: { lastSeq: 10, owner: null, leaseUntilMs: null },
      seen: new Map(),
      nowMs: 0,
      now: at,
    });
    expect(plan.outbox).toEqual([
      { seq: 12, kind: 'stage_complete' },
      { seq: 13, kind: 'run_completed' },
    ]);
    const again = planCommit({
      runId: 'run_1',
      batch: { events: [runChange('completed')], eventKeys: ['k'] },
      run: { lastSeq: 13, owner: null, leaseUntilMs: null },
      seen: new Map([['k', 13]]),
      nowMs: 0,
      now: at,
    });
    expect(again.outbox).toEqual([]);
    // Most commits (items) write none.
    const items = planCommit({
      runId: 'run_1',
      batch: { events: [item] },
      run: { lastSeq: 13, owner: null, leaseUntilMs: null },
      seen: new Map(),
      nowMs: 0,
      now: at,
    });
    expect(items.outbox).toEqual([]);
  });
});
