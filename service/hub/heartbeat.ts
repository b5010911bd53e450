// Pings, and the checks that find slow clients, on a timer of their own: never behind a broadcast.
import type { Logger } from 'pino';
import type { Client, EvictionReason } from './client.js';

export interface HeartbeatOptions {
  pingIntervalMs: number;
  pongTimeoutMs: number;
  sendTimeoutMs: number;
  queueBytes: number;
  logger: Logger;
  clients: () => Iterable<Client>;
  evict: (client: Client, reason: EvictionReason) => void;
}

/**
 * Three checks, whatever the event rate, even none: a missed pong, a socket not drained
 * within the send timeout, and (warned of once) a client past half its bound. A stalled peer's
 * kernel buffers absorb megabytes before any queue grows, so the byte bound alone finds nothing.
 */
export class Heartbeat {
  readonly #opts: HeartbeatOptions;
  /** How often the beat runs, and when it last did. */
  readonly #beat: number;
  #lastBeat: number;
  readonly #timer: NodeJS.Timeout;

  constructor(opts: HeartbeatOptions) {
    this.#opts = opts;
    this.#beat = Math.max(10, Math.min(250, opts.pingIntervalMs / 4, opts.sendTimeoutMs / 4));
    this.#lastBeat = performance.now();
    this.#timer = setInterval(() => this.#tick(), this.#beat);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #tick(): void {
    const { pongTimeoutMs, sendTimeoutMs, pingIntervalMs, queueBytes, logger } = this.#opts;
    const now = performance.now();
    // A tick this late means this process was busy, not reading: the pongs and drains that
    // came in meanwhile are still unread (timers run before I/O), so that time is not the
    // clients'. Without this, a 2 s stall of the hub's own loop evicts every healthy client.
    const late = now - this.#lastBeat - this.#beat;
    this.#lastBeat = now;
    const excuse = late > this.#beat ? late : 0;
    for (const c of [...this.#opts.clients()]) {
      if (c.closed) continue;
      if (excuse > 0) c.excuse(excuse, now);
      if (now - c.lastPong > pongTimeoutMs) {
        this.#opts.evict(c, 'pong_missed');
        continue;
      }
      const blocked = c.blockedSince;
      if (blocked !== null && now - blocked > sendTimeoutMs) {
        this.#opts.evict(c, 'send_timeout');
        continue;
      }
      const behind = c.pendingBytes > queueBytes / 2 || (blocked !== null && now - blocked > sendTimeoutMs / 2);
      if (behind && !c.warned) {
        c.warned = true;
        logger.warn({ clientId: c.id, pendingBytes: c.pendingBytes, blockedMs: blocked === null ? 0 : Math.round(now - blocked) }, 'websocket client falling behind');
      } else if (!behind) c.warned = false;
      if (now - c.lastPing >= pingIntervalMs) {
        c.lastPing = now;
        c.ws.ping();
      }
    }
  }
}
