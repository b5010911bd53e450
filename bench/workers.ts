// Workers part: 4 Python workers (bench/py_noop_worker.py, no-op handlers) on one run against the same
// items in-process, in one service in this process: items/s, its CPU per item, claim-to-record latency.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { report, type BenchPart, type PartReport, type Table } from './harness/report.js';
import { BENCH_TOKEN, noopPipeline, OWNER, startService, type SqliteStore } from './harness/service.js';
import { fmtInt, inTempDir, percentile, size, timed } from './harness/stats.js';

const WORKERS = 4;
const CONCURRENCY = 64;
/** The aims of issue 13: 2,000 items/s through 4 workers, and ≥ 0.25× the in-process rate. */
const AIM_RATE = 2000;
const AIM_RATIO = 0.25;

/** A Python worker on `url`, once it says it is ready. */
async function pythonWorker(url: string, i: number): Promise<ChildProcess> {
  const env = { ...process.env, RUNSTATE_URL: url, RUNSTATE_TOKEN: BENCH_TOKEN, WORKER_ID: `bench-${i + 1}` };
  const child = spawn('python3', [join(import.meta.dirname, 'py_noop_worker.py')], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
  return child;
}

async function measure(dir: string, items: number) {
  const inProcessPipeline = noopPipeline(items, CONCURRENCY, { name: 'bench_in_process' });
  const workersPipeline = noopPipeline(items, CONCURRENCY, { name: 'bench_workers', stage: { queue: 'bench', loadsInProcess: true } });
  const svc = await startService(dir, [inProcessPipeline, workersPipeline]);
  const children: ChildProcess[] = [];
  const timeRun = async (pipeline: string) => {
    const { result: runId, ms, cpuMs } = await timed(async () => {
      const run = await svc.engine.startRun({ ...OWNER, pipeline });
      await svc.engine.whenRetired(run.run_id);
      return run.run_id;
    });
    return { runId, perSec: (items / ms) * 1000, cpuPerItemUs: (cpuMs * 1000) / items };
  };
  try {
    const inProcess = await timeRun(inProcessPipeline.name);
    for (let i = 0; i < WORKERS; i++) children.push(await pythonWorker(svc.url, i));
    const remote = await timeRun(workersPipeline.name);
    // Claim to record: the job's claim time against the time its item's event was recorded.
    const claims = (svc.store as SqliteStore).connection.prepare<[string], { item_id: string; claimed_at: number }>(`SELECT item_id, claimed_at FROM worker_jobs WHERE run_id = ? AND kind = 'item'`);
    const claimed = new Map(claims.all(remote.runId).map((r) => [r.item_id, r.claimed_at]));
    const latencies = (await svc.store.readEvents(remote.runId, 0, items * 10))
      .filter((e) => e.event === 'stage_item_processed')
      .map((e) => Date.parse(e.timestamp) - (claimed.get(String((e.item as { id: number }).id)) ?? Number.NaN))
      .filter((ms) => Number.isFinite(ms))
      .sort((a, b) => a - b);
    return { inProcess, remote, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
    await svc.stop();
  }
}

async function run(): Promise<PartReport> {
  const items = size('WORKER_ITEMS', 20_000, 300);
  const m = await inTempDir((dir) => measure(dir, items));
  const rows: Table = [
    ['path', 'items/s', 'service CPU per item (µs)', 'claim → recorded p50 (ms)', 'p99 (ms)'],
    ['in-process', fmtInt(m.inProcess.perSec), fmtInt(m.inProcess.cpuPerItemUs), '', ''],
    [`${WORKERS} Python workers, claiming ≤ 16`, fmtInt(m.remote.perSec), fmtInt(m.remote.cpuPerItemUs), m.p50.toFixed(1), m.p99.toFixed(1)],
  ];
  const ratio = m.remote.perSec / m.inProcess.perSec;
  const met = (ok: boolean) => (ok ? 'met' : 'not met');
  return report(
    `One stage of ${fmtInt(items)} items at concurrency ${CONCURRENCY}, SQLite, the items loaded in process; no-op handlers. ` +
      'The workers use sdk/python/runstate_worker.py as shipped: the answers its handlers finish together go in one ' +
      '`POST /answers`, which also claims their successors.',
    { title: `Workers: ${fmtInt(items)} items, concurrency ${CONCURRENCY}, SQLite`, rows },
    `Aim: ≥ ${fmtInt(AIM_RATE)} items/s through the workers (${met(m.remote.perSec >= AIM_RATE)}), and ≥ ${AIM_RATIO}× in-process: ${ratio.toFixed(2)}× (${met(ratio >= AIM_RATIO)}).`,
  );
}

export const workersPart: BenchPart = { key: 'workers', title: 'Workers', source: 'bench/workers.ts', run };
