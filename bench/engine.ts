import { measureBare } from './bare-loop.js';
import { measureEngine } from './engine-run.js';
import { measureMemory } from './memory.js';
import type { BenchPart, PartReport } from './part.js';
import { envInt, fmtInt, inTempDir, median } from './stats.js';
import { markdownTable, type Table } from './table.js';

const REPETITIONS = 3;
/** The aim: the engine within 2× of the bare durable loop. */
const AIM_RATIO = 0.5;
/** The aim: 1,000 runs under 100 MB above baseline. */
const AIM_MB = 100;
const MB = 1024 * 1024;

const VARIANTS = [
  { label: 'engine, concurrency 1', concurrency: 1, trace: false },
  { label: 'engine, concurrency 8', concurrency: 8, trace: false },
  { label: 'engine + trace, concurrency 1', concurrency: 1, trace: true },
  { label: 'engine + trace, concurrency 8', concurrency: 8, trace: true },
] as const;
const BARE = 'bare SQLite loop';
/** Group commit at about the engine's own batch size at concurrency 1, to show what batching alone buys. */
const BARE_GROUPED_TXN = 40;
const BARE_GROUPED = `bare SQLite loop, ${BARE_GROUPED_TXN} items per txn`;

interface Measured {
  itemsPerSec: number;
  itemsPerTxn: number;
}

function progress(message: string): void {
  process.stderr.write(`  ${message}\n`);
}

async function throughput(items: number): Promise<{ rows: Table; snapshotBytes: number }> {
  let snapshotBytes = 0;
  const variants: { label: string; measure: (dir: string) => Promise<Measured> }[] = [
    ...VARIANTS.map((v) => ({
      label: v.label,
      measure: async (dir: string) => {
        const r = await measureEngine(dir, { items, concurrency: v.concurrency, trace: v.trace });
        // The first plain run (the warm-up, which runs in list order) sizes the bare loop's snapshot.
        if (snapshotBytes === 0 && v === VARIANTS[0]) snapshotBytes = r.snapshotBytes;
        return { itemsPerSec: r.itemsPerSec, itemsPerTxn: items / r.batches };
      },
    })),
    { label: BARE, measure: async (dir: string) => ({ ...(await measureBare(dir, items, snapshotBytes)), itemsPerTxn: 1 }) },
    {
      label: BARE_GROUPED,
      measure: async (dir: string) => ({ ...(await measureBare(dir, items, snapshotBytes, BARE_GROUPED_TXN)), itemsPerTxn: BARE_GROUPED_TXN }),
    },
  ];
  const samples = new Map<string, Measured[]>(variants.map((v) => [v.label, []]));
  // Round 0 warms up. Every round runs every variant once, so a burst of load from whatever
  // else runs on the machine lands on the engine and on its baseline alike; the order rotates
  // so no variant always pays for what the one before it left behind (GC debt, dirty pages).
  for (let round = 0; round <= REPETITIONS; round++) {
    const tag = round === 0 ? 'warm-up' : `rep ${round}/${REPETITIONS}`;
    const shift = round % variants.length;
    for (const v of [...variants.slice(shift), ...variants.slice(0, shift)]) {
      const m = await inTempDir(v.measure);
      progress(`${tag} ${v.label}: ${fmtInt(m.itemsPerSec)} items/s`);
      if (round > 0) samples.get(v.label)!.push(m);
    }
  }

  const perSec = (label: string) => samples.get(label)!.map((m) => m.itemsPerSec);
  const bare = median(perSec(BARE));
  const rows: Table = [['variant', 'items/s (median)', 'min – max', 'items per txn', 'engine / bare']];
  for (const label of [BARE, BARE_GROUPED, ...VARIANTS.map((v) => v.label)]) {
    const s = perSec(label);
    const ratio = median(s) / bare;
    rows.push([
      label,
      fmtInt(median(s)),
      `${fmtInt(Math.min(...s))} – ${fmtInt(Math.max(...s))}`,
      median(samples.get(label)!.map((m) => m.itemsPerTxn)).toFixed(1),
      label === BARE ? '1.00' : label === BARE_GROUPED ? `${ratio.toFixed(2)} (a baseline)` : `${ratio.toFixed(2)} ${ratio >= AIM_RATIO ? '(meets ≥ 0.5)' : '(below 0.5)'}`,
    ]);
  }
  return { rows, snapshotBytes };
}

