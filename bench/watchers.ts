// Watchers part (`BENCH_PARTS=watchers`): what watching costs the run. Method: one fast run
// (no-op items, held until its watchers have subscribed) with 300 watchers in event mode and 300
// in view mode (`max_hz` 10), read by bench/watch-load.ts, which checks each got every event.
// Baseline: the same run with none, in the same rounds. Aims: view mode ≥ 0.9× none, event mode
// ≥ 0.5×, judged only when no watcher was closed and every one is complete. Full method: docs/benchmarks.md.
import { start } from './harness/child.js';
import { loadNote, loadNow, ratio, report, type BenchPart, type Table } from './harness/report.js';
import { BENCH_TOKEN } from './harness/service.js';
import { fmtInt, inTempDir, interleaved, median, progress, range, REPS, size, until } from './harness/stats.js';
import type { WatcherSummary } from './watch-load.js';

const AIMS = { view: 0.9, event: 0.5 } as const;
const MAX_HZ = 10;
const MODES = ['none', 'event', 'view'] as const;
type Mode = (typeof MODES)[number];

interface Sample {
  eventsPerSec: number;
  /** Text frames per watcher, the mean. */
  frames: number;
  /** Watchers the server closed, and watchers that got everything (event mode: every event; view mode: the final view). */
  closed: number;
  complete: number;
  /** The load generator's CPU over the run, as a share of one core. */
  loadCpu: number;
}

/** Event mode: a snapshot, then every event after it up to the last; view mode: views up to the last seq. */
function complete(mode: Mode, w: WatcherSummary, lastSeq: number): boolean {
  if (w.closed || w.last?.seq !== lastSeq) return false;
  if (mode === 'view') return w.last.type === 'view';
  return w.first?.type === 'snapshot' && w.last.type === 'event' && w.frames === 1 + lastSeq - w.first.seq;
}

export const watchersPart: BenchPart = {
  key: 'watchers',
  title: 'Watchers of one fast run',
  source: 'bench/watchers.ts',
  async run() {
    const watchers = size('WATCHERS', 300, 20);
    const items = size('WATCHERS_ITEMS', 20_000, 300);
    const concurrency = 4;
    const load0 = loadNow();
    return inTempDir(async (dir) => {
      const svc = await start<{ port: number }>('harness/service-child.ts', [dir, items, concurrency]);
      const load = await start('watch-load.ts');
      let samples: Record<Mode, Sample[]>;
      try {
        samples = await interleaved(MODES, REPS, async (mode, tag) => {
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
          const eventsPerSec = (r.events / r.ms) * 1000;
          const s: Sample = {
            eventsPerSec,
            frames: got.length ? got.reduce((n, w) => n + w.frames, 0) / got.length : 0,
            closed: got.filter((w) => w.closed).length,
            complete: got.filter((w) => complete(mode, w, r.events)).length,
            loadCpu: cpu / r.ms,
          };
          progress(`${tag} ${mode}: ${fmtInt(eventsPerSec)} events/s, ${fmtInt(s.frames)} frames/watcher, ${s.complete}/${got.length} complete, ${s.closed} closed, load CPU ${Math.round(s.loadCpu * 100)}%`);
          return s;
        });
      } finally {
        await load.stop();
        await svc.stop();
      }
      const perSec = (mode: Mode) => samples[mode].map((s) => s.eventsPerSec);
      const none = median(perSec('none'));
      const sum = (mode: Mode, k: 'closed' | 'complete') => samples[mode].reduce((n, s) => n + s[k], 0);
      const valid = (mode: Mode) => sum(mode, 'closed') === 0 && sum(mode, 'complete') === watchers * REPS;
      const rows: Table = [['watchers', 'run events/s (median)', 'min – max', 'vs none', 'frames per watcher (mean)', 'complete / closed', 'load generator CPU']];
      rows.push(['none', fmtInt(none), range(perSec('none')), '1.00', '—', '—', '—']);
      for (const mode of ['event', 'view'] as const) {
        const s = perSec(mode);
        rows.push([
          `${fmtInt(watchers)} in ${mode} mode${mode === 'view' ? ` (max_hz ${MAX_HZ})` : ''}`,
          fmtInt(median(s)),
          range(s),
          valid(mode) ? ratio(median(s), none, AIMS[mode]) : `${ratio(median(s), none)} (not judged: incomplete)`,
          fmtInt(median(samples[mode].map((x) => x.frames))),
          `${sum(mode, 'complete')} / ${sum(mode, 'closed')} of ${watchers * REPS}`,
          `${Math.round(Math.max(...samples[mode].map((x) => x.loadCpu)) * 100)}% of a core`,
        ]);
      }
      const verdict = (mode: 'event' | 'view') =>
        !valid(mode) ? 'not judged (watchers closed or incomplete)' : median(perSec(mode)) / none >= AIMS[mode] ? `**met** (≥ ${AIMS[mode]}×)` : `**not met** (below ${AIMS[mode]}×)`;
      return report(
        `### One run of ${fmtInt(items)} no-op items: none vs ${fmtInt(watchers)} watchers in event and in view mode`,
        `Events/s with ${fmtInt(watchers)} watchers against the same run with none: view mode ${verdict('view')}, event mode ${verdict('event')}.`,
        { title: `One fast run, ${fmtInt(watchers)} watchers`, rows },
        `Concurrency ${concurrency}; ${REPS} rounds after a warm-up; *complete / closed* over all rounds. ${loadNote(load0)}`,
      );
    });
  },
};
