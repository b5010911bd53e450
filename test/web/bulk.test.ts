import { describe, expect, it } from 'vitest';
import { bulkSummary, keepKnown, outcomeOf, selectionOf, toggleAll, toggleOne, type BulkResult } from '../../web/lib/bulk.js';
import type { RunView } from '../../web/lib/run-model.js';
import { runView } from './fixtures.js';

const ok = (run_id: string, accepted = true): BulkResult => ({ run_id, status: 200, accepted, run_status: 'paused' });
const refused = (run_id: string, status: number, code: string): BulkResult => ({ run_id, status, code, message: '…' });
const runs = (...pairs: [string, string][]) => new Map<string, RunView>(pairs.map(([id, status]) => [id, runView({ run_id: id, status })]));

describe('bulk selection', () => {
  it('toggles one run in and out', () => {
    let s = toggleOne(new Set(), 'a');
    expect([...s]).toEqual(['a']);
    s = toggleOne(s, 'a');
    expect(s.size).toBe(0);
  });

  it('selects every visible run, keeping others selected, and clears them once all are', () => {
    const s = toggleAll(new Set(['x', 'a']), ['a', 'b', 'c']);
    expect([...s].sort()).toEqual(['a', 'b', 'c', 'x']);
    expect([...toggleAll(s, ['a', 'b', 'c'])]).toEqual(['x']);
    expect(toggleAll(new Set(), []).size).toBe(0);
  });

  it('says whether all, some or none of the visible runs are selected', () => {
    expect(selectionOf(new Set(['a', 'b']), ['a', 'b'])).toBe('all');
    expect(selectionOf(new Set(['a']), ['a', 'b'])).toBe('some');
    expect(selectionOf(new Set(['z']), ['a', 'b'])).toBe('none');
    expect(selectionOf(new Set(), [])).toBe('none');
  });

  it('drops runs the list no longer knows', () => {
    expect([...keepKnown(new Set(['a', 'gone']), runs(['a', 'running']))]).toEqual(['a']);
  });
});

describe('bulk results in words', () => {
  it('counts each outcome: done, already so, refused by state (naming it), refused otherwise', () => {
    const before = runs(['a', 'running'], ['b', 'running'], ['c', 'completed'], ['d', 'paused']);
    const results = [ok('a'), ok('b'), refused('c', 409, 'COMMAND_NOT_ALLOWED'), ok('d', false), refused('e', 403, 'FORBIDDEN')];
    expect(bulkSummary('pause', results, before)).toBe('2 paused, 1 not allowed: completed, 1 already paused, 1 refused: FORBIDDEN');
    expect(outcomeOf('resume', ok('a'), before.get('a'))).toBe('resumed');
    expect(outcomeOf('cancel', ok('a', false), before.get('a'))).toBe('already cancelled');
    expect(outcomeOf('pause', refused('z', 409, 'COMMAND_NOT_ALLOWED'), undefined)).toBe('not allowed: its state');
  });

  it('says so when no run was commanded', () => {
    expect(bulkSummary('pause', [], new Map())).toBe('No run was commanded.');
  });
});
