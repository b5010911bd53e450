// The WebSocket hub (docs/protocol.md): connections, and the feeds they subscribe to, composed.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import * as ws from 'ws';
import type { WebSocket } from 'ws';
import type { Principal, TokenRegistry } from '../auth/tokens.js';
import type { Engine } from '../engine/engine.js';
import { RunstateError, asRunstateError } from '../errors.js';
import type { RunRecord, StoredEvent } from '../store/store.js';
import { Client, type EvictionReason } from './client.js';
import { RunFanout } from './fanout.js';
import { CLOSE, type Frame, frames } from './frames.js';
import { Heartbeat } from './heartbeat.js';
import { HubMetrics } from './metrics.js';
import { type ClientMessage, type Mode, parseClientMessage } from './protocol.js';
import { RemotePull } from './remote.js';
import { SiteFeed } from './sites.js';
import type { Topic } from './topics.js';
import { admit } from './upgrade.js';
import { ViewFeed } from './views.js';

const { WebSocketServer } = ws;

export interface HubOptions {
  engine: Engine;
  tokens: TokenRegistry;
  logger: Logger;
  registry: Registry;
  /** Origins browsers may connect from, besides the service's own. */
  allowedOrigins?: readonly string[];
  /** [256 KiB] What one client may hold that its peer has not taken. */
  queueBytes?: number;
  /** [2000] A socket that does not drain for this long is evicted. */
  sendTimeoutMs?: number;
  /** [1000] How often each client is pinged. */
  pingIntervalMs?: number;
  /** [3000] A client whose last pong is older than this is evicted. */
  pongTimeoutMs?: number;
  /** [65536] Largest frame a client may send (bigger: closed with 1009). */
  maxPayload?: number;
  /** [20] Client messages per second, with bursts of twice that. */
  messagesPerSecond?: number;
  /** [250] How often site subscribers get the runs that changed. */
  siteIntervalMs?: number;
  /** [100] Topics one client may follow (a topic in both modes counts twice). */
  maxSubscriptions?: number;
  /**
   * Whether this instance works the run and so publishes its events itself. Events of other
   * runs are read from the store on a hint (`remoteAppended`) and every second.
   */
  isLocal?: (runId: string) => boolean;
}

const POSITIVE = ['queueBytes', 'sendTimeoutMs', 'pingIntervalMs', 'pongTimeoutMs', 'maxPayload', 'messagesPerSecond', 'siteIntervalMs', 'maxSubscriptions'] as const;

/** A client's subscriptions: mode and topic name → topic. */
type Subscriptions = Map<string, { mode: Mode; topic: Topic }>;

const key = (mode: Mode, topic: Topic) => `${mode} ${topic.name}`;

/**
 * One connection = one `Client`, a bounded queue the hub never waits on. Messages go to one of
 * three feeds: run events (`fanout.ts`), run views (`views.ts`), site runs (`sites.ts`); what
 * other instances append comes in through `remote.ts`; slow clients are found by `heartbeat.ts`.
 */
export class Hub {
  readonly #opts: Required<HubOptions>;
  readonly #wss: ws.WebSocketServer;
  readonly #clients = new Map<Client, Subscriptions>();
  readonly #metrics: HubMetrics;
  readonly #fanout: RunFanout;
  readonly #views: ViewFeed;
  readonly #sites: SiteFeed;
  readonly #remote: RemotePull;
  readonly #heartbeat: Heartbeat;
  #nextId = 1;
  #peakPending = 0;

