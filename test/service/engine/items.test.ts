import { describe, expect, it } from 'vitest';
import type { StageContext } from '../../../machines/index.js';
import { addTimings, describeItems, pageItems, type ItemTiming } from '../../../service/engine/items.js';
import type { StoredEvent } from '../../../service/events.js';

const items = [1, 2, 3, 4, 5].map((k) => ({ id: k, title: `item ${k}` }));
const context = { active: [{ index: 2, attempt: 1 }], waiting: [{ index: 3, attempt: 3, until: 0 }] } as unknown as StageContext;

describe('items of a stage', () => {
  it('says where each item is: the snapshot for unfinished ones, the ledger and events for finished ones', () => {
    const timings = new Map<string, ItemTiming>();
    const done: StoredEvent = { event: 'stage_item_processed', run_id: 'r', seq: 9, stage: 1, processed: 1, total: 5, item: { id: 1, title: 'item 1' }, timestamp: '2025-01-01T00:00:10.000Z', duration_ms: 1500 };
    addTimings(timings, [done]);
    const ledger = [
      { stage: 1, itemId: 1, status: 'done' as const, attempts: 1, cost: 2, error: null },
      { stage: 1, itemId: 2, status: 'failed' as const, attempts: 3, cost: 0, error: 'boom' },
      { stage: 2, itemId: 5, status: 'done' as const, attempts: 1, cost: 0, error: null },
    ];
    const all = describeItems({ stage: 1, items, ledger, context, timings });
    expect(all.map((i) => [i.id, i.status, i.attempts])).toEqual([[1, 'processed', 1], [2, 'failed', 3], [3, 'in_flight', 1], [4, 'waiting_retry', 2], [5, 'pending', 0]]);
    expect(all[0]).toMatchObject({ cost: 2, finished_at: '2025-01-01T00:00:10.000Z', duration_ms: 1500, started_at: '2025-01-01T00:00:08.500Z' });
    expect(all[1]).toMatchObject({ error: 'boom', finished_at: null, duration_ms: null, started_at: null });
  });

  it('filters by status and pages after an id, with counts before the filter', () => {
    const all = describeItems({ stage: 1, items, ledger: [], context: undefined, timings: new Map() });
    const first = pageItems(all, { limit: 2 });
    expect(first.data.map((i) => i.id)).toEqual([1, 2]);
    expect(first.next_after).toBe('2');
    expect(pageItems(all, { limit: 2, after: '4' })).toMatchObject({ data: [{ id: 5 }], next_after: null });
    expect(pageItems(all, { limit: 2, status: 'failed' })).toMatchObject({ data: [], next_after: null, counts: { pending: 5, failed: 0 } });
  });
});
