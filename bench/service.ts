// Service part (`BENCH_PARTS=service`): the service as users run it. Method: `runstate serve`
// (npm start's own entry, bin/runstate.mjs) in a child process on a fresh data dir, traces,
// metrics and the hub on, JSON logs at info; runs of the demo `face_processor` (`delay_ms: 0`,
// all items in stage 1) started over HTTP; items/s from the trace's own timestamps. Baseline:
// a bare better-sqlite3 loop doing the durable per-item writes, in the same rounds. The same
// service on one throw-away Postgres beside it. Full method: docs/benchmarks.md.
import Database from 'better-sqlite3';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startPostgres, type TestDatabase } from '../test/helpers/postgres.js';
import { ratio, sections, type BenchPart, type Table } from './harness/report.js';
import { createBenchRun, SqliteStore } from './harness/service.js';
import { fmtInt, inTempDir, interleaved, median, progress, QUICK, size, spread } from './harness/stats.js';
import { api, appendBuckets, startInstance, stopInstance, type Instance } from './service-instance.js';
import { measureMemory } from './service-memory.js';
import { summarizeProfile } from './service-profile.js';

/** The issue's aims: the service ≥ 0.5× the bare loop; Postgres ≥ 0.7× SQLite, its append p99 ≤ 10× SQLite's. */
const AIM_BARE = 0.5;
const AIM_PG = 0.7;
const AIM_P99 = 10;
/** 10,000 runs at once: under 500 MB of RSS above baseline, and GET /runs/:id p99 under 50 ms meanwhile. */
const AIM_MEMORY_MB = 500;
const AIM_GET_MS = 50;
const MB = 1024 * 1024;
const CONCURRENCIES = [1, 16] as const;
const STAGES = 5;
const BARE = 'bare SQLite loop';

/** What a variant's runs added to the histogram, summed. */
function addBuckets(into: Map<number, number>, after: Map<number, number>, before: Map<number, number>): void {
  for (const [le, n] of after) into.set(le, (into.get(le) ?? 0) + n - (before.get(le) ?? 0));
}

/** The q-quantile in ms, interpolated within its bucket as Prometheus' histogram_quantile does; Infinity past the last bound. */
export function bucketQuantile(buckets: ReadonlyMap<number, number>, q: number): number {
  const bounds = [...buckets.keys()].sort((a, b) => a - b);
  const total = buckets.get(Infinity) ?? 0;
  if (total === 0) return NaN;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const le of bounds) {
    const n = buckets.get(le)!;
    if (n >= rank) return le === Infinity ? Infinity : (lower + ((le - lower) * (rank - below)) / Math.max(1, n - below)) * 1000;
    lower = le;
    below = n;
  }
  return Infinity;
}

interface RunSample {
  itemsPerSec: number;
  /** Durable batches the run took (appends counted by /metrics). */
  batches: number;
}

/** Starts one run over HTTP, waits for it to complete, and times its stage 1 from its trace. */
async function measureRun(inst: Instance, items: number, concurrency: number, into: Map<number, number>): Promise<RunSample> {
  const before = await appendBuckets(inst);
  const options = { seed: 1, delay_ms: 0, items_per_stage: [items, ...Array(STAGES - 1).fill(0)], concurrency };
  const { data: { run_id: runId } } = await api<{ data: { run_id: string } }>(inst, 'POST', '/runs', { site_id: 'bench', pipeline: 'face_processor', trigger: `bench-${inst.runs++}`, options });
  // The run's view may say completed a moment before its last batch is durable: wait for the trace to end with it.
  const deadline = Date.now() + 600_000;
  let trace: Record<string, unknown>[] = [];
  for (;;) {
    const { data: run } = await api<{ data: { status: string } }>(inst, 'GET', `/runs/${runId}`);
    if (run.status !== 'running' && run.status !== 'completed') throw new Error(`bench: run ${runId} is ${run.status}`);
    if (run.status === 'completed') {
      trace = (await api<string>(inst, 'GET', `/runs/${runId}/trace`)).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      const last = trace.at(-1) as { machine_name?: string; payload?: { to_state?: string } } | undefined;
      if (last?.machine_name === 'run' && last.payload?.to_state === 'completed') break;
    }
    if (Date.now() > deadline) throw new Error(`bench: run ${runId} not completed after 10 min`);
    await sleep(100);
  }
  const after = await appendBuckets(inst);
  addBuckets(into, after, before);
  // The trace must be whole, or its speed means nothing: seqs 1…n, every item processed once.
  trace.forEach((e, i) => {
    if (e.seq !== i + 1) throw new Error(`bench: run ${runId}: trace line ${i + 1} has seq ${String(e.seq)}`);
  });
  const processed = trace.filter((e) => e.event === 'stage_item_processed' && e.stage === 1).length;
  if (processed !== items) throw new Error(`bench: run ${runId}: ${processed} items processed in stage 1, expected ${items}; trace ${trace.length} events, last ${JSON.stringify(trace.at(-1))}`);
  const at = (event: string) => Date.parse(String(trace.find((e) => e.event === event && e.stage === 1)?.timestamp));
  const ms = Math.max(1, at('stage_complete') - at('stage_start'));
  return { itemsPerSec: (items / ms) * 1000, batches: (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0) };
}

