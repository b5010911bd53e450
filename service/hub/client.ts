// One connection's outbound side: a bounded queue in front of the socket, and who it is.
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Principal } from '../auth/tokens.js';
import type { Frame } from './frames.js';

export type EvictionReason = 'queue_full' | 'send_timeout' | 'pong_missed';

export interface ClientOptions {
  queueBytes: number;
  onDelivered: (appendedAt: number) => void;
  /** Client messages per second, with bursts of twice that. */
  messagesPerSecond: number;
}

/**
 * One connection's outbound side. Frames go straight to the socket while it drains; once the
 * socket pushes back they wait here, up to `queueBytes` (what the socket itself holds counts
 * too). The hub never waits on a client: `sendAll` returns at once, and a client that cannot keep
 * up is the hub's to evict, not the other clients' problem.
 */
export class Client {
  readonly id: number;
  readonly ws: WebSocket;
  readonly socket: Duplex;
  readonly principal: Principal;
  readonly #opts: ClientOptions;
  #queue: Frame[] = [];
  /** Where each slot's frame waits in `#queue`, while it waits. */
  #slots = new Map<string, number>();
  #queuedBytes = 0;
  /** performance.now() since when the socket has been pushing back (null: it is not). */
  #blockedSince: number | null = null;
  lastPong: number;
  lastPing = 0;
  warned = false;
  closed = false;
  /** Token bucket for the client's own messages. */
  #tokens: number;
  #tokensAt: number;

  constructor(id: number, ws: WebSocket, socket: Duplex, principal: Principal, opts: ClientOptions, now: number) {
    this.id = id;
    this.ws = ws;
    this.socket = socket;
    this.principal = principal;
    this.#opts = opts;
    this.lastPong = now;
    this.#tokens = opts.messagesPerSecond * 2;
    this.#tokensAt = now;
    socket.on('drain', () => this.#flush());
  }

  /** Takes one token for a message from the client; false when it is over its rate. */
  takeToken(now: number): boolean {
    const rate = this.#opts.messagesPerSecond;
    this.#tokens = Math.min(rate * 2, this.#tokens + ((now - this.#tokensAt) / 1000) * rate);
    this.#tokensAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Bytes this client holds that the peer has not taken: our queue plus the socket's buffer. */
  get pendingBytes(): number {
    return this.#queuedBytes + this.socket.writableLength;
  }

  get blockedSince(): number | null {
    return this.#blockedSince;
  }

  /**
   * Queues frames, in order, written together: one syscall for a batch rather than one per
   * frame, which is most of what a broadcast costs. False when they would pass the bound (the
   * caller evicts); then only the frames up to the one that crosses it are taken, so what the
   * client holds stays within the bound plus one frame.
   */
  sendAll(frames: readonly Frame[]): boolean {
    if (this.closed) return true;
    let room = this.#opts.queueBytes - this.pendingBytes;
    let take = 0;
    while (take < frames.length && room >= 0) room -= frames[take++]!.bytes;
    const batch = take === frames.length ? frames : frames.slice(0, take);
    if (this.#queue.length === 0 && !this.socket.writableNeedDrain) {
      this.#write(batch);
    } else {
      for (const f of batch) this.#enqueue(f);
    }
    return take === frames.length && this.pendingBytes <= this.#opts.queueBytes;
  }

  /** Resolves when the peer has taken most of what is pending (or the client is gone). */
  async roomFor(bytes: number): Promise<void> {
    while (!this.closed && this.pendingBytes + bytes > this.#opts.queueBytes / 2 && this.pendingBytes > 0) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.socket.off('drain', done);
          this.socket.off('close', done);
          resolve();
        };
        this.socket.on('drain', done);
        this.socket.on('close', done);
      });
    }
  }

  /** Takes `ms` the hub itself was not running off the client's pong and drain clocks. */
  excuse(ms: number, now: number): void {
    this.lastPong = Math.min(now, this.lastPong + ms);
    if (this.#blockedSince !== null) this.#blockedSince = Math.min(now, this.#blockedSince + ms);
  }

  /** Drops everything queued: the client is being evicted. */
  release(): void {
    this.closed = true;
    this.#queue = [];
    this.#slots.clear();
    this.#queuedBytes = 0;
  }

  /** Queues a frame; one of a slot already waiting is replaced in its place, not queued behind. */
  #enqueue(f: Frame): void {
    const at = f.slot === null ? undefined : this.#slots.get(f.slot);
    if (at !== undefined) {
      this.#queuedBytes += f.bytes - this.#queue[at]!.bytes;
      this.#queue[at] = f;
      return;
    }
    if (f.slot !== null) this.#slots.set(f.slot, this.#queue.length);
    this.#queue.push(f);
    this.#queuedBytes += f.bytes;
  }

  #flush(): void {
    this.#blockedSince = null;
    if (this.closed || this.#queue.length === 0) return;
    const frames = this.#queue;
    this.#queue = [];
    this.#slots.clear();
    this.#queuedBytes = 0;
    this.#write(frames);
  }

  /** Writes frames in one go (cork: one syscall for many small frames). */
  #write(frames: readonly Frame[]): void {
    const stamps = frames.flatMap((f) => (f.appendedAt === null ? [] : [f.appendedAt]));
    this.socket.cork();
    let ok = true;
    frames.forEach((f, i) => {
      f.chunks.forEach((chunk, j) => {
        const last = i === frames.length - 1 && j === f.chunks.length - 1;
        ok = this.socket.write(chunk, last && stamps.length > 0 ? () => stamps.forEach((t) => this.#opts.onDelivered(t)) : undefined);
      });
    });
    this.socket.uncork();
    if (!ok && this.#blockedSince === null) this.#blockedSince = performance.now();
  }
}
