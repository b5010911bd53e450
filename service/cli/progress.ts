// What `runstate tail` knows of a run: built from the WebSocket snapshot, moved on by each
// event, and drawn either as lines (a log, a pipe) or as bars (a terminal). Pure: no I/O.
import type { ItemRef, ProcessingView, RunView } from '../engine/view.js';

export const FINAL = ['completed', 'failed', 'cancelled'];

export interface StageProgress {
  number: number;
  name: string;
  state: string;
  total: number | null;
  processed: number;
  failed: number;
}

export interface Progress {
  runId: string;
  pipeline: string;
  siteId: string;
  status: string;
  stages: StageProgress[];
  inFlight: ItemRef[];
  lastLog: string | null;
}

export interface WireEvent {
  event: string;
  seq: number;
  stage?: number;
  stage_name?: string;
  machine_name?: string;
  payload?: { from_state?: string; to_state?: string; message?: string };
  total_items?: number;
  processed?: number;
  total?: number;
  processed_count?: number;
  failed_count?: number;
  time_elapsed?: string;
  item?: { id: unknown; title?: string };
  attempts?: number;
  error?: string;
  message?: string;
  command?: string;
  by?: string;
  reason?: string;
}

export function fromView(run: RunView & { processing?: ProcessingView | null }): Progress {
  return {
    runId: run.run_id,
    pipeline: run.pipeline,
    siteId: run.site_id,
    status: run.status,
    stages: run.stages.map((s) => ({ number: s.number, name: s.name, state: s.state, total: s.total_items, processed: s.processed_items, failed: s.failed_items })),
    inFlight: run.processing?.currently_processing ?? [],
    lastLog: null,
  };
}

export function percent(s: StageProgress): number {
  if (s.total === null) return 0;
  if (s.total <= 0) return 100;
  return Math.min(100, Math.floor((100 * s.processed) / s.total));
}

function counts(s: StageProgress): string {
  return `${s.processed}/${s.total ?? '?'} (${percent(s)}%)`;
}

/** Moves `p` on by one event; answers the line a plain log shows for it, if any. */
export function apply(p: Progress, e: WireEvent): string | null {
  const stage = e.stage !== undefined ? p.stages.find((s) => s.number === e.stage) : undefined;
  const label = stage ? `stage ${stage.number} ${stage.name}` : `stage ${e.stage ?? '?'}`;
  switch (e.event) {
    case 'state_change': {
      const to = e.payload?.to_state ?? '?';
      const from = e.payload?.from_state ?? '?';
      if (e.machine_name === 'run') {
        p.status = to;
        if (FINAL.includes(to) || to === 'paused') p.inFlight = [];
        return `run ${from} → ${to}`;
      }
      const m = /^stage_(\d+)$/.exec(e.machine_name ?? '');
      const s = m ? p.stages.find((x) => x.number === Number(m[1])) : undefined;
      if (!s) return null;
      s.state = to;
      if (to === 'empty') {
        s.total = 0;
        return `stage ${s.number} ${s.name}: empty, no items to process ${counts(s)}`;
      }
      return `stage ${s.number} ${s.name}: ${to}`;
    }
    case 'stage_start':
      if (stage) stage.total = e.total_items ?? stage.total;
      return `${label}: ${e.total_items ?? '?'} items`;
    case 'stage_item_processed':
      if (stage) {
        stage.processed = e.processed ?? stage.processed + 1;
        stage.total = e.total ?? stage.total;
        p.inFlight = p.inFlight.filter((i) => i.id !== e.item?.id);
      }
      return `${label}: ${stage ? counts(stage) : `${e.processed}/${e.total}`} ${e.item?.title ?? ''}`.trimEnd();
    case 'stage_item_failed':
      if (stage) stage.failed += 1;
      return `${label}: ${e.item?.title ?? e.item?.id} failed after ${e.attempts} attempts: ${e.error ?? ''}`.trimEnd();
    case 'stage_complete':
      if (stage) {
        stage.processed = e.processed_count ?? stage.processed;
        stage.state = stage.total === 0 ? stage.state : 'completed';
      }
      return `${label}: done ${stage ? counts(stage) : ''}, ${e.failed_count ?? 0} failed${e.time_elapsed ? `, ${e.time_elapsed}` : ''}`;
    case 'activity_log':
      p.lastLog = e.message ?? e.payload?.message ?? '';
      return `log: ${p.lastLog}`;
    case 'command':
      return `command ${e.command} by ${e.by}${e.reason ? ` (${e.reason})` : ''}`;
    case 'run_started':
      return 'run started';
    default:
      return null;
  }
}

/** The lines a plain log starts with: the run and every stage as the snapshot has them. */
export function summaryLines(p: Progress): string[] {
  return [`run ${p.runId} (${p.pipeline} on ${p.siteId}): ${p.status}`, ...p.stages.map((s) => `stage ${s.number} ${s.name}: ${s.state} ${counts(s)}`)];
}

function bar(fraction: number, width: number): string {
  const full = Math.round(Math.max(0, Math.min(1, fraction)) * width);
  return '█'.repeat(full) + '░'.repeat(width - full);
}

function fit(text: string, width: number): string {
  const chars = [...text];
  return chars.length <= width ? text + ' '.repeat(width - chars.length) : `${chars.slice(0, width - 1).join('')}…`;
}

/** The terminal view: a header, a bar per stage, the items in flight, the last log line. */
export function screen(p: Progress, columns = 100): string[] {
  const nameWidth = Math.min(28, Math.max(...p.stages.map((s) => [...s.name].length), 8));
  const barWidth = Math.max(10, Math.min(30, columns - nameWidth - 40));
  const lines = [`${p.runId} · ${p.pipeline} · ${p.siteId} · ${p.status}`];
  for (const s of p.stages) {
    const pct = percent(s);
    lines.push(`${String(s.number).padStart(2)} ${fit(s.name, nameWidth)} ${bar(pct / 100, barWidth)} ${String(pct).padStart(3)}%  ${`${s.processed}/${s.total ?? '?'}`.padEnd(11)} ${s.state}${s.failed ? `, ${s.failed} failed` : ''}`);
  }
  const flying = p.inFlight.map((i) => i.title).join(', ');
  lines.push(fit(`in flight: ${flying || '—'}`, columns - 1));
  if (p.lastLog !== null) lines.push(fit(`log: ${p.lastLog}`, columns - 1));
  return lines;
}
