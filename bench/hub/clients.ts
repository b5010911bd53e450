// The hub parts' load generator, a process of its own: opens the connections asked for, counts
// deliveries per phase, records healthy clients' latency, stalls some on request.
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { serve } from '../harness/child.js';
import { Histogram, monoMs, pool, type HistogramData } from '../harness/stats.js';

/** A phase's deliveries (all, the healthy clients'), healthy latency by the second its events were appended in, the last's time. */
type Phase = { deliveries: number; healthyDeliveries: number; windows: Histogram[]; lastAt: number };
export type PhaseStats = Omit<Phase, 'windows'> & { windows: HistogramData[] };

/** `stalled` is set when it stops reading: what ws flushes out of its buffers as it is dropped is no delivery. */
type Conn = { ws: WebSocket; healthy: boolean; stalled: boolean };

const SEQ = Buffer.from('"seq":');
const APPENDED_AT = Buffer.from('"appended_at":');
const PH = Buffer.from('"ph":');
const SECOND = Buffer.from('"w":');
/** How many connections are opened at once: a burst past the listen backlog costs SYN retries (1 s each). */
const OPEN_CONCURRENCY = 64;

const conns = new Map<number, Conn>();
const phases = new Map<number, Phase>();
/** Healthy clients whose connection ended: a fair hub never closes one. */
let healthyClosed = 0;

/** A number after `key` in a frame; indexOf on the bytes, not JSON.parse, so 1,000 clients' worth of frames stay cheap. */
function numberAfter(buf: Buffer, key: Buffer): number {
  const i = buf.indexOf(key);
  return i < 0 ? NaN : parseFloat(buf.toString('latin1', i + key.length, i + key.length + 24));
}

/** `{"type":"event",…`: the frames of every variant start with the type. */
function isEvent(buf: Buffer): boolean {
  return buf[9] === 0x65 && buf[10] === 0x76;
}

function onMessage(conn: Conn, data: Buffer): void {
  if (conn.stalled || !isEvent(data)) return;
  const ph = numberAfter(data, PH);
  let p = phases.get(ph);
  if (!p) phases.set(ph, (p = { deliveries: 0, healthyDeliveries: 0, windows: [], lastAt: 0 }));
  const now = monoMs();
  p.deliveries += 1;
  p.lastAt = Math.max(p.lastAt, now);
  if (conn.healthy) {
    const latency = now - numberAfter(data, APPENDED_AT);
    const w = numberAfter(data, SECOND);
    p.healthyDeliveries += 1;
    (p.windows[w] ??= new Histogram()).record(latency);
  }
}

/** A client subscribing to `topic`. */
async function open(url: string, cid: number, topic: unknown, healthy: boolean): Promise<void> {
  const ws = new WebSocket(`${url}&cid=${cid}`, { perMessageDeflate: false });
  const conn: Conn = { ws, healthy, stalled: false };
  ws.on('message', (data: Buffer) => onMessage(conn, data));
  // Once open, a reset is how a server's close of this client can arrive; `close` follows and counts it.
  ws.on('error', () => {});
  ws.on('close', () => {
    if (conns.get(cid) !== conn) return;
    conns.delete(cid);
    if (conn.healthy) healthyClosed += 1;
  });
  await once(ws, 'open');
  conns.set(cid, conn);
  ws.send(JSON.stringify({ type: 'subscribe', topic }));
}

async function openAll(req: Record<string, unknown>): Promise<number> {
  // Ids already connected are left as they are: a phase tops the fleet up to what it needs.
  const ids = (req.ids as number[]).filter((cid) => !conns.has(cid));
  await pool(ids.length, OPEN_CONCURRENCY, (i) => open(req.url as string, ids[i]!, req.topic, ids[i]! < (req.healthyBelow as number)));
  return conns.size;
}

/** Stops reading, as a frozen browser tab does: the server's writes pile up in kernel buffers. */
function stall(ids: number[]): number {
  for (const cid of ids) {
    const conn = conns.get(cid);
    if (!conn) continue;
    conn.stalled = true;
    (conn.ws as unknown as { _socket: Socket })._socket.pause();
  }
  return monoMs();
}

/** A client that comes back late: subscribes with `after_seq`, times the replay up to `untilSeq` (Infinity: over 30 s). */
async function backlog(req: Record<string, unknown>): Promise<{ ms: number }> {
  const { url, topic, afterSeq, untilSeq } = req as { url: string; topic: string; afterSeq: number; untilSeq: number };
  const ws = new WebSocket(`${url}&cid=-1`, { perMessageDeflate: false });
  ws.on('error', () => {});
  await once(ws, 'open');
  const t0 = monoMs();
  const caughtUp = new Promise<number>((resolve) =>
    ws.on('message', (data: Buffer) => {
      if (isEvent(data) && numberAfter(data, SEQ) >= untilSeq) resolve(monoMs() - t0);
    }),
  );
  ws.send(JSON.stringify({ type: 'subscribe', topic, after_seq: afterSeq }));
  const ms = await Promise.race([caughtUp, sleep(30_000, Infinity, { ref: false })]);
  ws.terminate();
  return { ms };
}

serve({
  open: openAll,
  stall: (req) => stall(req.ids as number[]),
  /** Ends connections from this side, so the next phase starts from the same fleet. */
  drop: (req) => {
    for (const cid of req.ids as number[]) {
      const conn = conns.get(cid);
      conns.delete(cid);
      conn?.ws.terminate();
    }
  },
  stats: () => Object.fromEntries([...phases].map(([ph, p]) => [ph, { ...p, windows: Array.from(p.windows, (h) => h?.toJSON() ?? []) }])),
  count: (req) => phases.get(req.ph as number)?.deliveries ?? 0,
  healthyClosed: () => healthyClosed,
  backlog,
});
