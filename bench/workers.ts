// `npm run bench`, workers part: 4 Python workers (bench/py_noop_worker.py, no-op handlers,
// claiming up to 16 at a time) on one run, against the same items processed in-process, in the
// same run of the bench: items/s, the service's CPU time per item (this process: the service
// runs in it), and per item the time from its claim to its durable record.
// `BENCH_WORKER_ITEMS` sets the size (20,000; 300 with --quick).
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { loadConfig } from '../service/config.js';
import type { AnyPipeline, Item } from '../service/pipelines/types.js';
import { buildService } from '../service/service.js';
import type { SqliteStore } from '../service/store/sqlite.js';
import { loadNote, loadNow, markdownTable, type BenchPart, type PartReport, type Table } from './harness/report.js';
import { fmtInt, inTempDir, percentile, size } from './harness/stats.js';

const WORKERS = 4;
const CONCURRENCY = 64;
const TOKEN = 'bench-admin-token-0123456789';
/** The aims of issue 13: 2,000 items/s through 4 workers, and ≥ 0.25× the in-process rate. */
const AIM_RATE = 2000;
const AIM_RATIO = 0.25;

function pipeline(name: string, queue: string | undefined, items: number): AnyPipeline {
  const list: Item[] = Array.from({ length: items }, (_, i) => ({ id: i + 1, title: `item ${i + 1}` }));
  return {
    name,
    stages: [
      {
        key: 'only',
        name: 'only',
        concurrency: CONCURRENCY,
        ...(queue === undefined ? {} : { queue, loadsInProcess: true }),
        loadItems: async () => list,
        processItem: async () => ({ cost: 0 }),
      },
    ],
    parseOptions: () => ({}),
  };
}

interface Measured {
  inProcess: number;
  workers: number;
  /** The service's CPU time per item, in µs (user + system of this process). */
  inProcessCpu: number;
  workersCpu: number;
  p50: number;
  p99: number;
}

async function measure(dir: string, items: number): Promise<Measured> {
  const config = loadConfig({ RUNSTATE_DATA: dir, PORT: '0', RUNSTATE_ADMIN_TOKEN: TOKEN, RUNSTATE_LOG_LEVEL: 'silent' });
  const svc = await buildService(config, { pipelines: [pipeline('bench_in_process', undefined, items), pipeline('bench_workers', 'bench', items)], webRoot: null });
  const { url } = await svc.start();
  const children: ChildProcess[] = [];
  try {
    const timeRun = async (name: string): Promise<{ runId: string; seconds: number; cpuPerItem: number }> => {
      const started = performance.now();
      const cpu = process.cpuUsage();
      const run = await svc.engine.startRun({ accountId: 'bench', siteId: 'bench', pipeline: name });
      await svc.engine.whenRetired(run.run_id);
      const used = process.cpuUsage(cpu);
      return { runId: run.run_id, seconds: (performance.now() - started) / 1000, cpuPerItem: (used.user + used.system) / items };
    };
    const inProcess = await timeRun('bench_in_process');
    for (let i = 0; i < WORKERS; i++) {
      const child = spawn('python3', [join(import.meta.dirname, 'py_noop_worker.py')], {
        env: { ...process.env, RUNSTATE_URL: url, RUNSTATE_TOKEN: TOKEN, WORKER_ID: `bench-${i + 1}` },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.push(child);
      await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
    }
    const remote = await timeRun('bench_workers');
    // Claim to record: the job's claim time against the time its item's event was recorded.
    const db = (svc.store as SqliteStore).connection;
    const claimed = new Map(
      db
        .prepare<[string], { item_id: string; claimed_at: number }>(`SELECT item_id, claimed_at FROM worker_jobs WHERE run_id = ? AND kind = 'item'`)
        .all(remote.runId)
        .map((r) => [r.item_id, r.claimed_at]),
    );
    const latencies = (await svc.store.readEvents(remote.runId, 0, items * 10))
      .filter((e) => e.event === 'stage_item_processed')
      .map((e) => Date.parse(e.timestamp) - (claimed.get(String((e.item as { id: number }).id)) ?? Number.NaN))
      .filter((ms) => Number.isFinite(ms))
      .sort((a, b) => a - b);
    return {
      inProcess: items / inProcess.seconds,
      workers: items / remote.seconds,
      inProcessCpu: inProcess.cpuPerItem,
      workersCpu: remote.cpuPerItem,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
    };
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
    await svc.stop();
  }
}

async function run(): Promise<PartReport> {
  const items = size('WORKER_ITEMS', 20_000, 300);
  // Other work on the machine slows both paths; the ratio is of the same run, the load is said.
  const load = loadNow();
  const m = await inTempDir((dir) => measure(dir, items));
  const rows: Table = [
    ['path', 'items/s', 'service CPU per item (µs)', 'claim → recorded p50 (ms)', 'p99 (ms)'],
    ['in-process', fmtInt(m.inProcess), fmtInt(m.inProcessCpu), '', ''],
    [`${WORKERS} Python workers, claiming ≤ 16`, fmtInt(m.workers), fmtInt(m.workersCpu), m.p50.toFixed(1), m.p99.toFixed(1)],
  ];
  const ratio = m.workers / m.inProcess;
  const verdict = `Aim: ≥ ${fmtInt(AIM_RATE)} items/s through the workers (${m.workers >= AIM_RATE ? 'met' : 'not met'}), and ≥ ${AIM_RATIO}× in-process: ${ratio.toFixed(2)}× (${ratio >= AIM_RATIO ? 'met' : 'not met'}).`;
  return {
    tables: [{ title: `Workers: ${fmtInt(items)} items, concurrency ${CONCURRENCY}, SQLite`, rows }],
    markdown:
      `One stage of ${fmtInt(items)} items at concurrency ${CONCURRENCY}, SQLite, the items loaded in process; no-op handlers. ` +
      `The workers use sdk/python/runstate_worker.py as shipped: the answers its handlers finish together go in one ` +
      `\`POST /answers\`, which also claims their successors. ${loadNote(load)}` +
      `\n\n${markdownTable(rows)}\n\n${verdict}`,
  };
}

export const workersPart: BenchPart = { key: 'workers', title: 'Workers', source: 'bench/workers.ts', run };
