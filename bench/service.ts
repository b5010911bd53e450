// Service part: `runstate serve` in a child process, on SQLite and on a throw-away Postgres, runs of the demo
// `face_processor` started over HTTP against the bare loop; and 10,000 runs working at once in one service.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { startPostgres } from '../test/helpers/postgres.js';
import { api, launch, read, startRun, trace as readTrace, type Served, type TraceLine } from './harness/serve.js';
import { bareLoop, checkSeqs } from './harness/service.js';
import { rateTable, ratio, report, under, type BenchPart, type PartReport, type Table } from './harness/report.js';
import { fmtInt, Histogram, median, pool, progress, QUICK, rounds, size, tempDir, until } from './harness/stats.js';

/** The aims: the service ≥ 0.5× the bare loop; Postgres ≥ 0.7× SQLite, its append p99 ≤ 10× SQLite's. */
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

/** The q-quantile in ms, interpolated within its bucket as Prometheus' histogram_quantile does; Infinity past the last bound. */
function bucketQuantile(buckets: ReadonlyMap<number, number>, q: number): number {
  const total = buckets.get(Infinity) ?? 0;
  if (total === 0) return NaN;
  const rank = q * total;
  let [lower, below] = [0, 0];
  for (const le of [...buckets.keys()].sort((a, b) => a - b)) {
    const n = buckets.get(le)!;
    if (n >= rank) return le === Infinity ? Infinity : (lower + ((le - lower) * (rank - below)) / Math.max(1, n - below)) * 1000;
    [lower, below] = [le, n];
  }
  return Infinity;
}

/** `runstate_event_append_seconds` as cumulative bucket counts (upper bound in seconds → count). */
async function appendBuckets(svc: Served): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const m of (await read(svc, 'GET', '/metrics')).matchAll(/^runstate_event_append_seconds_bucket\{le="([^"]+)"\} (\d+)/gm)) out.set(m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2]));
  if (out.size === 0) throw new Error('bench: /metrics has no runstate_event_append_seconds');
  return out;
}

/** A run's rate, and its appends by bucket (their count under Infinity: its durable batches). */
type RunSample = { perSec: number; appends: Map<number, number> };

/** Runs started so far: each gets its own trigger, so ids never collide. */
let triggers = 0;

/** Starts one run over HTTP, waits for it to complete, and times its stage 1 from its trace. */
async function measureRun(inst: Served, items: number, concurrency: number): Promise<RunSample> {
  const before = await appendBuckets(inst);
  const options = { seed: 1, delay_ms: 0, items_per_stage: [items, ...Array(STAGES - 1).fill(0)], concurrency };
  const runId = await startRun(inst, 'face_processor', { trigger: `bench-${triggers++}`, options });
  // The run's view may say completed a moment before its last batch is durable: wait for the trace to end with it.
  let trace: TraceLine[] = [];
  const traced = async () => {
    const { status } = await api<{ status: string }>(inst, `/runs/${runId}`);
    if (status !== 'running' && status !== 'completed') throw new Error(`bench: run ${runId} is ${status}`);
    if (status === 'running') return false;
    const last = (trace = await readTrace(inst, runId)).at(-1);
    return last?.machine_name === 'run' && last.payload?.to_state === 'completed';
  };
  await until(traced, 600_000, `run ${runId} not completed after 10 min`, 100);
  const appends = new Map([...(await appendBuckets(inst))].map(([le, n]) => [le, n - (before.get(le) ?? 0)]));
  checkSeqs(trace.map((e) => e.seq), `run ${runId}'s trace`, trace.length);
  const processed = trace.filter((e) => e.event === 'stage_item_processed' && e.stage === 1).length;
  if (processed !== items) throw new Error(`bench: run ${runId}: ${processed} items processed in stage 1, expected ${items}; trace ${trace.length} events, last ${JSON.stringify(trace.at(-1))}`);
  const at = (event: string) => Date.parse(String(trace.find((e) => e.event === event && e.stage === 1)?.timestamp));
  return { perSec: (items / Math.max(1, at('stage_complete') - at('stage_start'))) * 1000, appends };
}

/** One more run, never a measured one, in a service started with --cpu-prof; the profile is left in the directory returned, for DevTools. */
async function profileRun(items: number, concurrency: number): Promise<string> {
  const dir = tempDir('profile');
  const inst = await launch('prof', {}, { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`] });
  await measureRun(inst, items, concurrency).finally(() => inst.stop());
  return dir;
}

/** The bare loop, then the service on each store at each concurrency, interleaved. */
async function throughput(items: number, reps: number) {
  const pg = await startPostgres();
  const insts: Served[] = [];
  try {
    const db = await pg.createDatabase();
    const variants: Record<string, (dir: string) => Promise<RunSample>> = {
      [BARE]: async (dir) => ({ perSec: await bareLoop(dir, items, { pipeline: 'face_processor', title: (i) => `Image ${i}: aurora` }), appends: new Map([[Infinity, items]]) }),
    };
    for (const [store, env] of [['SQLite', {}], ['Postgres', { DATABASE_URL: db.url }]] as const) {
      const inst = await launch(store.toLowerCase(), env);
      insts.push(inst);
      for (const c of CONCURRENCIES) variants[`service on ${store}, concurrency ${c}`] = () => measureRun(inst, items, c);
    }
    return await rounds(variants, { reps });
  } finally {
    for (const inst of insts) await inst.stop().catch(() => undefined);
    // It drops the database as well.
    await pg.stop();
  }
}

/** 8 requests in flight at once from the bench, for starting and for reading. */
const inParallel = <T>(n: number, work: (i: number) => Promise<T>) => pool(n, 8, work);
const OPTIONS = { seed: 1, delay_ms: 30_000, items_per_stage: 100, concurrency: 1 };

/** The process's resident set size in bytes, as the kernel counts it. */
function rssOf(svc: Served): number {
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${svc.child.pid}/status`, 'utf8'))?.[1];
  if (kb === undefined) throw new Error('bench: no VmRSS in /proc/<pid>/status');
  return Number(kb) * 1024;
}

