import { describe, expect, it } from 'vitest';
import { NO_FILTER, filterFromSearch, filterToSearch, formatDuration, mergeRuns, runDuration, runProgress, runsPage } from '../../web/lib/runs-list.js';
import { runView } from './fixtures.js';

const at = (n: number) => `2025-01-01T00:${String(Math.floor(n / 60)).padStart(2, '0')}:${String(n % 60).padStart(2, '0')}.000Z`;
const runs = (n: number) =>
  Array.from({ length: n }, (_, i) =>
    runView({
      run_id: `run_${String(i).padStart(4, '0')}`,
      site_id: i % 3 === 0 ? '5' : 'site-9',
      pipeline: i % 2 ? 'content' : 'face_processor',
      status: i % 4 === 0 ? 'completed' : 'running',
      closed_at: i % 8 === 0 ? at(i) : null,
      created_at: at(i),
    }),
  );

describe('runs list', () => {
  it('keeps each run’s newest description, whichever door it came through', () => {
    const a = runView({ run_id: 'r1', last_seq: 5, status: 'running' });
    let m = mergeRuns(new Map(), [a]);
    m = mergeRuns(m, [{ ...a, last_seq: 4, status: 'idle' }]);
    expect(m.get('r1')!.status).toBe('running');
    m = mergeRuns(m, [{ ...a, last_seq: 6, status: 'paused' }, runView({ run_id: 'r2' })]);
    expect([...m.keys()]).toEqual(['r1', 'r2']);
    expect(m.get('r1')!.status).toBe('paused');
  });

  it('keeps its filters in the URL, and reads back what it wrote', () => {
    const f = { site: '5', status: 'failed', pipeline: 'content', q: 'run_2025', page: 3 };
    expect(filterToSearch(f)).toBe('?site=5&status=failed&pipeline=content&q=run_2025&page=3');
    expect(filterFromSearch(filterToSearch(f))).toEqual(f);
    expect(filterToSearch(NO_FILTER)).toBe('');
    expect(filterFromSearch('?page=-2&x=1')).toEqual(NO_FILTER);
  });

  it('shows every site by default, newest first, paged', () => {
    const all = mergeRuns(new Map(), runs(120));
    const first = runsPage(all, NO_FILTER, 50);
    expect(first.pages).toBe(3);
    expect(first.matching).toBe(120);
    expect(first.rows[0]!.run_id).toBe('run_0119');
    expect(first.sites).toEqual(['5', 'site-9']);
    const last = runsPage(all, { ...NO_FILTER, page: 9 }, 50);
    expect(last.page).toBe(3);
    expect(last.rows).toHaveLength(20);
  });

  it('narrows by site, pipeline, status and run id, and counts each status under the other filters', () => {
    const all = mergeRuns(new Map(), runs(40));
    const site5 = runsPage(all, { ...NO_FILTER, site: '5' });
    expect(site5.rows.every((r) => r.site_id === '5')).toBe(true);
    expect(site5.matching).toBe(14);
    const closed = runsPage(all, { ...NO_FILTER, site: '5', status: 'closed' });
    expect(closed.rows.map((r) => r.run_id)).toEqual(['run_0024', 'run_0000']);
    // The counts ignore the status filter, so each reads as what picking it would show.
    expect(closed.counts).toEqual(site5.counts);
    expect(Object.values(site5.counts).reduce((a, b) => a + b, 0)).toBe(14);
    expect(runsPage(all, { ...NO_FILTER, q: '0033' }).rows.map((r) => r.run_id)).toEqual(['run_0033']);
    expect(runsPage(all, { ...NO_FILTER, pipeline: 'content' }).rows.every((r) => r.pipeline === 'content')).toBe(true);
  });

  it('reads progress over the stages loaded so far, and duration until the run stopped', () => {
    expect(runProgress(runView())).toEqual({ done: 1, total: 4, percentage: 25 });
    expect(runProgress(runView({ status: 'completed' })).percentage).toBe(100);
    const r = runView({ created_at: '2025-01-01T00:00:00.000Z', updated_at: '2025-01-01T00:01:05.000Z' });
    expect(runDuration(r, Date.parse('2025-01-01T00:00:30.000Z'))).toBe(30_000);
    expect(runDuration({ ...r, status: 'completed' }, Date.parse('2025-01-01T09:00:00.000Z'))).toBe(65_000);
    expect([formatDuration(5_400), formatDuration(65_000), formatDuration(3_725_000)]).toEqual(['5s', '1m 5s', '1h 2m']);
  });
});
