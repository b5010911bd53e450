// The watchers part's load generator: raw TCP clients that do the WebSocket handshake, answer pings and hop from frame
// header to frame header, keeping each watcher's first and last frame, so one process reads 300 × 10,000 frames a second.
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { serve } from './harness/child.js';
import { pool } from './harness/stats.js';

interface Watcher {
  socket: Socket;
  /** Text frames received; the current frame's opcode (-1: between frames) and payload bytes still to come. */
  frames: number;
  opcode: number;
  left: number;
  /** The current frame's payload from earlier reads, and a header cut by the end of a read. */
  parts: Buffer[];
  head: Buffer | null;
  first: Buffer | null;
  last: Buffer | null;
  /** The server closed it (a close frame or the connection's end) before it was dropped. */
  closed: boolean;
}

export type WatcherSummary = ReturnType<typeof summary>;

const watchers = new Map<number, Watcher>();

/** A client frame: masked, as the protocol requires, with a zero key (the payload as it is). */
const clientFrame = (opcode: number, payload: Buffer) =>
  Buffer.concat([Buffer.from(payload.length < 126 ? [0x80 | opcode, 0x80 | payload.length] : [0x80 | opcode, 0xfe, payload.length >> 8, payload.length & 255]), Buffer.alloc(4), payload]);

function onData(w: Watcher, data: Buffer): void {
  const chunk = w.head ? Buffer.concat([w.head, data]) : data;
  w.head = null;
  // A frame's payload: the parts earlier reads left, then this read's bytes from start to end.
  const payload = (start: number, end: number) => (w.parts.length ? Buffer.concat([...w.parts, chunk.subarray(start, end)]) : chunk.subarray(start, end));
  // The last text frame that ended in this read and lies wholly in it, kept as a view at the end.
  let lastStart = -1;
  let lastEnd = -1;
  let i = 0;
  while (i < chunk.length) {
    if (w.opcode < 0) {
      // FIN and opcode, then the length in 7, 7+16 or 7+64 bits (the server never masks).
      const len7 = chunk.length - i >= 2 ? chunk[i + 1]! & 127 : 0;
      const size = len7 === 126 ? 4 : len7 === 127 ? 10 : 2;
      if (chunk.length - i < size) {
        w.head = Buffer.from(chunk.subarray(i));
        break;
      }
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
      if (w.frames === 1) w.first = Buffer.from(payload(start, i));
      else if (w.parts.length > 0) {
        w.last = payload(start, i);
        lastStart = -1;
      } else {
        lastStart = start;
        lastEnd = i;
      }
    } else if (w.opcode === 9) w.socket.write(clientFrame(10, payload(start, i)));
    else if (w.opcode === 8) w.closed = true;
    w.parts = [];
    w.opcode = -1;
  }
  if (lastStart >= 0) w.last = chunk.subarray(lastStart, lastEnd);
}

/** Connects, upgrades (a 101, or it fails) and subscribes with `subscribe`. */
function open(port: number, path: string, subscribe: object): Promise<Watcher> {
  return new Promise((resolve, reject) => {
    const headers = { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Key': Buffer.alloc(16, 7).toString('base64'), 'Sec-WebSocket-Version': '13' };
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false });
    req.once('response', (res) => reject(new Error(`bench: the upgrade was answered ${res.statusCode}`))).once('error', reject);
    req.once('upgrade', (_res, socket: Socket, head: Buffer) => {
      const w: Watcher = { socket, frames: 0, opcode: -1, left: 0, parts: [], head: null, first: null, last: null, closed: false };
      socket.setNoDelay(true);
      socket.on('data', (d: Buffer) => onData(w, d)).on('close', () => (w.closed = true));
      socket.write(clientFrame(1, Buffer.from(JSON.stringify({ type: 'subscribe', ...subscribe }))));
      if (head.length > 0) onData(w, head);
      resolve(w);
    });
    req.end();
  });
}

/** A frame's type and seq: all the watchers part checks of it. */
function seen(payload: Buffer | null): { type: string; seq: number } | null {
  if (!payload) return null;
  const { type, seq } = JSON.parse(payload.toString('utf8')) as { type: string; seq: number };
  return { type, seq };
}

function summary(w: Watcher) {
  return { frames: w.frames, first: seen(w.first), last: seen(w.last ?? w.first), closed: w.closed };
}

serve({
  /** Opens watchers `ids` on `path`, 64 at a time (a burst past the listen backlog costs SYN retries). */
  open: async ({ port, path, ids, subscribe }) => {
    const list = ids as number[];
    await pool(list.length, 64, async (k) => watchers.set(list[k]!, await open(Number(port), `${String(path)}&cid=${list[k]!}`, subscribe as object)));
    return watchers.size;
  },
  summary: () => [...watchers.values()].map(summary),
  drop: () => {
    for (const w of watchers.values()) w.socket.destroy();
    watchers.clear();
  },
});
