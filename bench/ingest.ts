// Ingest part. Method: 1 and 4 external engines (bench/ingest-engine.ts, processes of their own)
// append through the Unix socket of a service process, pipelined. Baseline: the same events
// appended with the store's commit in a loop, in the same run. Also: the latency from an engine's write
// to a WebSocket client's receipt. Full method: docs/benchmarks.md.
import { WebSocket } from 'ws';
import { start } from './harness/child.js';
import { ratio, report, type BenchPart, type Table } from './harness/report.js';
import { appendEvents, BENCH_TOKEN, createBenchRun, events as make, SqliteStore } from './harness/service.js';
import { fmtInt, inTempDir, median, percentile, progress, QUICK, range, REPS, size } from './harness/stats.js';

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

async function throughSocket(engines: number, perEngine: number, rate = 0) {
  return inTempDir(async (dir) => {
    const svc = await start<{ port: number; socketPath: string }>('harness/service-child.ts', [dir, 1, 1]);
    try {
      const runIds = await svc.call<string[]>('external', { n: engines });
      const watcher = await watch(svc.ready.port, runIds[0]!, perEngine);
      const results = await Promise.all(
        runIds.map(async (runId, k) => (await start<{ ms: number; ordered: boolean }>('ingest-engine.ts', [svc.ready.socketPath, runId, perEngine, `e${k}`, rate], { readyMs: 600_000 })).ready),
      );
      if (!results.every((r) => r.ordered)) throw new Error('bench: acknowledgements out of order');
      return { eventsPerSec: ((engines * perEngine) / Math.max(...results.map((r) => r.ms))) * 1000, latencies: await watcher.done };
    } finally {
      await svc.stop();
    }
  });
}

/** The floor: the same events appended with the store's commit directly, `perCommit` at a time. */
async function bareLoop(count: number, perCommit: number): Promise<number> {
  return inTempDir(async (dir) => {
    const store = new SqliteStore({ filename: `${dir}/runstate.db` });
    const runId = 'run_20250101_000000_bench';
    await createBenchRun(store, runId, 'external', 'face_processor');
    const t0 = performance.now();
    for (let i = 0; i < count; i += perCommit) {
      const events = Array.from({ length: Math.min(perCommit, count - i) }, (_, k) =>
        make.stateChange(
          {
            machine_name: 'face_processor',
            event_id: `b-${i + k}`,
            payload: { from_state: 'verifying_dimensions', to_state: 'detecting_faces', event_trigger: 'dimensions_verified', timestamp: Date.now() / 1000 },
          },
          new Date().toISOString(),
        ),
      );
      await appendEvents(store, runId, events, events.map((e) => e.event_id ?? null));
    }
    const ms = performance.now() - t0;
    await store.close();
    return (count / ms) * 1000;
  });
}

export const ingestPart: BenchPart = {
  key: 'ingest',
  title: 'Ingest',
  source: 'bench/ingest.ts',
  async run() {
    const total = size('INGEST_EVENTS', 20_000, 400);
    const paced = QUICK ? 200 : 3000;
    const rates: Record<string, number[]> = {};
    const latencies: Record<string, number[]> = {};
    const add = <T>(to: Record<string, T[]>, k: string, ...v: T[]) => (to[k] ??= []).push(...v);
    for (let rep = 0; rep < REPS; rep++) {
      add(rates, 'bare, 1 event per commit', await bareLoop(total, 1));
      add(rates, 'bare, 500 events per commit', await bareLoop(total, 500));
      for (const engines of [1, 4]) {
        const label = `socket, ${engines} engine${engines > 1 ? 's' : ''}`;
        const r = await throughSocket(engines, total / engines);
        add(rates, label, r.eventsPerSec);
        add(latencies, `${label} (saturated)`, ...r.latencies);
      }
      progress(`ingest rep ${rep + 1}/${REPS}`);
    }
    latencies['socket, 1 engine at 1,000 events/s'] = (await throughSocket(1, paced, 1000)).latencies;
    const bare = median(rates['bare, 1 event per commit']!);
    const throughput: Table = [['variant', 'events/s (median)', 'min – max', 'vs bare, 1 per commit']];
    for (const [k, v] of Object.entries(rates)) throughput.push([k, fmtInt(median(v)), range(v), ratio(median(v), bare)]);
    const latency: Table = [['variant', 'p50 ms', 'p99 ms', 'events']];
    for (const [k, v] of Object.entries(latencies)) {
      v.sort((x, y) => x - y);
      latency.push([k, percentile(v, 50).toFixed(1), percentile(v, 99).toFixed(1), fmtInt(v.length)]);
    }
    return report(
      `### Throughput: ${fmtInt(total)} events appended and acknowledged`,
      { title: 'Ingest throughput', rows: throughput },
      `### Latency: an engine's write to a WebSocket client's receipt`,
      { title: 'Ingest latency', rows: latency },
      `${REPS} rounds; the paced run: 1,000 events/s for ${paced / 1000} s.`,
    );
  },
};
