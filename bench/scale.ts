// Postgres part. Method: 1 and 3 instances (bench/scale-instance.ts) share the runs of a no-op
// pipeline on one throw-away Postgres. Baseline: the same work on SQLite, one instance, in the
// same rounds. Figures: items/s and durable-append latency. Full method: docs/benchmarks.md.
import { startPostgres } from '../test/helpers/postgres.js';
import { start } from './harness/child.js';
import { loadNote, loadNow, ratio, report, type BenchPart, type Table } from './harness/report.js';
import { fmtInt, inTempDir, median, progress, REPS, size } from './harness/stats.js';

/** What an instance reports: its time and items, its durable writes' p50 and p99 and its event-loop delay p99 (ms). */
type InstanceResult = { ms: number; items: number; p50: number; p99: number; loopP99: number };

/** Starts `n` instances on `target`, says go to all at once, and sums up what they report. */
async function instances(target: string, n: number, runsEach: number, items: number) {
  const procs = await Promise.all(Array.from({ length: n }, (_, k) => start('scale-instance.ts', [target, runsEach, items, `b${k}`])));
  try {
    const results = await Promise.all(procs.map((p) => p.call<InstanceResult>('go', {}, 600_000)));
    const total = results.reduce((s, r) => s + r.items, 0);
    return { itemsPerSec: (total / Math.max(...results.map((r) => r.ms))) * 1000, p50: median(results.map((r) => r.p50)), p99: Math.max(...results.map((r) => r.p99)), loopP99: Math.max(...results.map((r) => r.loopP99)) };
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
  }
}

/** Issue 17's aims for one instance on Postgres, against SQLite in the same rounds. */
const ITEMS_AIM = 0.7;
const P99_AIM = 10;

export const scalePart: BenchPart = {
  key: 'postgres',
  title: 'Postgres and scale-out',
  source: 'bench/scale.ts',
  async run() {
    const runs = size('SCALE_RUNS', 12, 3);
    const items = size('SCALE_ITEMS', 500, 30);
    const load0 = loadNow();
    const pg = await startPostgres();
    const rows: Record<string, Awaited<ReturnType<typeof instances>>[]> = {};
    try {
      for (let rep = 0; rep < REPS; rep++) {
        (rows['SQLite, 1 instance'] ??= []).push(await inTempDir((dir) => instances(dir, 1, runs, items)));
        for (const n of [1, 3]) {
          const db = await pg.createDatabase();
          try {
            (rows[`Postgres, ${n} instance${n > 1 ? 's' : ''}`] ??= []).push(await instances(db.url, n, Math.ceil(runs / n), items));
          } finally {
            await db.drop();
          }
        }
        progress(`postgres rep ${rep + 1}/${REPS}`);
      }
    } finally {
      await pg.stop();
    }
    const sqlite = rows['SQLite, 1 instance']!;
    const base = median(sqlite.map((r) => r.itemsPerSec));
    const baseP99 = median(sqlite.map((r) => r.p99));
    const table: Table = [['setup', 'items/s (median)', 'vs SQLite', 'append p50 ms', 'append p99 ms', 'p99 vs SQLite', 'event-loop delay p99 ms']];
    for (const [label, r] of Object.entries(rows)) {
      const ips = median(r.map((x) => x.itemsPerSec));
      const p99 = median(r.map((x) => x.p99));
      const one = label === 'Postgres, 1 instance';
      table.push([
        label,
        fmtInt(ips),
        one ? ratio(ips, base, ITEMS_AIM) : ratio(ips, base),
        median(r.map((x) => x.p50)).toFixed(2),
        p99.toFixed(2),
        label.startsWith('SQLite') ? '1.0' : one ? `${(p99 / baseP99).toFixed(1)} ${p99 / baseP99 <= P99_AIM ? `(meets ≤ ${P99_AIM})` : `(above ${P99_AIM})`}` : (p99 / baseP99).toFixed(1),
        median(r.map((x) => x.loopP99)).toFixed(1),
      ]);
    }
    const note = `${REPS} rounds; append latency as the engine reports it for \`runstate_event_append_seconds\`; aims (issue 17) for Postgres, 1 instance: items/s ≥ ${ITEMS_AIM}× SQLite, append p99 ≤ ${P99_AIM}× SQLite's. ${loadNote(load0)}`;
    return report(`### ${fmtInt(runs)} runs × ${fmtInt(items)} no-op items`, { title: 'Postgres and SQLite', rows: table }, note);
  },
};
