// Ingest part: 1 and 4 external engines (bench/ingest-engine.ts) append through a service's Unix socket against the
// same events committed in a loop; and the latency from an engine's write to a WebSocket client's receipt.
import { WebSocket } from 'ws';
import { withChildren } from './harness/child.js';
import { rateTable, ratio, report, type BenchPart, type PartReport, type Table } from './harness/report.js';
import { appendEvents, BENCH_TOKEN, createBenchRun, events as make, SqliteStore } from './harness/service.js';
import { fmtInt, inTempDir, percentile, QUICK, REPS, rounds, size } from './harness/stats.js';

/** A WebSocket watcher of one run: the latency of every `state_change` from the time the engine stamped into it. */
async function watch(port: number, runId: string, expected: number): Promise<{ done: Promise<number[]> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${BENCH_TOKEN}`);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const latencies: number[] = [];
  const done = new Promise<number[]>((resolve) =>
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as { type: string; event?: { event: string; payload?: { timestamp?: number } } };
      const ts = msg.event?.payload?.timestamp;
      if (msg.type !== 'event' || msg.event?.event !== 'state_change' || typeof ts !== 'number') return;
      latencies.push(performance.timeOrigin + performance.now() - ts * 1000);
      if (latencies.length === expected) resolve((ws.close(), latencies));
    }),
  );
  ws.send(JSON.stringify({ type: 'subscribe', topic: `run:${runId}` }));
  // The snapshot comes first: after it, every event is live.
  await new Promise<void>((resolve) => ws.once('message', () => resolve()));
  // In an object: an async function returning the promise itself would wait for it.
  return { done };
}

/** `engines` engines writing `perEngine` events each (at `rate`/s each, or as fast as they can): events/s and the watcher's latencies. */
function throughSocket(dir: string, engines: number, perEngine: number, rate = 0) {
  return withChildren(async (start) => {
    const svc = await start<{ port: number; socketPath: string }>('harness/service-child.ts', [dir, 1, 1]);
    const runIds = await svc.call<string[]>('external', { n: engines });
    const watcher = await watch(svc.ready.port, runIds[0]!, perEngine);
    const engine = async (runId: string, k: number) => (await start<{ ms: number; ordered: boolean }>('ingest-engine.ts', [svc.ready.socketPath, runId, perEngine, `e${k}`, rate], 600_000)).ready;
    const results = await Promise.all(runIds.map(engine));
    if (!results.every((r) => r.ordered)) throw new Error('bench: acknowledgements out of order');
    return { perSec: ((engines * perEngine) / Math.max(...results.map((r) => r.ms))) * 1000, latencies: await watcher.done };
  });
}

/** The floor: the same events appended with the store's commit directly, `perCommit` at a time. */
async function bareLoop(dir: string, count: number, perCommit: number) {
  const store = new SqliteStore({ filename: `${dir}/runstate.db` });
  const runId = 'run_20250101_000000_bench';
  await createBenchRun(store, runId, 'external', 'face_processor');
  const payload = { from_state: 'verifying_dimensions', to_state: 'detecting_faces', event_trigger: 'dimensions_verified' };
  const t0 = performance.now();
  for (let i = 0; i < count; i += perCommit) {
    const events = Array.from({ length: Math.min(perCommit, count - i) }, (_, k) =>
      make.stateChange({ machine_name: 'face_processor', event_id: `b-${i + k}`, payload: { ...payload, timestamp: Date.now() / 1000 } }, new Date().toISOString()),
    );
    await appendEvents(store, runId, events, events.map((e) => e.event_id ?? null));
  }
  const ms = performance.now() - t0;
  await store.close();
  return { perSec: (count / ms) * 1000, latencies: [] };
}

async function run(): Promise<PartReport> {
  const total = size('INGEST_EVENTS', 20_000, 400);
  const paced = QUICK ? 200 : 3000;
  const BARE = 'bare, 1 event per commit';
  const variants = {
    [BARE]: (dir: string) => bareLoop(dir, total, 1),
    'bare, 500 events per commit': (dir: string) => bareLoop(dir, total, 500),
    'socket, 1 engine': (dir: string) => throughSocket(dir, 1, total),
    'socket, 4 engines': (dir: string) => throughSocket(dir, 4, total / 4),
  };
  const samples = await rounds(variants, { unit: 'events/s' });
  const latencyRow = (variant: string, latencies: number[]) => {
    const sorted = [...latencies].sort((x, y) => x - y);
    return [variant, percentile(sorted, 50).toFixed(1), percentile(sorted, 99).toFixed(1), fmtInt(sorted.length)];
  };
  const latency: Table = [
    ['variant', 'p50 ms', 'p99 ms', 'events'],
    latencyRow('socket, 1 engine (saturated)', samples['socket, 1 engine'].flatMap((s) => s.latencies)),
    latencyRow('socket, 4 engines (saturated)', samples['socket, 4 engines'].flatMap((s) => s.latencies)),
    latencyRow('socket, 1 engine at 1,000 events/s', (await inTempDir((dir) => throughSocket(dir, 1, paced, 1000))).latencies),
  ];
  return report(
    `### Throughput: ${fmtInt(total)} events appended and acknowledged`,
    { title: 'Ingest throughput', rows: rateTable(samples, ['variant', 'events/s'], (med) => [['vs bare, 1 per commit', (v) => ratio(med(v), med(BARE))]]) },
    `### Latency: an engine's write to a WebSocket client's receipt`,
    { title: 'Ingest latency', rows: latency },
    `${REPS} rounds after a warm-up; the paced run: 1,000 events/s for ${paced / 1000} s.`,
  );
}

export const ingestPart: BenchPart = { key: 'ingest', title: 'Ingest', source: 'bench/ingest.ts', run };
