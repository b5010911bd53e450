import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { StoredEvent } from '../service/store/store.js';
import { monoMs } from './hub-clock.js';
import { TOPIC } from './hub-source.js';

/** What the bench's server process needs of each variant. */
export interface Broadcaster {
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Hands one durable batch, in seq order, to every client. */
  publish(events: readonly StoredEvent[]): void;
  /** Events accepted but not yet handed to every client (only B has such a backlog). */
  readonly backlog: number;
  /** Bytes held in this process for clients that have not taken them (kernel buffers not counted). */
  heldBytes(): number | Promise<number>;
  close(): Promise<void>;
}

function message(e: StoredEvent): string {
  return JSON.stringify({ type: 'event', topic: TOPIC, seq: e.seq, event: e });
}

class Clients {
  readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false });
  readonly set = new Set<WebSocket>();

  accept(req: IncomingMessage, socket: Duplex, head: Buffer, onOpen: (ws: WebSocket) => void = () => {}): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.set.add(ws);
      ws.on('close', () => this.set.delete(ws));
      // A peer reset is what a stalled client's end looks like; nothing to do but forget it.
      ws.on('error', () => {});
      onOpen(ws);
    });
  }

  /** ws's own count: its sender's queue plus the socket's unwritten buffer. */
  heldBytes(): number {
    let n = 0;
    // Only open ones: ws counts a send after close in bufferedAmount without keeping it.
    for (const ws of this.set) if (ws.readyState === ws.OPEN) n += ws.bufferedAmount;
    return n;
  }

  async close(): Promise<void> {
    for (const ws of this.set) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

/**
 * A: the naive loop. `ws.send` per client per event, never waiting: a client that stops
 * reading is never noticed, and everything sent to it piles up in this process.
 */
export class NaiveBroadcaster implements Broadcaster {
  readonly #clients = new Clients();
  readonly backlog = 0;

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.#clients.accept(req, socket, head);
  }

  publish(events: readonly StoredEvent[]): void {
    for (const e of events) {
      const json = message(e);
      for (const ws of this.#clients.set) ws.send(json);
    }
  }

  heldBytes(): number {
    return this.#clients.heldBytes();
  }

  close(): Promise<void> {
    return this.#clients.close();
  }
}

const SEND_TIMEOUT_MS = 2000;
/** The hub's own heartbeat settings, so the only difference is where the heartbeat runs. */
const PING_INTERVAL_MS = 1000;
const PONG_TIMEOUT_MS = 3000;

/**
 * B: the incident's fix. One loop takes events in order and, for each, awaits every client's
 * send callback in turn, giving up on a client (terminating it) after 2 s. The keepalive ran
 * on that same loop, between events, so a loop stuck in sends also stops pinging and stops
 * noticing missed pongs: that is modelled here as it was.
 */
export class SerialAwaitBroadcaster implements Broadcaster {
  readonly #clients = new Clients();
  readonly #lastPong = new Map<WebSocket, number>();
  #queue: StoredEvent[] = [];
  #head = 0;
  #wake: (() => void) | null = null;
  #stopped = false;
  #nextPing = monoMs() + PING_INTERVAL_MS;
  readonly #done: Promise<void>;
  /** Clients this loop terminated, by why: it has no other way to let one go. */
  readonly terminated = { send_timeout: 0, pong_missed: 0 };

  constructor() {
    this.#done = this.#loop();
  }

  get backlog(): number {
    return this.#queue.length - this.#head;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.#clients.accept(req, socket, head, (ws) => {
      this.#lastPong.set(ws, monoMs());
      ws.on('pong', () => this.#lastPong.set(ws, monoMs()));
      ws.on('close', () => this.#lastPong.delete(ws));
    });
  }

  publish(events: readonly StoredEvent[]): void {
    this.#queue.push(...events);
    this.#wake?.();
  }

  heldBytes(): number {
    return this.#clients.heldBytes();
  }

  async close(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#clients.close();
    await this.#done;
  }

  async #loop(): Promise<void> {
    while (!this.#stopped) {
      const e = this.#queue[this.#head];
      if (e) {
        this.#head += 1;
        // Drop what has been sent now and then, so a long backlog does not cost O(n) per event.
        if (this.#head > 4096) {
          this.#queue = this.#queue.slice(this.#head);
          this.#head = 0;
        }
        const json = message(e);
        for (const ws of [...this.#clients.set]) await sendWithTimeout(ws, json, () => (this.terminated.send_timeout += 1));
      } else {
        await this.#idle(this.#nextPing - monoMs());
      }
      if (monoMs() >= this.#nextPing) this.#heartbeat();
    }
  }

  #heartbeat(): void {
    const now = monoMs();
    this.#nextPing = now + PING_INTERVAL_MS;
    for (const ws of this.#clients.set) {
      // Terminated but not yet closed: not to be counted twice.
      if (ws.readyState !== ws.OPEN) continue;
      if (now - (this.#lastPong.get(ws) ?? now) > PONG_TIMEOUT_MS) {
        this.terminated.pong_missed += 1;
        ws.terminate();
      } else {
        ws.ping();
      }
    }
  }

  #idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => wake(), Math.max(0, ms));
      const wake = () => {
        clearTimeout(timer);
        this.#wake = null;
        resolve();
      };
      this.#wake = wake;
    });
  }
}

/** Resolves when `ws` has taken the message, or after 2 s, having terminated it. */
function sendWithTimeout(ws: WebSocket, json: string, onTimeout: () => void): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      if (ws.readyState === ws.OPEN) onTimeout();
      ws.terminate();
      resolve();
    }, SEND_TIMEOUT_MS);
    ws.send(json, () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
