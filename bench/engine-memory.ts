// The engine part's memory child: `node --expose-gc --import tsx bench/engine-memory.ts <dataDir> <runs>`,
// a process of its own so nothing the throughput runs left on the heap is counted. Hands back a MemoryResult.
import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import { finish } from './harness/child.js';
import { Engine, noopPipeline, OWNER, SqliteStore, type StageDefinition } from './harness/service.js';
import { until } from './harness/stats.js';

export interface MemoryResult {
  baseline: { heapUsed: number; rss: number };
  loaded: { heapUsed: number; rss: number };
  /** Wall time to start every run, one startRun after another. */
  startMs: number;
}

const CONCURRENCY = 2;
const [dataDir, runsArg] = process.argv.slice(2) as [string, string];
const runs = Number(runsArg);
const gc = globalThis.gc;
if (!gc) throw new Error('engine-memory.ts needs node --expose-gc');

let inFlight = 0;
/** 3 stages × 100 items whose work never finishes: each run holds CONCURRENCY of them until cancelled or stopped. */
const processItem: StageDefinition<object>['processItem'] = (_item, ctx) =>
  new Promise<void>((_, reject) => {
    inFlight += 1;
    ctx.signal.addEventListener('abort', () => (inFlight -= 1, reject(new Error('aborted'))), { once: true });
  });
const pipeline = noopPipeline(100, CONCURRENCY, { name: 'bench-held', stages: 3, processItem });
const store = new SqliteStore({ filename: join(dataDir, 'runstate.db') });
const engine = new Engine({ store, pipelines: [pipeline] });

async function startRuns(n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await engine.startRun({ ...OWNER, pipeline: pipeline.name })).run_id);
  return ids;
}

function untilInFlight(n: number): Promise<void> {
  return until(() => inFlight >= n * CONCURRENCY, 60_000, `not all ${n * CONCURRENCY} items in flight after 60 s`, 10);
}

async function settledMemory(): Promise<{ heapUsed: number; rss: number }> {
  // Several rounds: the first frees what has finalizers, the next ones what they held.
  for (let i = 0; i < 4; i++) {
    gc!();
    await tick();
  }
  const { heapUsed, rss } = process.memoryUsage();
  return { heapUsed, rss };
}

// Warm-up: every path the measured runs take (start, load, process, cancel, retire) is compiled before the baseline.
const warm = await startRuns(10);
await untilInFlight(10);
for (const id of warm) await engine.command(id, 'cancel', { by: 'bench' });
await Promise.all(warm.map((id) => engine.whenRetired(id)));
if (inFlight !== 0) throw new Error(`bench: ${inFlight} items still in flight after cancelling the warm-up runs`);

const baseline = await settledMemory();
const t0 = performance.now();
await startRuns(runs);
const startMs = performance.now() - t0;
await untilInFlight(runs);
if (engine.hostedRuns !== runs) throw new Error(`bench: ${engine.hostedRuns} runs hosted, expected ${runs}`);
const loaded = await settledMemory();
await engine.stop();
await store.close();
finish({ baseline, loaded, startMs } satisfies MemoryResult);
