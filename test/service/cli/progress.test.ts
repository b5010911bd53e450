import { describe, expect, it } from 'vitest';
import { apply, fromView, screen, summaryLines } from '../../../service/cli/progress.js';
import type { RunView } from '../../../service/engine/view.js';

const stage = (number: number, name: string, state: string, total: number | null, processed: number) => ({
  number, name, type: name, state, total_items: total, processed_items: processed, failed_items: 0, credits_used: 0, error: null,
});

const view = {
  run_id: 'run_20250101_000000_manual', site_id: 's', pipeline: 'p', status: 'running',
  stages: [stage(1, 'Load', 'completed', 2, 2), stage(2, 'Empty', 'pending', null, 0), stage(3, 'Work', 'pending', null, 0)],
  processing: null,
} as unknown as RunView;

describe("tail's progress", () => {
  it('follows the events: counts, an empty stage at 100%, the run state', () => {
    const p = fromView(view);
    expect(summaryLines(p)).toEqual([
      'run run_20250101_000000_manual (p on s): running',
      'stage 1 Load: completed 2/2 (100%)',
      'stage 2 Empty: pending 0/? (0%)',
      'stage 3 Work: pending 0/? (0%)',
    ]);
    expect(apply(p, { event: 'state_change', seq: 5, machine_name: 'stage_2', payload: { from_state: 'loading', to_state: 'empty' } })).toBe('stage 2 Empty: empty, no items to process 0/0 (100%)');
    expect(apply(p, { event: 'stage_start', seq: 6, stage: 3, total_items: 3 })).toBe('stage 3 Work: 3 items');
    expect(apply(p, { event: 'stage_item_processed', seq: 7, stage: 3, processed: 1, total: 3, item: { id: 1, title: 'one' } })).toBe('stage 3 Work: 1/3 (33%) one');
    expect(apply(p, { event: 'stage_item_failed', seq: 8, stage: 3, item: { id: 2, title: 'two' }, attempts: 3, error: 'boom' })).toBe('stage 3 Work: two failed after 3 attempts: boom');
    expect(apply(p, { event: 'state_change', seq: 9, machine_name: 'run', payload: { from_state: 'running', to_state: 'paused' } })).toBe('run running → paused');
    expect(p.status).toBe('paused');
    expect(apply(p, { event: 'command', seq: 10, command: 'resume', by: 'ops', reason: 'back' })).toBe('command resume by ops (back)');
  });

  it('draws a bar per stage and the items in flight', () => {
    const p = fromView(view);
    p.stages[2]!.total = 4;
    p.stages[2]!.processed = 1;
    p.inFlight = [{ id: 2, title: 'two' }, { id: 3, title: 'three' }];
    const lines = screen(p, 80);
    expect(lines[0]).toBe('run_20250101_000000_manual · p · s · running');
    expect(lines[1]).toMatch(/^ 1 Load +█+ 100% {2}2\/2 +completed$/);
    expect(lines[3]).toMatch(/^ 3 Work +█+░+ {2}25% {2}1\/4 +pending$/);
    expect(lines.at(-1)).toMatch(/^in flight: two, three *$/);
  });
});
