// Watchers part: one fast run with 300 watchers in event mode, and in view mode (`max_hz` 10), read by
// bench/watch-load.ts, against the same run with none; its aims are judged only when every watcher is complete.
import { withChildren, type Child } from './harness/child.js';
import { rateTable, ratio, report, type BenchPart, type PartReport } from './harness/report.js';
import { BENCH_TOKEN } from './harness/service.js';
import { fmtInt, inTempDir, median, REPS, rounds, size, until } from './harness/stats.js';
import type { WatcherSummary } from './watch-load.js';

type Mode = 'none' | 'event' | 'view';
const AIMS: Partial<Record<Mode, number>> = { view: 0.9, event: 0.5 };
const MAX_HZ = 10;

/** Event mode: a snapshot, then every event after it up to the last; view mode: views up to the last seq. */
function complete(mode: Mode, w: WatcherSummary, lastSeq: number): boolean {
  if (w.closed || w.last?.seq !== lastSeq) return false;
  if (mode === 'view') return w.last.type === 'view';
  return w.first?.type === 'snapshot' && w.last.type === 'event' && w.frames === 1 + lastSeq - w.first.seq;
}

/** One run of the service child, with `watchers` watchers of `mode` subscribed before it goes. */
async function watchedRun(svc: Child<{ port: number }>, load: Child, mode: Mode, watchers: number) {
  const runId = await svc.call<string>('prepare');
  if (mode !== 'none') {
    const subscribe = { topic: `run:${runId}`, ...(mode === 'view' ? { mode: 'view', max_hz: MAX_HZ } : {}) };
    await load.call('open', { port: svc.ready.port, path: `/ws?token=${BENCH_TOKEN}`, ids: Array.from({ length: watchers }, (_, i) => i), subscribe }, 300_000);
  }
  const cpu0 = await load.call<number>('cpu');
  const r = await svc.call<{ ms: number; events: number }>('go', { runId }, 600_000);
  const cpu = (await load.call<number>('cpu')) - cpu0;
  let got: WatcherSummary[] = [];
  // Frames the server wrote before the run retired may still be on their way; one still short after 30 s counts as incomplete.
  const arrived = async () => (got = await load.call<WatcherSummary[]>('summary')).every((w) => w.closed || w.last?.seq === r.events);
  await until(arrived, 30_000, 'watchers short of the last event').catch(() => undefined);
  await load.call('drop');
  return {
    perSec: (r.events / r.ms) * 1000,
    frames: got.length ? got.reduce((n, w) => n + w.frames, 0) / got.length : 0,
    closed: got.filter((w) => w.closed).length,
    complete: got.filter((w) => complete(mode, w, r.events)).length,
    loadCpu: cpu / r.ms,
  };
}

async function run(): Promise<PartReport> {
  const watchers = size('WATCHERS', 300, 20);
  const items = size('WATCHERS_ITEMS', 20_000, 300);
  const concurrency = 4;
  const event = `${fmtInt(watchers)} in event mode`;
  const view = `${fmtInt(watchers)} in view mode (max_hz ${MAX_HZ})`;
  const modes: Record<string, Mode> = { none: 'none', [event]: 'event', [view]: 'view' };
  const samples = await inTempDir((dir) =>
    withChildren(async (start) => {
      const svc = await start<{ port: number }>('harness/service-child.ts', [dir, items, concurrency]);
      const load = await start('watch-load.ts');
      const variants = Object.fromEntries(Object.entries(modes).map(([label, mode]) => [label, () => watchedRun(svc, load, mode, watchers)]));
      const detail = (s: Awaited<ReturnType<typeof watchedRun>>) => `, ${fmtInt(s.frames)} frames/watcher, ${s.complete} complete, ${s.closed} closed, load CPU ${Math.round(s.loadCpu * 100)}%`;
      return rounds(variants, { unit: 'events/s', detail });
    }),
  );
  const sum = (label: string, k: 'closed' | 'complete') => samples[label]!.reduce((n, s) => n + s[k], 0);
  const valid = (label: string) => sum(label, 'closed') === 0 && sum(label, 'complete') === watchers * REPS;
  const watched = (cell: (label: string) => string) => (label: string) => (label === 'none' ? '—' : cell(label));
  const rows = rateTable(samples, ['watchers', 'run events/s'], (med) => [
    ['vs none', (v) => (v === 'none' || valid(v) ? ratio(med(v), med('none'), AIMS[modes[v]!]) : `${ratio(med(v), med('none'))} (not judged: incomplete)`)],
    ['frames per watcher (mean)', watched((v) => fmtInt(median(samples[v]!.map((x) => x.frames))))],
    ['complete / closed', watched((v) => `${sum(v, 'complete')} / ${sum(v, 'closed')} of ${watchers * REPS}`)],
    ['load generator CPU', watched((v) => `${Math.round(Math.max(...samples[v]!.map((x) => x.loadCpu)) * 100)}% of a core`)],
  ]);
  const none = median(samples.none!.map((s) => s.perSec));
  const verdict = (label: string) => {
    const aim = AIMS[modes[label]!]!;
    if (!valid(label)) return 'not judged (watchers closed or incomplete)';
    return median(samples[label]!.map((s) => s.perSec)) / none >= aim ? `**met** (≥ ${aim}×)` : `**not met** (below ${aim}×)`;
  };
  return report(
    `### One run of ${fmtInt(items)} no-op items: none vs ${fmtInt(watchers)} watchers in event and in view mode`,
    `Events/s with ${fmtInt(watchers)} watchers against the same run with none: view mode ${verdict(view)}, event mode ${verdict(event)}.`,
    { title: `One fast run, ${fmtInt(watchers)} watchers`, rows },
    `Concurrency ${concurrency}; ${REPS} rounds after a warm-up; *complete / closed* over all rounds.`,
  );
}

export const watchersPart: BenchPart = { key: 'watchers', title: 'Watchers of one fast run', source: 'bench/watchers.ts', run };
