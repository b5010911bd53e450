// The hub part's server, one process per variant (`server.ts <naive|serial|hub>`, 127.0.0.1, port 0): it appends
// events through the real store at a fixed rate (or in bursts) and hands each durable batch to the variant.
import { createServer, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { WebSocketServer, type WebSocket } from 'ws';
import { serve } from '../harness/child.js';
import { appendEvents, BENCH_TOKEN, createBenchRun, Engine, Hub, noopPipeline, silent, SqliteStore, TokenRegistry, type NewEvent, type StoredEvent } from '../harness/service.js';
import { monoMs, removeDir, tempDir, timed } from '../harness/stats.js';

export type Variant = 'naive' | 'serial' | 'hub';
export type PhaseResult = Awaited<ReturnType<typeof measured>>;

interface Broadcaster {
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  publish(events: readonly StoredEvent[]): void;
  /** Events B has accepted but not yet sent to everyone. */
  readonly backlog?: number;
  heldBytes(): number | Promise<number>;
  /** The closes the server counted itself, by reason (A counts none). */
  closes?(): Record<string, number> | Promise<Record<string, number>>;
  close(): Promise<void>;
}

/** The sockets A and B keep, and ws's own count of what they hold (its queue and the socket's unwritten buffer). */
function sockets(onOpen: (ws: WebSocket) => void = () => {}) {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false });
  const set = new Set<WebSocket>();
  return {
    set,
    handleUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      wss.handleUpgrade(req, socket, head, (ws) => {
        set.add(ws);
        ws.on('close', () => set.delete(ws));
        // A peer reset is how a stalled client's end looks: nothing to do but forget it.
        ws.on('error', () => {});
        onOpen(ws);
      }),
    // Open ones only: ws counts a send after close in bufferedAmount without keeping it.
    heldBytes: () => [...set].reduce((n, ws) => n + (ws.readyState === ws.OPEN ? ws.bufferedAmount : 0), 0),
    async close() {
      for (const ws of set) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

const RUN_ID = 'run_20250101_000000_bench';
const TOPIC = `run:${RUN_ID}`;
const frame = (e: StoredEvent) => JSON.stringify({ type: 'event', topic: TOPIC, seq: e.seq, event: e });

/** A: `ws.send` per client per event, never waiting; a client that stops reading piles up here. */
function naive(): Broadcaster {
  const clients = sockets();
  const publish = (events: readonly StoredEvent[]) => {
    for (const e of events) {
      const json = frame(e);
      for (const ws of clients.set) ws.send(json);
    }
  };
  return { ...clients, publish };
}

/** B: the incident's fix, one loop awaiting each client's send in turn (2 s, then terminated), its keepalive (the hub's ping 1 s, pong 3 s) on that loop, so a loop stuck in sends stops pinging. */
function serialAwait(): Broadcaster {
  const lastPong = new WeakMap<WebSocket, number>();
  const clients = sockets((ws) => {
    lastPong.set(ws, monoMs());
    ws.on('pong', () => lastPong.set(ws, monoMs()));
  });
  const terminated = { send_timeout: 0, pong_missed: 0 };
  const queue: StoredEvent[] = [];
  let wake = () => {};
  let stopped = false;
  let nextPing = monoMs() + 1000;
  const send = (ws: WebSocket, json: string) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        if (ws.readyState === ws.OPEN) terminated.send_timeout += 1;
        ws.terminate();
        resolve();
      }, 2000);
      ws.send(json, () => (clearTimeout(timer), resolve()));
    });
  const heartbeat = () => {
    const now = monoMs();
    nextPing = now + 1000;
    for (const ws of clients.set) {
      if (ws.readyState !== ws.OPEN) continue;
      if (now - (lastPong.get(ws) ?? now) <= 3000) ws.ping();
      else {
        terminated.pong_missed += 1;
        ws.terminate();
      }
    }
  };
  const idle = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, ms));
      wake = () => (clearTimeout(timer), resolve());
    });
  const done = (async () => {
    while (!stopped) {
      const e = queue.shift();
      const json = e && frame(e);
      if (json) for (const ws of [...clients.set]) await send(ws, json);
      else await idle(nextPing - monoMs());
      if (monoMs() >= nextPing) heartbeat();
    }
  })();
  return {
    ...clients,
    publish: (events) => (queue.push(...events), wake()),
    get backlog() {
      return queue.length;
    },
    closes: () => ({ ...terminated }),
    async close() {
      stopped = true;
      wake();
      await clients.close();
      await done;
    },
  };
}