  constructor(opts: HubOptions) {
    this.#opts = {
      allowedOrigins: [],
      queueBytes: 256 * 1024,
      sendTimeoutMs: 2000,
      pingIntervalMs: 1000,
      pongTimeoutMs: 3000,
      maxPayload: 64 * 1024,
      messagesPerSecond: 20,
      siteIntervalMs: 250,
      maxSubscriptions: 100,
      isLocal: () => true,
      ...opts,
    };
    for (const name of POSITIVE) {
      const v = this.#opts[name];
      if (!Number.isFinite(v) || v <= 0) throw new TypeError(`Expected \`${name}\` to be a positive number, got ${String(v)}.`);
    }
    const { engine, logger } = this.#opts;
    const send = (client: Client, batch: readonly Frame[]) => this.#send(client, batch);
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: this.#opts.maxPayload, perMessageDeflate: false, clientTracking: false });
    this.#metrics = new HubMetrics(opts.registry, () => this.#clients.size, () => {
      let n = 0;
      for (const c of this.#clients.keys()) n += c.pendingBytes;
      return n;
    });
    this.#fanout = new RunFanout({ engine, send });
    this.#views = new ViewFeed({ engine, logger, send });
    this.#sites = new SiteFeed({ engine, logger, send, intervalMs: this.#opts.siteIntervalMs });
    this.#remote = new RemotePull({
      engine,
      logger,
      isLocal: this.#opts.isLocal,
      followed: () => new Set([...this.#fanout.runIds(), ...this.#views.runIds()]),
      lowestSeq: (runId) => {
        const seqs = [this.#fanout.lowestSeq(runId), this.#views.lowestSeq(runId)].filter((s) => s !== undefined);
        return seqs.length === 0 ? undefined : Math.min(...seqs);
      },
      publish: (runId, events) => this.publish({ runId }, events),
    });
    this.#heartbeat = new Heartbeat({
      ...this.#opts,
      clients: () => this.#clients.keys(),
      evict: (client, reason) => this.#evict(client, reason),
    });
  }

  get clients(): number {
    return this.#clients.size;
  }

  /** The most any one client has held unread since the hub started: bounded by `queueBytes` plus one frame. */
  get peakPendingBytes(): number {
    return this.#peakPending;
  }

  /** Handles an HTTP upgrade: checks path, token and origin before anything opens. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const principal = admit(req, socket, this.#opts);
    if (principal) this.#wss.handleUpgrade(req, socket, head, (w) => this.#open(w, socket, principal));
  }

  /** The engine's durable batches, in seq order per run (repeats are skipped per subscriber). */
  publish(run: Pick<RunRecord, 'runId'>, events: readonly StoredEvent[]): void {
    if (events.length === 0) return;
    this.#sites.changed(run.runId);
    this.#fanout.publish(run.runId, events, performance.now());
    this.#views.publish(run.runId, events);
  }

  /** Another instance appended events to a run up to `lastSeq`. */
  remoteAppended(runId: string, lastSeq: number): void {
    this.#sites.changed(runId);
    this.#remote.appended(runId, lastSeq);
  }

  /** Reads every followed run that another instance works, for events the hints missed. */
  resyncRemote(): void {
    this.#remote.resync();
  }

  async close(): Promise<void> {
    this.#heartbeat.stop();
    this.#remote.stop();
    this.#sites.stop();
    this.#views.clear();
    this.#fanout.clear();
    for (const client of [...this.#clients.keys()]) {
      client.release();
      client.ws.close(CLOSE.shuttingDown.code, CLOSE.shuttingDown.reason);
      client.ws.terminate();
    }
    this.#clients.clear();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }

  // --- connections ----------------------------------------------------------------------

  #open(w: WebSocket, socket: Duplex, principal: Principal): void {
    const client = new Client(this.#nextId++, w, socket, principal, {
      queueBytes: this.#opts.queueBytes,
      messagesPerSecond: this.#opts.messagesPerSecond,
      onDelivered: (t) => this.#metrics.delivery.observe((performance.now() - t) / 1000),
    }, performance.now());
    this.#clients.set(client, new Map());
    w.on('pong', () => (client.lastPong = performance.now()));
    w.on('message', (data, isBinary) => {
      if (isBinary) return this.#error(client, new RunstateError('BAD_REQUEST', 'Send text frames of JSON.'));
      if (!client.takeToken(performance.now())) return this.#error(client, new RunstateError('RATE_LIMITED', `At most ${this.#opts.messagesPerSecond} messages per second.`));
      this.#onMessage(client, (data as Buffer).toString('utf8'));
    });
    w.on('close', () => this.#drop(client));
    w.on('error', (err) => this.#opts.logger.debug({ err, clientId: client.id }, 'websocket error'));
  }

  #drop(client: Client): void {
    client.release();
    const subs = this.#clients.get(client);
    if (!subs) return;
    this.#clients.delete(client);
    for (const { mode, topic } of subs.values()) this.#leave(client, mode, topic);
  }

  #evict(client: Client, reason: EvictionReason): void {
    if (client.closed) return;
    this.#metrics.evictions.inc({ reason });
    this.#opts.logger.warn({ clientId: client.id, reason, pendingBytes: client.pendingBytes }, 'websocket client evicted: slow consumer');
    // A close frame where it can still get through; the connection ends either way.
    const canWrite = !client.socket.writableNeedDrain;
    client.release();
    if (canWrite) client.ws.close(CLOSE.slowConsumer.code, CLOSE.slowConsumer.reason);
    client.ws.terminate();
    this.#drop(client);
  }

  #send(client: Client, batch: readonly Frame[]): void {
    const ok = client.sendAll(batch);
    this.#peakPending = Math.max(this.#peakPending, client.pendingBytes);
    if (!ok) this.#evict(client, 'queue_full');
  }

  #error(client: Client, err: RunstateError): void {
    this.#send(client, [frames.error(err)]);
  }

  // --- messages -------------------------------------------------------------------------

  #onMessage(client: Client, text: string): void {
    const subs = this.#clients.get(client);
    if (!subs) return;
    let msg: ClientMessage;
    try {
      msg = parseClientMessage(text);
    } catch (err) {
      if (err instanceof RunstateError) return this.#error(client, err);
      throw err;
    }
    if (msg.type === 'unsubscribe') {
      for (const mode of msg.mode === undefined ? (['events', 'view'] as const) : [msg.mode]) {
        if (subs.delete(key(mode, msg.topic))) this.#leave(client, mode, msg.topic);
      }
      return;
    }
    const k = key(msg.mode, msg.topic);
    if (!subs.has(k) && subs.size >= this.#opts.maxSubscriptions) {
      return this.#error(client, new RunstateError('TOO_MANY_SUBSCRIPTIONS', `At most ${this.#opts.maxSubscriptions} topics per connection.`));
    }
    subs.set(k, { mode: msg.mode, topic: msg.topic });
    const { topic } = msg;
    const work =
      msg.mode === 'view'
        ? this.#views.subscribe(client, msg.topic, msg.maxHz)
        : topic.kind === 'run'
          ? this.#fanout.subscribe(client, topic, msg.afterSeq)
          : this.#sites.subscribe(client, topic);
    work.catch((err: unknown) => {
      subs.delete(k);
      this.#leave(client, msg.mode, topic);
      if (err instanceof RunstateError) return this.#error(client, err);
      const refused = asRunstateError(err);
      // The database away: the client is told so and may subscribe again; not a fault of ours to log as one.
      if (refused.code === 'DATABASE_UNAVAILABLE') return this.#error(client, refused);
      this.#opts.logger.error({ err, clientId: client.id, topic: topic.name }, 'subscribe failed');
      this.#error(client, new RunstateError('INTERNAL', 'The subscription could not be set up.'));
    });
  }

  #leave(client: Client, mode: Mode, topic: Topic): void {
    if (topic.kind !== 'run') this.#sites.unsubscribe(client, topic.name);
    else if (mode === 'view') this.#views.unsubscribe(client, topic.id);
    else this.#fanout.unsubscribe(client, topic.id);
  }
}
