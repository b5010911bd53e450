// The watchers part's load generator, a process of its own: raw TCP clients that do the WebSocket
// handshake themselves and then only hop from frame header to frame header (no frame is copied or
// parsed but a watcher's first and last), so one process reads 300 × 10,000 frames a second and
// no watcher falls behind for want of a reader. Pings are answered, as a browser would.
import { connect, type Socket } from 'node:net';
import { serve } from './harness/child.js';
import { pool } from './harness/stats.js';

interface Watcher {
  socket: Socket;
  /** Text frames received. */
  frames: number;
  /** Payload bytes of the current frame still to come, and its opcode (-1: between frames). */
  left: number;
  opcode: number;
  /** The current frame's payload from earlier chunks (a frame that spans reads). */
  parts: Buffer[];
  /** A header cut by the end of a read, joined to the next. */
  head: Buffer | null;
  first: Buffer | null;
  last: Buffer | null;
  /** The server sent a close frame or ended the connection before we dropped it. */
  closed: boolean;
}

export interface WatcherSummary {
  frames: number;
  first: { type: string; seq: number } | null;
  last: { type: string; seq: number } | null;
  closed: boolean;
}

const watchers = new Map<number, Watcher>();
/** Every client frame is masked; a zero key leaves the payload as it is. */
const clientFrame = (opcode: number, payload: Buffer) =>
  Buffer.concat([payload.length < 126 ? Buffer.from([0x80 | opcode, 0x80 | payload.length]) : Buffer.from([0x80 | opcode, 0xfe, payload.length >> 8, payload.length & 255]), Buffer.alloc(4), payload]);

/** The frame that ended at `end`: its parts from earlier reads, then this read's bytes from `start`. */
function payloadOf(w: Watcher, chunk: Buffer, start: number, end: number): Buffer {
  const tail = chunk.subarray(start, end);
  return w.parts.length === 0 ? tail : Buffer.concat([...w.parts, tail]);
}

function onData(w: Watcher, data: Buffer): void {
  const chunk = w.head ? Buffer.concat([w.head, data]) : data;
  w.head = null;
  let i = 0;
  let lastStart = -1;
  let lastEnd = -1;
  while (i < chunk.length) {
    if (w.opcode < 0) {
      // A header: FIN and opcode, then the length in 7, 7+16 or 7+64 bits (the server never masks).
      const len7 = chunk.length - i >= 2 ? chunk[i + 1]! & 127 : 0;
      const size = len7 === 126 ? 4 : len7 === 127 ? 10 : 2;
      if (chunk.length - i < size) break;
      w.opcode = chunk[i]! & 15;
      w.left = len7 === 126 ? chunk.readUInt16BE(i + 2) : len7 === 127 ? Number(chunk.readBigUInt64BE(i + 2)) : len7;
      i += size;
    }
    const start = i;
    const take = Math.min(w.left, chunk.length - i);
    i += take;
    w.left -= take;
    if (w.left > 0) {
      w.parts.push(chunk.subarray(start, i));
      break;
    }
    if (w.opcode === 1) {
      w.frames += 1;
      if (w.frames === 1) w.first = Buffer.from(payloadOf(w, chunk, start, i));
      else if (w.parts.length > 0) [w.last, lastStart] = [payloadOf(w, chunk, start, i), -1];
      else [lastStart, lastEnd] = [start, i];
    } else if (w.opcode === 9) w.socket.write(clientFrame(10, payloadOf(w, chunk, start, i)));
    else if (w.opcode === 8) w.closed = true;
    w.parts = [];
    w.opcode = -1;
  }
  if (i < chunk.length && w.opcode < 0) w.head = Buffer.from(chunk.subarray(i));
  // Only the last frame of a read is kept, and only as a view of the read's buffer.
  if (lastStart >= 0) w.last = chunk.subarray(lastStart, lastEnd);
}

/** Connects, upgrades (answering 101 or failing) and subscribes with `subscribe`. */
function open(port: number, path: string, subscribe: object): Promise<Watcher> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', noDelay: true });
    const w: Watcher = { socket, frames: 0, left: 0, opcode: -1, parts: [], head: null, first: null, last: null, closed: false };
    let response = Buffer.alloc(0);
    const onHandshake = (data: Buffer) => {
      response = Buffer.concat([response, data]);
      const end = response.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onHandshake);
      const status = response.toString('latin1', 0, response.indexOf('\r\n'));
      if (!/^HTTP\/1\.1 101 /.test(status)) return reject(new Error(`bench: upgrade answered ${status}`));
      socket.on('data', (d: Buffer) => onData(w, d));
      socket.on('close', () => (w.closed = true));
      socket.write(clientFrame(1, Buffer.from(JSON.stringify({ type: 'subscribe', ...subscribe }))));
      if (end + 4 < response.length) onData(w, response.subarray(end + 4));
      resolve(w);
    };
    socket.on('data', onHandshake);
    socket.on('error', (err) => (w.closed ? undefined : reject(err)));
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${Buffer.alloc(16, 7).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
  });
}

/** `{"type":…,"seq":…}` of a kept frame: the top-level seq of an event, snapshot or view. */
function head(payload: Buffer | null): WatcherSummary['first'] {
  if (!payload) return null;
  const msg = JSON.parse(payload.toString('utf8')) as { type: string; seq: number };
  return { type: msg.type, seq: msg.seq };
}

serve({
  /** Opens `ids.length` watchers of `topic`, 64 at a time (a burst past the listen backlog costs SYN retries). */
  open: async ({ port, path, ids, subscribe }) => {
    const list = ids as number[];
    await pool(list.length, 64, async (k) => watchers.set(list[k]!, await open(Number(port), `${String(path)}&cid=${list[k]!}`, subscribe as object)));
    return watchers.size;
  },
  summary: (): WatcherSummary[] => [...watchers.values()].map((w) => ({ frames: w.frames, first: head(w.first), last: head(w.last ?? w.first), closed: w.closed })),
  drop: () => {
    for (const w of watchers.values()) w.socket.destroy();
    watchers.clear();
  },
  /** CPU ms this process has used: whether the load generator, not the server, was the limit. */
  cpu: () => {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  },
  stop: () => void setImmediate(() => process.exit(0)),
});
