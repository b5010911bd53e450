// Engine part: one run of no-op items through a fresh engine and store (measureEngine), against
// a bare better-sqlite3 loop of the same durable writes per item (and per 40), in the same rounds.
import { rateTable, ratio, report, type BenchPart, type PartReport } from './harness/report.js';
import { bareLoop, measureEngine } from './harness/service.js';
import { fmtInt, median, REPS, rounds, size } from './harness/stats.js';

/** The aim: the engine within 2× of the bare durable loop. */
const AIM = 0.5;
/** Group commit at about the engine's own batch size at concurrency 1: what batching alone buys. */
const GROUPED = 40;
const BARE = 'bare SQLite loop';
const BARE_GROUPED = `bare SQLite loop, ${GROUPED} items per txn`;

async function run(): Promise<PartReport> {
  const items = size('ITEMS', 20_000, 300);
  // The bare loop writes a snapshot of the engine's size, measured in the warm-up round.
  let snapshotBytes = 0;
  const engine = (concurrency: number, trace: boolean) => async (dir: string) => {
    const r = await measureEngine(dir, { items, concurrency, trace });
    snapshotBytes ||= r.snapshotBytes;
    return r;
  };
  const bare = (perTxn: number) => async (dir: string) => ({ perSec: await bareLoop(dir, items, { perTxn, snapshotBytes }), batches: items / perTxn });
  const samples = await rounds({
    [BARE]: bare(1),
    [BARE_GROUPED]: bare(GROUPED),
    'engine, concurrency 1': engine(1, false),
    'engine, concurrency 8': engine(8, false),
    'engine + trace, concurrency 1': engine(1, true),
    'engine + trace, concurrency 8': engine(8, true),
  });
  const rows = rateTable(
    samples,
    ['variant', 'items/s'],
    (med) => [
      ['items per txn', (v) => median(samples[v]!.map((s) => items / s.batches)).toFixed(1)],
      ['engine / bare', (v) => (v === BARE ? '1.00' : v === BARE_GROUPED ? `${ratio(med(v), med(BARE))} (a baseline)` : ratio(med(v), med(BARE), AIM))],
    ],
  );
  return report(
    `### Throughput: ${fmtInt(items)} no-op items through one stage`,
    { title: `Engine throughput (${fmtInt(items)} items)`, rows },
    `The bare loop wrote a ${snapshotBytes}-byte snapshot per transaction (the engine's, halfway through the stage); ${REPS} rounds after a warm-up.`,
    'Memory per run is measured in the service part (10,000 runs at once in `runstate serve`).',
  );
}

export const enginePart: BenchPart = { key: 'engine', title: 'Engine', source: 'bench/engine.ts', run };
