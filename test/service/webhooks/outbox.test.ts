import { describe, expect, it } from 'vitest';
import { planCommit } from '../../../service/store/commit-plan.js';
import type { NewEvent } from '../../../service/store/store.js';
import { webhookEventOf } from '../../../service/webhooks/events.js';

const at = '2026-12-01T00:00:00.000Z';
const runChange = (to: string): NewEvent => ({
  event: 'state_change',
  machine_name: 'run',
  event_type: 'state_change',
  payload: { from_state: 'running', to_state: to },
  timestamp: at,
});

describe('the outbox', () => {
  it('names the webhook kind of each event that has one', () => {
    expect(webhookEventOf(runChange('completed'))).toBe('run_completed');
    expect(webhookEventOf(runChange('failed'))).toBe('run_failed');
    expect(webhookEventOf(runChange('cancelled'))).toBe('run_cancelled');
    expect(webhookEventOf(runChange('awaiting_approval'))).toBe('awaiting_approval');
    expect(webhookEventOf(runChange('paused'))).toBeNull();
    expect(webhookEventOf({ ...runChange('completed'), machine_name: 'stage_2' })).toBeNull();
    expect(webhookEventOf({ event: 'stage_complete', stage: 2, timestamp: at })).toBe('stage_complete');
    expect(webhookEventOf({ event: 'stage_item_processed', stage: 2, timestamp: at })).toBeNull();
  });

  it('is planned with the events it reports, at their seqs, and never for a repeated key', () => {
    const plan = planCommit({
      runId: 'run_1',
      batch: {
        events: [
          { event: 'stage_item_processed', stage: 1, timestamp: at },
          { event: 'stage_complete', stage: 1, timestamp: at },
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
      batch: { events: [{ event: 'stage_item_processed', stage: 1, timestamp: at }] },
      run: { lastSeq: 13, owner: null, leaseUntilMs: null },
      seen: new Map(),
      nowMs: 0,
      now: at,
    });
    expect(items.outbox).toEqual([]);
  });
});
