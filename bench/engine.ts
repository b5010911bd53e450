// Engine part. Method: one run of no-op items through a fresh engine and store, timed from
// startRun to retired and checked. Baseline: a bare better-sqlite3 loop doing the same durable
// writes per item (and per 40 items), in the same rounds. Aims: engine / bare ≥ 0.5; 1,000
// concurrent runs under 100 MB above baseline (a child process, bench/engine-memory.ts).
// The full method is in docs/benchmarks.md, after the part's section.
import { start } from './harness/child.js';
import { ratio, report, type BenchPart, type Table } from './harness/report.js';
import { bareLoop, measureEngine } from './harness/service.js';
import { fmtInt, inTempDir, interleaved, median, progress, range, REPS, size } from './harness/stats.js';
import type { MemoryResult } from './engine-memory.js';

/** The aims: the engine within 2× of the bare durable loop; 1,000 runs under 100 MB above baseline. */
const AIM_RATIO = 0.5;
const AIM_MB = 100;
const MB = 1024 * 1024;
/** Group commit at about the engine's own batch size at concurrency 1, to show what batching alone buys. */
const GROUPED = 40;
const BARE = 'bare SQLite loop';
const BARE_GROUPED = `bare SQLite loop, ${GROUPED} items per txn`;
const ENGINE = {
  'engine, concurrency 1': { concurrency: 1, trace: false },
  'engine, concurrency 8': { concurrency: 8, trace: false },
  'engine + trace, concurrency 1': { concurrency: 1, trace: true },
  'engine + trace, concurrency 8': { concurrency: 8, trace: true },
} as const;
type Variant = keyof typeof ENGINE | typeof BARE | typeof BARE_GROUPED;

async function throughput(items: number) {
  let snapshotBytes = 0;
  const variants = [...(Object.keys(ENGINE) as (keyof typeof ENGINE)[]), BARE, BARE_GROUPED] as Variant[];
  const samples = await interleaved(variants, REPS, (v, tag) =>
    inTempDir(async (dir) => {
      let m: { perSec: number; perTxn: number };
      if (v === BARE || v === BARE_GROUPED) {
        const perTxn = v === BARE ? 1 : GROUPED;
        m = { perSec: await bareLoop(dir, items, { perTxn, snapshotBytes }), perTxn };
      } else {
        const r = await measureEngine(dir, { items, ...ENGINE[v] });
        // The warm-up runs the first variant first: its snapshot sizes the bare loop's.
        snapshotBytes ||= r.snapshotBytes;
        m = { perSec: r.itemsPerSec, perTxn: items / r.batches };
      }
      progress(`${tag} ${v}: ${fmtInt(m.perSec)} items/s`);
      return m;
    }),
  );
  const perSec = (v: Variant) => samples[v].map((m) => m.perSec);
  const bare = median(perSec(BARE));
  const rows: Table = [['variant', 'items/s (median)', 'min – max', 'items per txn', 'engine / bare']];
  for (const v of [BARE, BARE_GROUPED, ...Object.keys(ENGINE)] as Variant[]) {
    const s = perSec(v);
    const r = v === BARE ? '1.00' : v === BARE_GROUPED ? `${ratio(median(s), bare)} (a baseline)` : ratio(median(s), bare, AIM_RATIO);
    rows.push([v, fmtInt(median(s)), range(s), median(samples[v].map((m) => m.perTxn)).toFixed(1), r]);
  }
  return { rows, snapshotBytes };
}

async function memory(runs: number): Promise<Table> {
  progress(`memory: ${fmtInt(runs)} runs in a child process`);
  const m = await inTempDir(async (dir) => (await start<MemoryResult>('engine-memory.ts', [dir, runs], { nodeArgs: ['--expose-gc'], readyMs: 300_000 })).ready);
  const mb = (b: number) => `${(b / MB).toFixed(1)}`;
  const row = (name: string, key: 'heapUsed' | 'rss') => {
    const above = m.loaded[key] - m.baseline[key];
    const verdict = above / MB < AIM_MB ? `(meets < ${AIM_MB} MB)` : `(above ${AIM_MB} MB)`;
    return [name, `${mb(above)} MB ${verdict}`, `${(above / runs / 1024).toFixed(1)} KB`, `${mb(m.baseline[key])} → ${mb(m.loaded[key])} MB`];
  };
  return [
    ['measure', `${fmtInt(runs)} runs above baseline`, 'per run', 'baseline → loaded'],
    row('heapUsed', 'heapUsed'),
    row('RSS', 'rss'),
    ['time to start them', `${fmtInt(m.startMs)} ms`, `${(m.startMs / runs).toFixed(2)} ms`, 'one startRun after another'],
  ];
}

export const enginePart: BenchPart = {
  key: 'engine',
  title: 'Engine',
  source: 'bench/engine.ts',
  async run() {
    const items = size('ITEMS', 20_000, 300);
    const runs = size('RUNS', 1_000, 20);
    const t = await throughput(items);
    return report(
      `### Throughput: ${fmtInt(items)} no-op items through one stage`,
      { title: `Engine throughput (${fmtInt(items)} items)`, rows: t.rows },
      `The bare loop wrote a ${t.snapshotBytes}-byte snapshot per transaction (the engine's, halfway through the stage); ${REPS} rounds after a warm-up.`,
      `### Memory: ${fmtInt(runs)} concurrent runs in one process`,
      { title: `Engine memory (${fmtInt(runs)} runs)`, rows: await memory(runs) },
    );
  },
};