const dir = tempDir('hub');
const store = new SqliteStore({ filename: join(dir, 'runstate.db') });
// Registered so the engine can describe the run (snapshots, replay); it never runs.
const engine = new Engine({ store, pipelines: [noopPipeline(0, 1, { name: 'bench-hub' })] });
const record = await createBenchRun(store, RUN_ID, 'bench-hub');

/** C: the real Hub with its defaults, fed the same durable batches; its own metrics say what it holds and whom it closed. */
function realHub(): Broadcaster {
  const registry = new Registry();
  const tokens = new TokenRegistry([{ token: BENCH_TOKEN, principal: { name: 'bench', admin: true, accountId: null, siteIds: null } }]);
  const hub = new Hub({ engine, tokens, logger: silent, registry });
  const metric = async (name: string) => (await registry.getSingleMetric(name)?.get())?.values ?? [];
  return {
    handleUpgrade: (req, socket, head) => hub.handleUpgrade(req, socket, head),
    publish: (events) => hub.publish(record, events),
    heldBytes: async () => (await metric('runstate_ws_queued_bytes'))[0]?.value ?? 0,
    closes: async () => Object.fromEntries((await metric('runstate_ws_evictions_total')).map((v) => [String(v.labels.reason), v.value])),
    close: () => hub.close(),
  };
}
const broadcaster = { naive, serial: serialAwait, hub: realHub }[process.argv[2] as Variant]();
const TITLE = 'Image prompt for a long-form article about fan-out under load'.padEnd(96, '.');
let n = 0;

/** Appends `count` events in one commit and hands them over, each stamped with `appended_at` (monotonic ms), its phase `ph` and the second `w` of it. */
async function append(count: number, ph: number, w: number): Promise<void> {
  const appendedAt = monoMs();
  const timestamp = new Date().toISOString();
  const events: NewEvent[] = Array.from({ length: count }, () => ({ event: 'stage_item_processed', timestamp, stage: 6, processed: ++n, total: 1_000_000, item: { id: n, title: TITLE }, appended_at: appendedAt, ph, w }));
  broadcaster.publish(await appendEvents(store, RUN_ID, events));
}

/** When each connection's socket closed (monotonic ms), by the client id in its URL. */
const closedAt = new Map<number, number>();
const server = createServer((_, res) => res.writeHead(404).end());
server.on('upgrade', (req, socket, head) => {
  const cid = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('cid'));
  socket.once('close', () => closedAt.set(cid, monoMs()));
  broadcaster.handleUpgrade(req, socket, head);
});
// 1,000 clients connect in a burst: a listen backlog that holds them all.
await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: 2048 }, resolve));

/** A phase: `body` (which returns how many events it appended) timed, with RSS and the bytes held for clients at its end. */
async function measured(body: () => Promise<number>) {
  const { result: events, startedAt, ms, eldP99, eldMax, cpuMs } = await timed(body);
  return { events, startedAt, ms, eldP99, eldMax, cpuMs, rss: process.memoryUsage().rss, heldBytes: await broadcaster.heldBytes() };
}

/** Events at `rate` for `seconds`: every 10 ms, as many as are due, in one append. */
async function paced(rate: number, seconds: number, ph: number): Promise<number> {
  const t0 = monoMs();
  let sent = 0;
  for (let elapsed = 0; elapsed < seconds * 1000; elapsed = monoMs() - t0) {
    const due = Math.min(Math.floor((rate * elapsed) / 1000) + 1, rate * seconds) - sent;
    if (due > 0) await append(due, ph, Math.floor(elapsed / 1000));
    sent += Math.max(0, due);
    await sleep(10);
  }
  return sent;
}

/** `total` events `batch` at a time, as fast as the variant takes them (yielding to I/O between appends); for B, until its loop has sent them all (30 s at most). */
async function burst(total: number, batch: number, ph: number): Promise<number> {
  for (let sent = 0; sent < total; sent += batch) {
    await append(Math.min(batch, total - sent), ph, 0);
    await new Promise((resolve) => setImmediate(resolve));
  }
  const deadline = monoMs() + 30_000;
  while ((broadcaster.backlog ?? 0) > 0 && monoMs() < deadline) await sleep(10);
  return total;
}

serve(
  {
    rss: () => process.memoryUsage().rss,
    run: ({ rate, seconds, ph }) => measured(() => paced(Number(rate), Number(seconds), Number(ph))),
    burst: ({ total, batch, ph }) => measured(() => burst(Number(total), Number(batch), Number(ph))),
    closedAt: () => [...closedAt],
    lastSeq: () => n,
    closesByReason: () => broadcaster.closes?.() ?? {},
    stop: async () => {
      await broadcaster.close();
      server.close();
      await engine.stop();
      await store.close();
      removeDir(dir);
    },
  },
  { port: (server.address() as { port: number }).port, topic: TOPIC },
);
