import { describe, expect, it } from 'vitest';
import type { ItemView } from '../../service/engine/items.js';
import { durationHistogram, filterItems, finishTimes, groupItems, itemsWanted, orderItems, rowCount, stageDurations, stageEta, tableGroups, tableRows, throughputPerMinute } from '../../web/lib/items-model.js';
import { activity, processed } from './fixtures.js';

const item = (id: number, status: ItemView['status'], title = `item ${id}`): ItemView => ({
  id, title, status, attempts: 1, started_at: null, finished_at: null, duration_ms: null, error: null, cost: null,
});

describe('items table and charts', () => {
  it('puts failed items first, then those moving, each in stage order', () => {
    const items = [item(1, 'processed'), item(2, 'failed'), item(3, 'pending'), item(4, 'in_flight'), item(5, 'failed'), item(6, 'waiting_retry')];
    expect(orderItems(items).map((i) => i.id)).toEqual([2, 5, 4, 6, 3, 1]);
    expect(orderItems([item(1, 'processed'), item(2, 'pending')]).map((i) => i.id)).toEqual([2, 1]);
  });

  it('lays the table out by status from the counts alone, failed first, and says which rows are not read yet', () => {
    const counts = { processed: 3, failed: 2, in_flight: 1, pending: 0 };
    const read = new Map([['failed', [item(2, 'failed'), item(5, 'failed')]], ['processed', [item(1, 'processed')]]] as const);
    const groups = tableGroups(counts, '', read);
    expect(groups.map((g) => [g.status, g.count])).toEqual([['failed', 2], ['in_flight', 1], ['waiting_retry', 0], ['waiting_limit', 0], ['pending', 0], ['processed', 3]]);
    expect(rowCount(groups)).toBe(6);
    expect(tableRows(groups, 0, 6).map((i) => i?.id ?? null)).toEqual([2, 5, null, 1, null, null]);
    expect(tableRows(groups, 1, 4).map((i) => i?.id ?? null)).toEqual([5, null, 1]);
    // Filtered to one status, the table is that status only.
    expect(tableGroups(counts, 'processed', read).map((g) => g.status)).toEqual(['processed']);
  });

  it('asks each status for only as many of its first items as the rows in view hold', () => {
    const groups = tableGroups({ failed: 2, in_flight: 64, pending: 10_000, processed: 5000 }, '');
    expect([...itemsWanted(groups, 40)]).toEqual([['failed', 2], ['in_flight', 38]]);
    expect([...itemsWanted(groups, 100)]).toEqual([['failed', 2], ['in_flight', 64], ['pending', 34]]);
    expect([...itemsWanted(groups, 0)]).toEqual([]);
    expect([...itemsWanted(tableGroups({ processed: 3 }, ''), 100)]).toEqual([['processed', 3]]);
  });

  it('groups items read in full (a search) by status, each in stage order', () => {
    const groups = groupItems([item(1, 'processed'), item(2, 'failed'), item(3, 'processed')], '');
    expect(tableRows(groups, 0, rowCount(groups)).map((i) => i!.id)).toEqual([2, 1, 3]);
    expect(groupItems([item(1, 'processed'), item(2, 'failed')], 'failed').map((g) => [g.status, g.count])).toEqual([['failed', 1]]);
  });

  it('takes item durations of one stage from the log', () => {
    const timed = (seq: number, stage: number, ms?: number) => ({ ...processed(seq, seq, seq), stage, ...(ms === undefined ? {} : { duration_ms: ms }) });
    expect(stageDurations([timed(1, 1, 40), timed(2, 2, 50), timed(3, 1), activity(4), timed(5, 1, 7)], 1)).toEqual([40, 7]);
  });

  it('filters by status and by title or id', () => {
    const items = [item(1, 'processed', 'Kelp'), item(22, 'failed', 'Onyx'), item(3, 'failed', 'kelp forest')];
    expect(filterItems(items, { status: 'failed', q: '' }).map((i) => i.id)).toEqual([22, 3]);
    expect(filterItems(items, { status: '', q: 'KELP' }).map((i) => i.id)).toEqual([1, 3]);
    expect(filterItems(items, { status: '', q: '22' }).map((i) => i.id)).toEqual([22]);
  });

  it('counts items finished per minute, with the quiet minutes at zero', () => {
    const t = Date.parse('2025-01-01T00:00:00.000Z');
    const [xs, ys] = throughputPerMinute([t + 1000, t + 2000, t + 130_000], t + 190_000);
    expect(xs).toEqual([t / 1000, t / 1000 + 60, t / 1000 + 120, t / 1000 + 180]);
    expect(ys).toEqual([2, 0, 1, 0]);
    expect(finishTimes([processed(1, 1, 1), activity(2)])).toHaveLength(1);
  });

  it('gives a stage’s ETA from its recent rate', () => {
    // 20 items in 10 s since the stage began: 2 a second; 20 to go is 10 s.
    const start = 1_000_000;
    const finished = Array.from({ length: 20 }, (_, i) => start + (i + 1) * 500);
    const eta = stageEta({ finished, startedAt: start, remaining: 20, now: start + 10_000 })!;
    expect(eta.stageMs).toBeCloseTo(10_000, 0);
    expect(eta.perMinute).toBeCloseTo(120, 5);
    // Without a known start, the gaps between finishes.
    expect(stageEta({ finished, startedAt: null, remaining: 19, now: start + 10_000 })!.stageMs).toBeCloseTo(9_500, 0);
    expect(stageEta({ finished: [], startedAt: start, remaining: 5, now: start + 1 })).toBeNull();
    expect(stageEta({ finished: [start + 5], startedAt: null, remaining: 5, now: start + 10 })).toBeNull();
  });

  it('bins item durations', () => {
    const [xs, ys] = durationHistogram([0, 10, 19, 95, 99], 10);
    expect(xs).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
    expect(ys).toEqual([1, 2, 0, 0, 0, 0, 0, 0, 0, 2]);
    expect(durationHistogram([])).toEqual([[], []]);
  });
});