async function memory(runs: number): Promise<Table> {
  progress(`memory: ${fmtInt(runs)} runs in a child process`);
  const m = await inTempDir((dir) => measureMemory(dir, runs));
  const heap = m.loaded.heapUsed - m.baseline.heapUsed;
  const rss = m.loaded.rss - m.baseline.rss;
  const verdict = (bytes: number) => (bytes / MB < AIM_MB ? `(meets < ${AIM_MB} MB)` : `(above ${AIM_MB} MB)`);
  return [
    ['measure', `${fmtInt(runs)} runs above baseline`, 'per run', 'baseline → loaded'],
    ['heapUsed', `${(heap / MB).toFixed(1)} MB ${verdict(heap)}`, `${(heap / runs / 1024).toFixed(1)} KB`, `${(m.baseline.heapUsed / MB).toFixed(1)} → ${(m.loaded.heapUsed / MB).toFixed(1)} MB`],
    ['RSS', `${(rss / MB).toFixed(1)} MB ${verdict(rss)}`, `${(rss / runs / 1024).toFixed(1)} KB`, `${(m.baseline.rss / MB).toFixed(1)} → ${(m.loaded.rss / MB).toFixed(1)} MB`],
    ['time to start them', `${fmtInt(m.startMs)} ms`, `${(m.startMs / runs).toFixed(2)} ms`, 'one startRun after another'],
  ];
}

function method(items: number, runs: number, snapshotBytes: number): string {
  return `### Method

- **Engine throughput.** A pipeline defined in the bench: one stage of ${fmtInt(items)} items
  (\`BENCH_ITEMS\`) whose \`processItem\` resolves at once, so what is measured is the engine:
  run and stage actors, the journal, the durable ledger and event log, the snapshot written
  with every batch. Each measurement uses a fresh \`Engine\` on a fresh \`SqliteStore\` in a
  fresh temporary directory, and is timed from \`engine.startRun\` to \`engine.whenRetired\`
  (plus \`traces.flush()\` when the \`TraceWriter\` is attached through \`engine.onEvents\`), so
  creating the run, loading and storing the item list and every \`state_change\` and
  \`stage_*\` event are included. After each run the bench checks, and stops if not, that the
  run is \`completed\`, the ledger has ${fmtInt(items)} entries, seqs are 1…\`last_seq\` without a
  gap and, with traces, that \`run_trace.jsonl\` has one line per event in seq order.
- **Bare SQLite loop (the baseline).** The same schema (created by \`SqliteStore\`) and pragmas
  (WAL, \`synchronous = NORMAL\`), better-sqlite3 used directly: per item one transaction that
  inserts a ledger row, inserts a \`stage_item_processed\` event with the next seq and updates
  the run row's \`last_seq\` and snapshot with a ${snapshotBytes}-byte JSON snapshot (the size of
  the engine's snapshot halfway through the stage, measured in the warm-up run).
  The same loop with ${BARE_GROUPED_TXN} items per transaction (one run-row update per
  transaction) shows what group commit alone buys: the engine writes the items that finish in
  one event-loop turn in one transaction, so compare its cost per item with that row too.
- **Repetitions.** One warm-up round, then ${REPETITIONS} rounds; every round runs every variant once,
  interleaved, so background load falls on the engine and its baseline alike, in an order that
  rotates from round to round so no variant always follows the same one. Items/s is the
  median of the ${REPETITIONS}; \`engine / bare\` divides medians from the same run of the bench; the
  aim is ≥ ${AIM_RATIO} (the engine within 2× of the bare durable loop). \`items per txn\` is items
  divided by the durable batches the engine wrote: with concurrency above 1, items that finish
  in the same tick share one transaction, which is why the engine can beat the bare loop.
- **Memory per run actor.** A child process (\`node --expose-gc --import tsx
  bench/memory-child.ts\`) hosts a pipeline of 3 stages × 100 items at concurrency 2 whose
  items never finish until aborted. It starts and cancels 10 warm-up runs, takes the baseline
  (\`heapUsed\`, RSS) after \`gc()\`, starts ${fmtInt(runs)} runs (\`BENCH_RUNS\`) one after another,
  waits until all ${fmtInt(runs * 2)} first items are in flight, runs \`gc()\` again and measures;
  then stops the engine. The aim is under ${AIM_MB} MB above baseline for 1,000 runs.
- The machine may be shared with other work: absolute numbers are noisy; ratios against the
  baseline of the same run are the figures to compare.`;
}

async function run(): Promise<PartReport> {
  const items = envInt('BENCH_ITEMS', 20_000);
  const runs = envInt('BENCH_RUNS', 1_000);
  const t = await throughput(items);
  const mem = await memory(runs);
  const markdown = [
    `### Throughput: ${fmtInt(items)} no-op items through one stage`,
    markdownTable(t.rows),
    `### Memory: ${fmtInt(runs)} concurrent runs in one process`,
    markdownTable(mem),
    method(items, runs, t.snapshotBytes),
  ].join('\n\n');
  return {
    tables: [
      { title: `Engine throughput (${fmtInt(items)} items)`, rows: t.rows },
      { title: `Engine memory (${fmtInt(runs)} runs)`, rows: mem },
    ],
    markdown,
  };
}

export const enginePart: BenchPart = { key: 'engine', title: 'Engine', source: 'bench/engine.ts', run };
