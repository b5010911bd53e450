// Postgres part: 1 and 3 instances (bench/scale-instance.ts) share the runs of a no-op pipeline on
// one throw-away Postgres, against the same work on SQLite, one instance, in the same rounds.
import { startPostgres } from '../test/helpers/postgres.js';
import { withChildren } from './harness/child.js';
import { ratio, report, table, under, type BenchPart, type Column, type PartReport } from './harness/report.js';
import { fmtInt, median, REPS, rounds, size } from './harness/stats.js';

/** Issue 17's aims for one instance on Postgres, against SQLite in the same rounds. */
const ITEMS_AIM = 0.7;
const P99_AIM = 10;
const SQLITE = 'SQLite, 1 instance';
const PG_ONE = 'Postgres, 1 instance';

/** What an instance reports: its time and items, its durable writes' p50 and p99 and its event-loop delay p99 (ms). */
type InstanceResult = { ms: number; items: number; p50: number; p99: number; loopP99: number };

/** Starts `n` instances on `target`, says go to all at once, and sums up what they report. */
function instances(target: string, n: number, runsEach: number, items: number) {
  return withChildren(async (start) => {
    const procs = await Promise.all(Array.from({ length: n }, (_, k) => start('scale-instance.ts', [target, runsEach, items, `b${k}`])));
    const results = await Promise.all(procs.map((p) => p.call<InstanceResult>('go', {}, 600_000)));
    const total = results.reduce((s, r) => s + r.items, 0);
    const worst = (of: (r: InstanceResult) => number) => Math.max(...results.map(of));
    return { perSec: (total / worst((r) => r.ms)) * 1000, p50: median(results.map((r) => r.p50)), p99: worst((r) => r.p99), loopP99: worst((r) => r.loopP99) };
  });
}
type Sample = Awaited<ReturnType<typeof instances>>;

async function run(): Promise<PartReport> {
  const runs = size('SCALE_RUNS', 12, 3);
  const items = size('SCALE_ITEMS', 500, 30);
  const pg = await startPostgres();
  const onPostgres = (n: number) => async () => {
    const db = await pg.createDatabase();
    return instances(db.url, n, Math.ceil(runs / n), items).finally(() => db.drop());
  };
  const variants = { [SQLITE]: (dir: string) => instances(dir, 1, runs, items), [PG_ONE]: onPostgres(1), 'Postgres, 3 instances': onPostgres(3) };
  const samples: Record<string, Sample[]> = await rounds(variants).finally(() => pg.stop());
  const med = (label: string, of: (s: Sample) => number) => median(samples[label]!.map(of));
  const p99Ratio = (label: string) => med(label, (s) => s.p99) / med(SQLITE, (s) => s.p99);
  const columns: Column<string>[] = [
    ['setup', (v) => v],
    ['items/s (median)', (v) => fmtInt(med(v, (s) => s.perSec))],
    ['vs SQLite', (v) => ratio(med(v, (s) => s.perSec), med(SQLITE, (s) => s.perSec), v === PG_ONE ? ITEMS_AIM : undefined)],
    ['append p50 ms', (v) => med(v, (s) => s.p50).toFixed(2)],
    ['append p99 ms', (v) => med(v, (s) => s.p99).toFixed(2)],
    ['p99 vs SQLite', (v) => (v === PG_ONE ? `${p99Ratio(v).toFixed(1)} (${under(p99Ratio(v), P99_AIM, { inclusive: true })})` : p99Ratio(v).toFixed(1))],
    ['event-loop delay p99 ms', (v) => med(v, (s) => s.loopP99).toFixed(1)],
  ];
  const note = `${REPS} rounds after a warm-up; append latency as the engine reports it for \`runstate_event_append_seconds\`; aims (issue 17) for Postgres, 1 instance: items/s ≥ ${ITEMS_AIM}× SQLite, append p99 ≤ ${P99_AIM}× SQLite's.`;
  return report(`### ${fmtInt(runs)} runs × ${fmtInt(items)} no-op items`, { title: 'Postgres and SQLite', rows: table(columns, Object.keys(samples)) }, note);
}

export const scalePart: BenchPart = { key: 'postgres', title: 'Postgres and scale-out', source: 'bench/scale.ts', run };