/** The floor: per item one transaction inserting a ledger row and a `stage_item_processed` event (WAL, synchronous=NORMAL). */
async function bareLoop(dir: string, items: number): Promise<number> {
  const filename = join(dir, 'runstate.db');
  const runId = 'run_20250101_000000_bench';
  const store = new SqliteStore({ filename });
  await createBenchRun(store, runId, 'face_processor');
  await store.close();
  const db = new Database(filename);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    const ledger = db.prepare(`INSERT INTO ledger (run_id, stage, item_id, item, status, attempts, cost, error) VALUES (?, 1, ?, ?, 'done', 1, 0, NULL)`);
    const event = db.prepare('INSERT INTO events (run_id, seq, body, event_key) VALUES (?, ?, ?, NULL)');
    const step = db.transaction((i: number) => {
      ledger.run(runId, String(i), JSON.stringify(i));
      const body = { event: 'stage_item_processed', run_id: runId, seq: i, stage: 1, processed: i, total: items, item: { id: i, title: `Image ${i}: aurora` }, timestamp: new Date().toISOString() };
      event.run(runId, i, JSON.stringify(body));
    });
    const t0 = performance.now();
    for (let i = 1; i <= items; i++) step(i);
    const ms = performance.now() - t0;
    const count = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM ledger').get()!.n;
    if (count !== items) throw new Error(`bench: the bare loop wrote ${count} ledger rows, expected ${items}`);
    return (items / ms) * 1000;
  } finally {
    db.close();
  }
}

type Store = 'SQLite' | 'Postgres';
const variantName = (store: Store, c: number) => `service on ${store}, concurrency ${c}`;

