// The runs list's model: runs by id as the server last described them (the `site:*` feed and
// one listing at load), and the filters, kept in the page's URL. Pure.
import { isTerminalRunState } from '../../machines/statuses.js';
import type { RunView } from './run-model.js';

export interface RunsFilter {
  site: string;
  status: string;
  pipeline: string;
  /** Part of a run id. */
  q: string;
  /** 1-based. */
  page: number;
}

export const NO_FILTER: RunsFilter = { site: '', status: '', pipeline: '', q: '', page: 1 };
export const PAGE_SIZE = 50;

/** Takes each run's newer description: the one with the higher `last_seq` (a tie: the later one to arrive). */
export function mergeRuns(current: ReadonlyMap<string, RunView>, incoming: readonly RunView[]): Map<string, RunView> {
  const next = new Map(current);
  for (const run of incoming) {
    const have = next.get(run.run_id);
    if (!have || run.last_seq >= have.last_seq) next.set(run.run_id, run);
  }
  return next;
}

export function filterFromSearch(search: string): RunsFilter {
  const p = new URLSearchParams(search);
  const page = Number(p.get('page'));
  return {
    site: p.get('site') ?? '',
    status: p.get('status') ?? '',
    pipeline: p.get('pipeline') ?? '',
    q: p.get('q') ?? '',
    page: Number.isInteger(page) && page > 0 ? page : 1,
  };
}

/** The filter as a query string (empty fields left out), for the address bar. */
export function filterToSearch(f: RunsFilter): string {
  const p = new URLSearchParams();
  if (f.site) p.set('site', f.site);
  if (f.status) p.set('status', f.status);
  if (f.pipeline) p.set('pipeline', f.pipeline);
  if (f.q) p.set('q', f.q);
  if (f.page > 1) p.set('page', String(f.page));
  const s = p.toString();
  return s ? `?${s}` : '';
}

/** A run's status as the list shows it: closed runs say so. */
export function listStatus(run: RunView): string {
  return run.closed_at ? 'closed' : run.status;
}

export interface RunsPage {
  /** The runs of this page, newest first. */
  rows: RunView[];
  /** Runs that pass every filter but the status one, by status: the counts beside the status filter. */
  counts: Record<string, number>;
  /** Runs that pass every filter. */
  matching: number;
  pages: number;
  page: number;
  sites: string[];
  pipelines: string[];
}

export function runsPage(all: ReadonlyMap<string, RunView>, f: RunsFilter, pageSize = PAGE_SIZE): RunsPage {
  const runs = [...all.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : a.run_id < b.run_id ? 1 : -1));
  const q = f.q.trim().toLowerCase();
  const counts: Record<string, number> = {};
  const matching: RunView[] = [];
  for (const r of runs) {
    if (f.site && r.site_id !== f.site) continue;
    if (f.pipeline && r.pipeline !== f.pipeline) continue;
    if (q && !r.run_id.toLowerCase().includes(q)) continue;
    const status = listStatus(r);
    counts[status] = (counts[status] ?? 0) + 1;
    if (f.status && status !== f.status) continue;
    matching.push(r);
  }
  const pages = Math.max(1, Math.ceil(matching.length / pageSize));
  const page = Math.min(Math.max(1, f.page), pages);
  return {
    rows: matching.slice((page - 1) * pageSize, page * pageSize),
    counts,
    matching: matching.length,
    pages,
    page,
    sites: [...new Set(runs.map((r) => r.site_id))].sort(),
    pipelines: [...new Set(runs.map((r) => r.pipeline))].sort(),
  };
}

/** How far the run has got: finished items over all items of the stages loaded so far. */
export function runProgress(run: RunView): { done: number; total: number; percentage: number } {
  let done = 0;
  let total = 0;
  for (const s of run.stages) {
    if (s.total_items === null) continue;
    done += s.processed_items;
    total += s.total_items;
  }
  const finished = run.status === 'completed';
  return { done, total, percentage: finished ? 100 : total > 0 ? Math.floor((100 * done) / total) : 0 };
}

/** `1h 2m`, `3m 4s`, `5s`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s >= 3600) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${s}s`;
}

/** How long the run has taken: until it stopped (its last update: finished, or failed) or until now. */
export function runDuration(run: RunView, now: number): number {
  const stopped = isTerminalRunState(run.status) || run.status === 'failed';
  const end = stopped ? Date.parse(run.updated_at) : now;
  return end - Date.parse(run.created_at);
}