/** `runs` runs of face_processor working at once (an item of 30 s in flight each): the RSS before and with them working, the time to start them, GET /runs/:id of each meanwhile, and how many it found running (all should be). */
async function measureMemory(runs: number) {
  const inst = await launch('memory');
  try {
    const start = (i: number) => startRun(inst, 'face_processor', { trigger: `mem-${i}`, options: OPTIONS });
    // Warm-up: every path the measured runs take is compiled and the pools are grown before the baseline.
    const warm = await inParallel(20, start);
    await inParallel(warm.length, (i) => api(inst, `/runs/${warm[i]}/cancel`, {}));
    await sleep(2000);
    const baselineRss = rssOf(inst);
    const t0 = performance.now();
    const ids = await inParallel(runs, (i) => start(i + warm.length));
    const startMs = performance.now() - t0;
    progress(`memory: ${runs} runs started in ${Math.round(startMs)} ms`);
    const hist = new Histogram();
    let running = 0;
    await inParallel(ids.length, async (k) => {
      const t = performance.now();
      const { status } = await api<{ status: string }>(inst, `/runs/${ids[k]}`);
      hist.record(performance.now() - t);
      if (status === 'running') running += 1;
    });
    const loadedRss = rssOf(inst);
    return { runs, baselineRss, loadedRss, startMs, getP50: hist.quantile(0.5), getP99: hist.quantile(0.99), running };
  } finally {
    // Stopping 10,000 runs may take longer than the shutdown timeout: it exits anyway, and the dir goes.
    await inst.stop();
  }
}

async function run(): Promise<PartReport> {
  const items = size('SERVICE_ITEMS', 20_000, 300);
  const reps = size('SERVICE_REPS', QUICK ? 1 : 2, 1);
  const samples = await throughput(items, reps);
  if (process.env.BENCH_SERVICE_PROFILE === '1') progress(`service: a CPU profile of a concurrency-16 run in ${await profileRun(items, 16)}`);

  const p99 = (v: string) => {
    const sum = new Map<number, number>();
    for (const [le, n] of samples[v]!.flatMap((s) => [...s.appends])) sum.set(le, (sum.get(le) ?? 0) + n);
    return bucketQuantile(sum, 0.99);
  };
  /** The cell of a Postgres variant against its twin on SQLite; — for the others. */
  const vsSqlite = (of: (v: string, sqlite: string) => string) => (v: string) => (v.includes('Postgres') ? of(v, v.replace('Postgres', 'SQLite')) : '—');
  const rows = rateTable(samples, ['variant', 'items/s'], (med) => [
    ['items per txn', (v) => median(samples[v]!.map((s) => items / Math.max(1, s.appends.get(Infinity) ?? 0))).toFixed(1)],
    ['vs bare loop', (v) => (v === BARE ? '1.00' : ratio(med(v), med(BARE), AIM_BARE))],
    ['vs SQLite', vsSqlite((v, sqlite) => ratio(med(v), med(sqlite), AIM_PG))],
    ['append p99 ms', (v) => (v === BARE ? '—' : Number.isFinite(p99(v)) ? p99(v).toFixed(1) : '> 250')],
    ['p99 vs SQLite', vsSqlite((v, sqlite) => {
      const r = p99(v) / p99(sqlite);
      return `${Number.isFinite(r) ? r.toFixed(1) : '—'} (${under(r, AIM_P99, { inclusive: true })})`;
    })],
  ]);

  const runs = size('SERVICE_RUNS', 10_000, 30);
  const mem = await measureMemory(runs);
  const above = (mem.loadedRss - mem.baselineRss) / MB;
  const memRows: Table = [
    ['measure', `${fmtInt(runs)} runs`, 'aim', 'detail'],
    ['RSS above baseline', `${above.toFixed(0)} MB`, under(above, AIM_MEMORY_MB, { unit: ' MB' }), `${(mem.baselineRss / MB).toFixed(0)} → ${(mem.loadedRss / MB).toFixed(0)} MB, ${((above * 1024) / runs).toFixed(1)} KB per run`],
    ['GET /runs/:id p99', `${mem.getP99.toFixed(1)} ms`, under(mem.getP99, AIM_GET_MS, { unit: ' ms' }), `p50 ${mem.getP50.toFixed(1)} ms; ${fmtInt(mem.running)} of ${fmtInt(runs)} answered running`],
    ['time to start them over HTTP', `${fmtInt(mem.startMs)} ms`, '—', `${((mem.startMs / runs) * 8).toFixed(1)} ms per POST, 8 at a time`],
  ];
  return report(
    `### ${fmtInt(items)} items of \`face_processor\` (\`delay_ms: 0\`) through \`runstate serve\`, started over HTTP`,
    { title: `The service, ${fmtInt(items)} items over HTTP`, rows },
    `${reps} rounds after a warm-up; items/s from stage 1's \`stage_start\` to its \`stage_complete\` in the run's own trace; append p99 from \`runstate_event_append_seconds\` (interpolated within its buckets) over the measured runs.`,
    `### ${fmtInt(runs)} runs working at once in one \`runstate serve\` (SQLite)`,
    { title: `${fmtInt(runs)} runs at once in one service`, rows: memRows },
  );
}

export const servicePart: BenchPart = { key: 'service', title: 'The service as users run it', source: 'bench/service.ts', run };
