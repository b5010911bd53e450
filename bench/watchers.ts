// Watchers part (`BENCH_PARTS=watchers`): what watching costs the run. Method: one fast run
// (no-op items, held until its watchers have subscribed) with 300 watchers in event mode and 300
// in view mode (`max_hz` 10), from the hub part's load generator. Baseline: the same run with
// none, in the same rounds. Aim: view mode ≥ 0.9× none; event mode reported. Full method: docs/benchmarks.md.
import { setTimeout as sleep } from 'node:timers/promises';
import { start } from './harness/child.js';
import { ratio, report, type BenchPart, type Table } from './harness/report.js';
import { BENCH_TOKEN } from './harness/service.js';
import { fmtInt, inTempDir, interleaved, median, progress, QUICK, range, REPS, size } from './harness/stats.js';

/** The issue's aim: with 300 watchers in view mode the run keeps ≥ 0.9× its speed with none. */
const AIM = 0.9;
const MAX_HZ = 10;
const MODES = ['none', 'event', 'view'] as const;
type Mode = (typeof MODES)[number];

interface Sample {
  eventsPerSec: number;
  /** Frames the watchers received, by type, per watcher. */
  frames: Record<string, number>;
  /** Watchers the server closed during the run. */
  closed: number;
}

export const watchersPart: BenchPart = {
  key: 'watchers',
  title: 'Watchers of one fast run',
  source: 'bench/watchers.ts',
  async run() {
    const watchers = size('WATCHERS', 300, 20);
    const items = size('WATCHERS_ITEMS', 20_000, 300);
    const concurrency = 4;
    return inTempDir(async (dir) => {
      const svc = await start<{ port: number }>('harness/service-child.ts', [dir, items, concurrency]);
      const load = await start('hub/clients.ts');
      const url = `ws://127.0.0.1:${svc.ready.port}/ws?token=${BENCH_TOKEN}`;
      let samples: Record<Mode, Sample[]>;
      try {
        samples = await interleaved(MODES, REPS, async (mode, tag) => {
          const runId = await svc.call<string>('prepare');
          if (mode !== 'none') {
            const extra = mode === 'view' ? { mode: 'view', max_hz: MAX_HZ } : {};
            await load.call('open', { url, ids: Array.from({ length: watchers }, (_, i) => i), topic: `run:${runId}`, extra, healthyBelow: watchers }, 300_000);
          }
          // Whatever the subscribes brought (snapshots, errors) counts with the run's frames.
          const closed0 = await load.call<number>('healthyClosed');
          const r = await svc.call<{ ms: number; events: number }>('go', { runId }, 600_000);
          await sleep(QUICK ? 200 : 1000);
          const kinds = await load.call<Record<string, number>>('frames');
          const closed = (await load.call<number>('healthyClosed')) - closed0;
          await load.call('drop');
          const frames = Object.fromEntries(Object.entries(kinds).map(([k, v]) => [k, mode === 'none' ? 0 : v / watchers]));
          const eventsPerSec = (r.events / r.ms) * 1000;
          progress(`${tag} ${mode}: ${fmtInt(eventsPerSec)} events/s, frames ${JSON.stringify(kinds)}`);
          return { eventsPerSec, frames, closed };
        });
      } finally {
        await load.stop();
        await svc.stop();
      }
      const perSec = (mode: Mode) => samples[mode].map((s) => s.eventsPerSec);
      const none = median(perSec('none'));
      // View mode that the server does not know yet: it answers the subscribe with an error, or sends plain events.
      const viewFrames = samples.view.map((s) => s.frames);
      const viewErrors = viewFrames.some((f) => (f.error ?? 0) > 0);
      const viewUnavailable = viewErrors || viewFrames.some((f) => (f.view ?? 0) === 0);
      const rows: Table = [['watchers', 'run events/s (median)', 'min – max', 'vs none', 'frames per watcher', 'watchers closed']];
      for (const mode of MODES) {
        const s = perSec(mode);
        const label = mode === 'none' ? 'none' : `${fmtInt(watchers)} in ${mode} mode${mode === 'view' ? ` (max_hz ${MAX_HZ})` : ''}`;
        const vs = mode === 'none' ? '1.00' : mode === 'view' ? (viewUnavailable ? 'view mode unavailable' : ratio(median(s), none, AIM)) : `${ratio(median(s), none)} (reported)`;
        const frames = mode === 'none' ? '—' : Object.entries(samples[mode].at(-1)!.frames).map(([k, v]) => `${k} ${fmtInt(v)}`).join(', ') || 'none';
        rows.push([label, fmtInt(median(s)), range(s), vs, frames, mode === 'none' ? '—' : String(samples[mode].reduce((n, x) => n + x.closed, 0))]);
      }
      const verdict = viewUnavailable
        ? `**View mode unavailable**: the server answered view-mode subscribes with ${viewErrors ? 'error frames' : 'no `view` frames'}; the aim (≥ ${AIM}× of none) is not judged.`
        : `**${median(perSec('view')) / none >= AIM ? 'Met' : 'Not met'}**: events/s with ${fmtInt(watchers)} watchers in view mode ≥ ${AIM}× the same run with none.`;
      return report(
        `### One run of ${fmtInt(items)} no-op items: none vs ${fmtInt(watchers)} watchers in event and in view mode`,
        verdict,
        { title: `One fast run, ${fmtInt(watchers)} watchers`, rows },
        `Concurrency ${concurrency}; ${REPS} rounds after a warm-up; frames per watcher from the last round.`,
      );
    });
  },
};