export const servicePart: BenchPart = {
  key: 'service',
  title: 'The service as users run it',
  source: 'bench/service.ts',
  async run() {
    const items = size('SERVICE_ITEMS', 20_000, 300);
    const reps = size('SERVICE_REPS', QUICK ? 1 : 2, 1);
    const loadBefore = loadavg()[0]!;
    const profile = process.env.BENCH_SERVICE_PROFILE === '1';
    const profileConcurrency = size('SERVICE_PROFILE_CONCURRENCY', 16, 16);
    const pg = await startPostgres();
    let db: TestDatabase | undefined;
    const insts: Partial<Record<Store, Instance>> = {};
    const profileDir = profile ? mkdtempSync(join(tmpdir(), 'runstate-bench-prof-')) : undefined;
    const buckets = new Map<string, Map<number, number>>();
    const variants = [BARE, ...(['SQLite', 'Postgres'] as const).flatMap((s) => CONCURRENCIES.map((c) => variantName(s, c)))];
    let samples: Record<string, RunSample[]>;
    try {
      db = await pg.createDatabase();
      insts.SQLite = await startInstance('sqlite', {});
      insts.Postgres = await startInstance('pg', { DATABASE_URL: db.url });
      samples = await interleaved(variants, reps, async (v, tag) => {
        let s: RunSample;
        if (v === BARE) s = { itemsPerSec: await inTempDir((dir) => bareLoop(dir, items)), batches: items };
        else {
          const store: Store = v.includes('Postgres') ? 'Postgres' : 'SQLite';
          const c = Number(v.split('concurrency ')[1]);
          const into = tag === 'warm-up' ? new Map<number, number>() : (buckets.get(v) ?? buckets.set(v, new Map()).get(v)!);
          s = await measureRun(insts[store]!, items, c, into);
        }
        progress(`${tag} ${v}: ${fmtInt(s.itemsPerSec)} items/s`);
        return s;
      });
      if (profileDir) {
        // A run of its own, profiled: --cpu-prof costs time, so it is never one of the measured runs.
        const inst = await startInstance('prof', {}, profileDir);
        try {
          await measureRun(inst, items, profileConcurrency, new Map());
        } finally {
          await stopInstance(inst);
        }
      }
    } finally {
      for (const inst of Object.values(insts)) await stopInstance(inst).catch(() => undefined);
      await db?.drop().catch(() => undefined);
      await pg.stop();
    }
    const med = (v: string) => median(samples[v]!.map((s) => s.itemsPerSec));
    const bare = med(BARE);
    const p99 = (v: string) => bucketQuantile(buckets.get(v)!, 0.99);
    const ms = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '> 250');
    const rows: Table = [['variant', 'items/s (median)', 'min – max', 'items per txn', 'vs bare loop', 'vs SQLite', 'append p99 ms', 'p99 vs SQLite']];
    for (const v of variants) {
      const s = samples[v]!;
      const perSec = s.map((x) => x.itemsPerSec);
      if (v === BARE) {
        rows.push([v, ...spread(perSec), '1.0', '1.00', '—', '—', '—']);
        continue;
      }
      const c = Number(v.split('concurrency ')[1]);
      const sqlite = variantName('SQLite', c);
      const onPg = v !== sqlite;
      const perTxn = median(s.map((x) => items / Math.max(1, x.batches)));
      const p99Ratio = p99(v) / p99(sqlite);
      rows.push([
        v,
        ...spread(perSec),
        perTxn.toFixed(1),
        ratio(med(v), bare, AIM_BARE),
        onPg ? ratio(med(v), med(sqlite), AIM_PG) : '—',
        ms(p99(v)),
        onPg ? `${Number.isFinite(p99Ratio) ? p99Ratio.toFixed(1) : '—'} ${p99Ratio <= AIM_P99 ? `(meets ≤ ${AIM_P99})` : `(above ${AIM_P99})`}` : '—',
      ]);
    }
    const runs = size('SERVICE_RUNS', 10_000, 30);
    const mem = await measureMemory(runs);
    const above = (mem.loadedRss - mem.baselineRss) / MB;
    const memRows: Table = [
      ['measure', `${fmtInt(runs)} runs`, 'aim', 'detail'],
      ['RSS above baseline', `${above.toFixed(0)} MB`, above < AIM_MEMORY_MB ? `meets < ${AIM_MEMORY_MB} MB` : `above ${AIM_MEMORY_MB} MB`, `${(mem.baselineRss / MB).toFixed(0)} → ${(mem.loadedRss / MB).toFixed(0)} MB, ${((above * 1024) / runs).toFixed(1)} KB per run`],
      ['GET /runs/:id p99', `${mem.getP99.toFixed(1)} ms`, mem.getP99 < AIM_GET_MS ? `meets < ${AIM_GET_MS} ms` : `above ${AIM_GET_MS} ms`, `p50 ${mem.getP50.toFixed(1)} ms; ${fmtInt(mem.running)} of ${fmtInt(runs)} answered running`],
      ['time to start them over HTTP', `${fmtInt(mem.startMs)} ms`, '—', `${((mem.startMs / runs) * 8).toFixed(1)} ms per POST, 8 at a time`],
    ];
    const top = profileDir ? summarizeProfile(join(profileDir, readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile'))!), 25) : undefined;
    if (profileDir) rmSync(profileDir, { recursive: true, force: true });
    const profileRows: Table | undefined = top && [['function (self time)', 'share', 'where'], ...top.map((t) => [t.name, `${(t.share * 100).toFixed(1)}%`, t.where])];
    return {
      tables: [{ title: `The service, ${fmtInt(items)} items over HTTP`, rows }, { title: `${fmtInt(runs)} runs at once in one service`, rows: memRows }, ...(profileRows ? [{ title: `Profile of a concurrency-${profileConcurrency} run (self time)`, rows: profileRows }] : [])],
      markdown: sections(
        `### ${fmtInt(items)} items of \`face_processor\` (\`delay_ms: 0\`) through \`runstate serve\`, started over HTTP`,
        rows,
        `Load average (1 min) ${loadBefore.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end (2 cores). ${reps} rounds after a warm-up; items/s from stage 1's \`stage_start\` to its \`stage_complete\` in the run's own trace; append p99 from \`runstate_event_append_seconds\` (interpolated within its buckets) over the measured runs.`,
        `### ${fmtInt(runs)} runs working at once in one \`runstate serve\` (SQLite)`,
        memRows,
        ...(profileRows ? [`### Where a concurrency-${profileConcurrency} run on SQLite spends its time (\`node --cpu-prof\`, self time)`, profileRows] : []),
      ),
    };
  },
};
