// `npm run bench`, ingest part: events appended and acknowledged through the Unix socket
// with 1 and 4 engines (separate processes), against a bare loop appending the same events
// to the same kind of store in the same run; and the latency from an engine's write to a
// WebSocket client's receipt.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { WebSocket } from 'ws';
import { events as make } from '../service/events.js';
import { SqliteStore } from '../service/store/sqlite.js';
import type { BenchPart, PartReport } from './part.js';
import { envInt, fmtInt, inTempDir, median } from './stats.js';
import { markdownTable, type Table } from './table.js';

const ROOT = join(import.meta.dirname, '..');
const REPETITIONS = 3;

function child(script: string, args: string[]) {
  const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', script), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const firstLine = new Promise<string>((resolve, reject) => {
    createInterface({ input: proc.stdout }).once('line', resolve);
    proc.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
  return { proc, firstLine };
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** A WebSocket watcher of one run: latency of every event from its engine-side timestamp. */
async function watch(port: number, token: string, runId: string, expected: number) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${token}`);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const latencies: number[] = [];
  const done = new Promise<void>((resolve) => {
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as { type: string; event?: { event: string; payload?: { timestamp?: number } } };
      const ts = msg.event?.payload?.timestamp;
      if (msg.type === 'event' && msg.event?.event === 'state_change' && typeof ts === 'number') {
        latencies.push(performance.timeOrigin + performance.now() - ts * 1000);
        if (latencies.length === expected) resolve();
      }
    });
  });
  ws.send(JSON.stringify({ type: 'subscribe', topic: `run:${runId}` }));
  // The snapshot comes first: after it, every event is live.
  await new Promise<void>((resolve) => ws.once('message', () => resolve()));
  return { done: done.then(() => (ws.close(), latencies.sort((a, b) => a - b))) };
}

async function throughSocket(engines: number, perEngine: number, rate = 0) {
  return inTempDir(async (dir) => {
    const server = child('ingest-server.ts', [dir, String(engines)]);
    try {
      const info = JSON.parse(await server.firstLine) as { port: number; token: string; socketPath: string; runIds: string[] };
      const watcher = await watch(info.port, info.token, info.runIds[0]!, perEngine);
      const t0 = performance.now();
      const results = await Promise.all(
        info.runIds.map(async (runId, k) => JSON.parse(await child('ingest-engine.ts', [info.socketPath, runId, String(perEngine), `e${k}`, String(rate)]).firstLine) as { ms: number; ordered: boolean }),
      );
      const wall = performance.now() - t0;
      if (!results.every((r) => r.ordered)) throw new Error('bench: acknowledgements out of order');
      const latencies = await watcher.done;
      return { eventsPerSec: ((engines * perEngine) / Math.max(...results.map((r) => r.ms))) * 1000, wall, latencies };
    } finally {
      server.proc.kill('SIGTERM');
      await new Promise((r) => server.proc.once('exit', r));
    }
  });
}

/** The floor: the same events, appended with the store directly, `perCommit` at a time. */
async function bareLoop(count: number, perCommit: number) {
  return inTempDir(async (dir) => {
    const store = new SqliteStore({ filename: join(dir, 'runstate.db') });
    const runId = 'run_20250101_000000_bench';
    await store.createRun({ runId, accountId: 'bench', siteId: 'bench', pipeline: 'external', trigger: 'bench', options: {}, machineName: 'face_processor', createdAt: new Date().toISOString() });
    const t0 = performance.now();
    for (let i = 0; i < count; i += perCommit) {
      const n = Math.min(perCommit, count - i);
      const events = Array.from({ length: n }, (_, k) =>
        make.stateChange(
          {
            machine_name: 'face_processor',
            event_id: `b-${i + k}`,
            payload: { from_state: 'verifying_dimensions', to_state: 'detecting_faces', event_trigger: 'dimensions_verified', timestamp: Date.now() / 1000 },
          },
          new Date().toISOString(),
        ),
      );
      await store.commit(runId, { events, eventKeys: events.map((e) => e.event_id ?? null) });
    }
    const ms = performance.now() - t0;
    await store.close();
    return { eventsPerSec: (count / ms) * 1000 };
  });
}

async function run(): Promise<PartReport> {
  const total = envInt('BENCH_INGEST_EVENTS', 20_000);
  const samples: Record<string, number[]> = {};
  const lat: Record<string, number[][]> = {};
  const add = (k: string, v: number) => (samples[k] ??= []).push(v);
  for (let rep = 0; rep < REPETITIONS; rep++) {
    add('bare, 1 event per commit', (await bareLoop(total, 1)).eventsPerSec);
    add('bare, 500 events per commit', (await bareLoop(total, 500)).eventsPerSec);
    for (const engines of [1, 4]) {
      const r = await throughSocket(engines, total / engines);
      add(`socket, ${engines} engine${engines > 1 ? 's' : ''}`, r.eventsPerSec);
      (lat[`socket, ${engines} engine${engines > 1 ? 's' : ''} (saturated)`] ??= []).push(r.latencies);
    }
    process.stderr.write(`  ingest rep ${rep + 1}/${REPETITIONS}\n`);
  }
  const paced = await throughSocket(1, 3000, 1000);
  lat['socket, 1 engine at 1,000 events/s'] = [paced.latencies];

  const bare = median(samples['bare, 1 event per commit']!);
  const rows: Table = [['variant', 'events/s (median)', 'min – max', 'vs bare, 1 per commit']];
  for (const [k, v] of Object.entries(samples)) {
    rows.push([k, fmtInt(median(v)), `${fmtInt(Math.min(...v))} – ${fmtInt(Math.max(...v))}`, (median(v) / bare).toFixed(2)]);
  }
  const latRows: Table = [['variant', 'p50 ms', 'p99 ms', 'events']];
  for (const [k, runs] of Object.entries(lat)) {
    const all = runs.flat().sort((a, b) => a - b);
    latRows.push([k, percentile(all, 50).toFixed(1), percentile(all, 99).toFixed(1), fmtInt(all.length)]);
  }
  const markdown = `### Throughput: ${fmtInt(total)} events appended and acknowledged

${markdownTable(rows)}

### Latency: an engine's write to a WebSocket client's receipt

${markdownTable(latRows)}

### Method

- **Socket.** A service process (bench/ingest-server.ts: SQLite store, engine, hub, ingest
  socket, wired as server.ts wires them) with one external run per engine. Each engine is a
  process of its own (bench/ingest-engine.ts) that writes its share of ${fmtInt(total)}
  \`state_change\` events of about 210 bytes, each with an \`event_id\`, as fast as the socket
  takes them (pipelined), and reads the replies in order; it checks that seqs rise. Events/s is
  all events over the slowest engine's time from its first write to its last acknowledgement.
  The service answers up to 500 waiting lines of a connection with one durable write.
- **Bare loop.** The same events appended to a fresh SQLite store with \`store.commit\` in a
  loop, one event per commit and 500 per commit, in the bench process: no socket, no parsing,
  no checks, no hub.
- **Latency.** A WebSocket client subscribed to the first engine's run computes, for every
  event, its receipt time minus the time the engine stamped into it just before writing it
  (same machine, same clock). Saturated runs measure queueing behind a full pipe; the paced
  run (1,000 events/s for 3 s) measures the path itself.
- ${REPETITIONS} repetitions of every throughput variant, interleaved; medians.
`;
  return { tables: [{ title: 'Ingest throughput', rows }, { title: 'Ingest latency', rows: latRows }], markdown };
}

export const ingestPart: BenchPart = { key: 'ingest', title: 'Ingest', source: 'bench/ingest.ts', run };
