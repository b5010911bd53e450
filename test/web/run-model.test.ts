import { describe, expect, it } from 'vitest';
import { EMPTY_LOG, appendEvents, logAtSnapshot, usualItemMs, withHistory, withView } from '../../web/lib/run-model.js';
import { activity, processed, processingView, runView } from './fixtures.js';

describe('run model: the server view as it is, the log as it grows', () => {
  it('takes each view whole, never merging it with what came before', () => {
    const first = withView(null, { run: runView(), processing: processingView({ processed_items: 3, percentage: 75 }), seq: 9 }, 1000);
    const later = { run: runView({ status: 'paused' }), processing: processingView({ processed_items: 2, percentage: 50 }), seq: 8 };
    // Even a view with lower counts is shown as sent: the server's is the only view.
    expect(withView(first, later, 2000).view).toBe(later);
  });

  it('remembers since when each item is in flight, across views, and forgets those that left', () => {
    const a = withView(null, { run: runView(), processing: processingView({ currently_processing: [{ id: 2, title: 'item 2' }] }), seq: 1 }, 1000);
    const b = withView(a, { run: runView(), processing: processingView({ currently_processing: [{ id: 2, title: 'item 2' }, { id: 3, title: 'item 3' }] }), seq: 2 }, 2000);
    expect(b.inFlightSince).toEqual({ '2': 1000, '3': 2000 });
    const c = withView(b, { run: runView(), processing: processingView({ currently_processing: [{ id: 3, title: 'item 3' }] }), seq: 3 }, 3000);
    expect(c.inFlightSince).toEqual({ '3': 2000 });
    expect(withView(c, { run: runView(), processing: null, seq: 4 }, 4000).inFlightSince).toEqual({});
  });

  it('appends events past its last seq, in seq order, each once', () => {
    const log = appendEvents(EMPTY_LOG, [activity(2), activity(1)]);
    expect(log.events.map((e) => e.seq)).toEqual([1, 2]);
    expect(log.seq).toBe(2);
    const again = appendEvents(log, [activity(2), activity(3)]);
    expect(again.events.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(appendEvents(again, [activity(1)])).toBe(again);
  });

  it('starts over at a snapshot, keeping what it held up to it (a reset keeps nothing)', () => {
    const log = appendEvents(EMPTY_LOG, [activity(1), activity(2), activity(3)]);
    expect(logAtSnapshot(log, 2, false)).toEqual({ seq: 2, events: log.events.slice(0, 2) });
    expect(logAtSnapshot(log, 7, true)).toEqual({ seq: 7, events: [] });
  });

  it('puts the trace’s history in front, without duplicates or events past the log', () => {
    const log = logAtSnapshot(appendEvents(EMPTY_LOG, [activity(4), activity(5)]), 5, false);
    const merged = withHistory(log, [activity(1), activity(2), activity(3), activity(4), activity(6)]);
    expect(merged.events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(merged.seq).toBe(5);
  });

  it('knows the stage’s usual time per item from its last finished items', () => {
    const events = [processed(1, 1, 1, '2025-01-01T00:00:00.000Z'), processed(2, 2, 2, '2025-01-01T00:00:02.000Z'), processed(3, 3, 3, '2025-01-01T00:00:04.000Z')];
    expect(usualItemMs(events.slice(0, 2), 1, 1)).toBeNull();
    expect(usualItemMs(events, 1, 1)).toBe(2000);
    expect(usualItemMs(events, 1, 2)).toBe(4000);
    expect(usualItemMs(events, 2, 1)).toBeNull();
  });
});
