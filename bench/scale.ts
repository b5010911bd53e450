// `npm run bench`, Postgres part: items/s and durable-append latency with 1 and 3 instances on
// one Postgres, against the same workload on SQLite, measured in the same run.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { startPostgres } from '../test/helpers/postgres.js';
import type { BenchPart, PartReport } from './part.js';
import { envInt, fmtInt, inTempDir, median } from './stats.js';
import { markdownTable, type Table } from './table.js';

const ROOT = join(import.meta.dirname, '..');
const REPETITIONS = 3;

interface InstanceResult {
  ms: number;
  items: number;
  writes: number;
  p50: number;
  p99: number;
}

/** Starts `n` instances on `target`, lets them go together, and collects their reports. */
async function instances(target: string, n: number, runsEach: number, items: number): Promise<InstanceResult[]> {
  const procs = Array.from({ length: n }, (_, k) =>
    spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'scale-instance.ts'), target, String(runsEach), String(items), `b${k}`], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'inherit'],
    }),
  );
  const lines = procs.map((p) => {
    const rl = createInterface({ input: p.stdout! });
    const queue: string[] = [];
    const waiters: ((l: string) => void)[] = [];
    rl.on('line', (l) => (waiters.shift() ?? ((x: string) => queue.push(x)))(l));
    return () => new Promise<string>((resolve) => (queue.length ? resolve(queue.shift()!) : waiters.push(resolve)));
  });
  await Promise.all(lines.map((next) => next()));
  for (const p of procs) p.stdin!.write('go\n');
  return Promise.all(lines.map(async (next) => JSON.parse(await next()) as InstanceResult));
}

function summarize(results: InstanceResult[]) {
  const items = results.reduce((n, r) => n + r.items, 0);
  return { itemsPerSec: (items / Math.max(...results.map((r) => r.ms))) * 1000, p50: median(results.map((r) => r.p50)), p99: Math.max(...results.map((r) => r.p99)) };
}

async function run(): Promise<PartReport> {
  const runs = envInt('BENCH_SCALE_RUNS', 12);
  const items = envInt('BENCH_SCALE_ITEMS', 500);
  const pg = await startPostgres();
  const rows: Record<string, { itemsPerSec: number[]; p50: number[]; p99: number[] }> = {};
  const add = (label: string, s: ReturnType<typeof summarize>) => {
    const r = (rows[label] ??= { itemsPerSec: [], p50: [], p99: [] });
    r.itemsPerSec.push(s.itemsPerSec);
    r.p50.push(s.p50);
    r.p99.push(s.p99);
  };
  try {
    for (let rep = 0; rep < REPETITIONS; rep++) {
      add('SQLite, 1 instance', summarize(await inTempDir((dir) => instances(dir, 1, runs, items))));
      for (const n of [1, 3]) {
        const db = await pg.createDatabase();
        try {
          // The same total work, split across the instances.
          add(`Postgres, ${n} instance${n > 1 ? 's' : ''}`, summarize(await instances(db.url, n, Math.ceil(runs / n), items)));
        } finally {
          await db.drop();
        }
      }
      process.stderr.write(`  postgres rep ${rep + 1}/${REPETITIONS}\n`);
    }
  } finally {
    await pg.stop();
  }
  const base = median(rows['SQLite, 1 instance']!.itemsPerSec);
  const table: Table = [['setup', 'items/s (median)', 'vs SQLite', 'append p50 ms', 'append p99 ms']];
  for (const [label, r] of Object.entries(rows)) {
    const ips = median(r.itemsPerSec);
    table.push([label, fmtInt(ips), (ips / base).toFixed(2), median(r.p50).toFixed(2), median(r.p99).toFixed(2)]);
  }
  const markdown = `### ${fmtInt(runs)} runs × ${fmtInt(items)} no-op items

${markdownTable(table)}

### Method

- Each instance is a process of its own (bench/scale-instance.ts) with an \`Engine\` on the
  store, a one-stage no-op pipeline at concurrency 4, and starts its share of ${fmtInt(runs)}
  runs when the bench says go (all instances at once); items/s is all items over the slowest
  instance's time from go to its last run retiring. Every run is then checked: seqs gap-free,
  every item in the ledger.
- **Append latency** is the time of each durable write (the journal's \`store.commit\`: events,
  snapshot, ledger rows, lease fence) as the engine reports it for \`runstate_event_append_seconds\`;
  p50 is the median of the instances' medians, p99 the worst instance's.
- Postgres is a throw-away server started from the machine's binaries (test/helpers/postgres.ts:
  fsync and synchronous_commit off, data in /dev/shm when there is room), on the same 2 cores
  as the instances; SQLite runs with WAL and \`synchronous=NORMAL\` on disk. So this compares
  the engine's work on each store, not durable disk throughput, and 3 instances compete with
  Postgres for the same 2 cores.
- ${REPETITIONS} repetitions, interleaved; medians.
`;
  return { tables: [{ title: 'Postgres and SQLite', rows: table }], markdown };
}

export const scalePart: BenchPart = { key: 'postgres', title: 'Postgres and scale-out', source: 'bench/scale.ts', run };
