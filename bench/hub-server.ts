// The server side of the hub bench, one process per variant:
//   node --import tsx bench/hub-server.ts <naive|serial|hub>
// Listens on 127.0.0.1, port 0, tells the parent its port over IPC, then runs the phases the
// parent asks for: events at a fixed rate, appended through the real store and broadcast.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Broadcaster, NaiveBroadcaster, SerialAwaitBroadcaster } from './hub-baselines.js';
import { monoMs } from './hub-clock.js';
import { serve, type Request } from './hub-ipc.js';
import { HubBroadcaster } from './hub-real.js';
import { EventSource } from './hub-source.js';

export type Variant = 'naive' | 'serial' | 'hub';

export interface PhaseResult {
  events: number;
  /** Monotonic ms when the first event was appended. */
  startedAt: number;
  /** Wall time the generator ran, ms. */
  ms: number;
  /** Event-loop delay over the phase, ms. */
  eldP50: number;
  eldP99: number;
  eldMax: number;
  /** Events B had accepted but not yet sent to everyone when the phase ended. */
  backlog: number;
  lastSeq: number;
  rss: number;
  /** Bytes the server held for clients in user space when the phase ended. */
  heldBytes: number;
  /** Server CPU time (user + system) over the phase, ms. */
  cpuMs: number;
}

/** Events are appended and published every TICK_MS, as many as the rate says are due. */
const TICK_MS = 10;
/** A burst is over when B has sent it all, or after this long. */
const BURST_DRAIN_LIMIT_MS = 30_000;

const variant = process.argv[2] as Variant;
if (!['naive', 'serial', 'hub'].includes(variant)) throw new TypeError(`usage: hub-server.ts <naive|serial|hub>, got ${JSON.stringify(variant)}`);

const dir = mkdtempSync(join(tmpdir(), 'runstate-bench-hub-'));
const source = new EventSource(dir);
await source.open();
const broadcaster: Broadcaster = variant === 'naive' ? new NaiveBroadcaster() : variant === 'serial' ? new SerialAwaitBroadcaster() : new HubBroadcaster(source);

/** When each connection's socket closed (monotonic ms), by the client id in its URL. */
const closes = new Map<number, number>();
const server = createServer((_, res) => res.writeHead(404).end());
server.on('upgrade', (req, socket, head) => {
  const cid = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('cid'));
  socket.once('close', () => closes.set(cid, monoMs()));
  broadcaster.handleUpgrade(req, socket, head);
});
// 1,000 clients connect in a burst: a backlog that holds them all.
await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: 2048 }, resolve));
const eld = monitorEventLoopDelay({ resolution: 5 });
eld.enable();

/** Runs `body` (which returns how many events it appended) with the phase's measurements around it. */
async function measured(body: () => Promise<number>): Promise<PhaseResult> {
  eld.reset();
  const cpu = process.cpuUsage();
  const start = monoMs();
  const events = await body();
  const used = process.cpuUsage(cpu);
  return {
    events,
    startedAt: start,
    ms: monoMs() - start,
    eldP50: eld.percentile(50) / 1e6,
    eldP99: eld.percentile(99) / 1e6,
    eldMax: eld.max / 1e6,
    backlog: broadcaster.backlog,
    lastSeq: source.lastSeq,
    rss: process.memoryUsage().rss,
    heldBytes: await broadcaster.heldBytes(),
    cpuMs: (used.user + used.system) / 1000,
  };
}

/** Events at a fixed rate: every tick, as many as are due, in one append. */
function run(rate: number, seconds: number, ph: number): Promise<PhaseResult> {
  return measured(async () => {
    const start = monoMs();
    let sent = 0;
    for (;;) {
      const elapsed = monoMs() - start;
      if (elapsed >= seconds * 1000) break;
      const due = Math.min(Math.floor((rate * elapsed) / 1000) + 1, rate * seconds) - sent;
      if (due > 0) {
        broadcaster.publish(await source.append(due, ph, Math.floor(elapsed / 1000)));
        sent += due;
      }
      await sleep(TICK_MS);
    }
    return sent;
  });
}

/**
 * As fast as the variant takes them: `total` events in appends of `batch`, yielding to I/O
 * between appends, then until B's loop has sent them all (A and C are done when publish returns).
 */
function burst(total: number, batch: number, ph: number): Promise<PhaseResult> {
  return measured(async () => {
    for (let sent = 0; sent < total; sent += batch) {
      broadcaster.publish(await source.append(Math.min(batch, total - sent), ph, 0));
      await new Promise((resolve) => setImmediate(resolve));
    }
    const deadline = monoMs() + BURST_DRAIN_LIMIT_MS;
    while (broadcaster.backlog > 0 && monoMs() < deadline) await sleep(TICK_MS);
    return total;
  });
}

serve({
  rss: () => process.memoryUsage().rss,
  run: (req: Request) => run(req.rate as number, req.seconds as number, req.ph as number),
  burst: (req: Request) => burst(req.total as number, req.batch as number, req.ph as number),
  closes: () => [...closes],
  lastSeq: () => source.lastSeq,
  evictions: async () =>
    broadcaster instanceof HubBroadcaster ? broadcaster.evictions() : broadcaster instanceof SerialAwaitBroadcaster ? { ...broadcaster.terminated } : {},
  stop: async () => {
    await broadcaster.close();
    server.close();
    await source.close();
    rmSync(dir, { recursive: true, force: true });
    setImmediate(() => process.exit(0));
  },
});
const address = server.address();
process.send!({ ready: typeof address === 'object' && address ? address.port : 0 });
