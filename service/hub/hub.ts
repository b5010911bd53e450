import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import * as ws from 'ws';
import type { WebSocket } from 'ws';
import { canSeeSite, type Principal, TokenRegistry } from '../auth/tokens.js';
import type { Engine } from '../engine/engine.js';
import { isRunId } from '../ids.js';
import type { RunRecord, StoredEvent } from '../store/store.js';
import { Client, type EvictionReason, type Frame } from './client.js';
import { HubMetrics } from './metrics.js';
import { RunstateError, asRunstateError, wsClose, wsErrorFrame, httpError } from '../errors.js';
import { parseClientMessage, type Topic } from './protocol.js';
import type { Registry } from 'prom-client';

// ws exports its frame builder; @types/ws does not declare it.
const Sender = (ws as unknown as { Sender: { frame(data: Buffer, o: object): Buffer[] } }).Sender;
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
  /** [100] Topics one client may follow. */
  maxSubscriptions?: number;
  /**
   * Whether this instance works the run and so publishes its events itself. Events of other
   * runs are read from the store on a hint (`remoteAppended`) and every second.
   */
  isLocal?: (runId: string) => boolean;
}

/** Live events held for one syncing subscriber at most; past that the replay re-reads them. */
const SYNC_BUFFER = 5000;
const REPLAY_PAGE = 200;

interface Subscription {
  topic: Topic;
  /** Live events wait here while the snapshot or the replay is being sent. */
  syncing: StoredEvent[] | null;
  /** The buffer overflowed since the replay last read the log: read once more before going live. */
  overflowed: boolean;
  /** The last seq this client has been sent on this topic. */
  seq: number;
}

interface Conn {
  client: Client;
  principal: Principal;
  subs: Map<string, Subscription>;
}

const WS_PATH = '/ws';

/**
 * The WebSocket hub (DESIGN §5). Fan-out never waits on a client: each message is serialised
 * and framed once, then handed to every subscriber's bounded queue. Slow clients are found by
 * three independent checks on a timer of their own (a bound on what they hold, a send timeout,
 * a missed pong), so detection does not depend on the event rate, and heartbeats never sit
 * behind broadcasts.
 */
export class Hub {
  readonly #opts: Required<Omit<HubOptions, 'allowedOrigins'>> & { allowedOrigins: readonly string[] };
  /** Runs being read from the store for remote subscribers: run id → read again when done. */
  readonly #pulling = new Map<string, boolean>();
  readonly #wss: ws.WebSocketServer;
  readonly #conns = new Map<Client, Conn>();
  /** Subscribers per topic name. */
  readonly #topics = new Map<string, Set<Conn>>();
  /** Runs with changes site subscribers have not been told of. */
  readonly #dirtyRuns = new Set<string>();
  readonly #metrics: HubMetrics;
  readonly #timers: NodeJS.Timeout[] = [];
  #nextId = 1;
  #peakPending = 0;
  /** How often the heartbeat runs, and when it last did. */
  readonly #beat: number;
  #lastBeat: number;

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
    for (const key of ['queueBytes', 'sendTimeoutMs', 'pingIntervalMs', 'pongTimeoutMs', 'maxPayload', 'messagesPerSecond', 'siteIntervalMs', 'maxSubscriptions'] as const) {
      const v = this.#opts[key];
      if (!Number.isFinite(v) || v <= 0) throw new TypeError(`Expected \`${key}\` to be a positive number, got ${String(v)}.`);
    }
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: this.#opts.maxPayload, perMessageDeflate: false, clientTracking: false });
    this.#metrics = new HubMetrics(opts.registry, () => this.#conns.size, () => {
      let n = 0;
      for (const c of this.#conns.keys()) n += c.pendingBytes;
      return n;
    });
    this.#beat = Math.max(10, Math.min(250, this.#opts.pingIntervalMs / 4, this.#opts.sendTimeoutMs / 4));
    this.#lastBeat = performance.now();
    this.#timers.push(setInterval(() => this.#heartbeat(), this.#beat));
    this.#timers.push(setInterval(() => this.#flushSites(), this.#opts.siteIntervalMs));
    // NOTIFY is a hint; this catches whatever a hint did not bring.
    this.#timers.push(setInterval(() => this.resyncRemote(), 1000));
    for (const t of this.#timers) t.unref();
  }

  get clients(): number {
    return this.#conns.size;
  }

  /** The most any one client has held unread since the hub started: bounded by `queueBytes` plus one frame. */
  get peakPendingBytes(): number {
    return this.#peakPending;
  }

  /** Handles an HTTP upgrade: checks path, token and origin before anything opens. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== WS_PATH) return refuse(socket, new RunstateError('NOT_FOUND', `No WebSocket at ${url.pathname}; connect to ${WS_PATH}.`));
    const token = url.searchParams.get('token') ?? TokenRegistry.fromHeader(req.headers.authorization);
    const principal = this.#opts.tokens.authenticate(token ?? undefined);
    if (!principal) return refuse(socket, new RunstateError('UNAUTHORIZED'));
    const origin = req.headers.origin;
    if (origin !== undefined && !this.#originAllowed(origin, req.headers.host)) return refuse(socket, new RunstateError('FORBIDDEN', 'This origin may not open a WebSocket here.'));
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#open(ws, socket, principal));
  }

  /** The engine's durable batches, in seq order per run (repeats are skipped per subscriber). */
  publish(run: Pick<RunRecord, 'runId'>, events: readonly StoredEvent[]): void {
    if (events.length === 0) return;
    this.#dirtyRuns.add(run.runId);
    const subs = this.#topics.get(`run:${run.runId}`);
    if (!subs || subs.size === 0) return;
    const appendedAt = performance.now();
    const topic = `run:${run.runId}`;
    // Framed once, on first need, and shared by every subscriber.
    const frames: (Frame | undefined)[] = new Array<Frame | undefined>(events.length);
    // Client by client, the whole batch in one write: a socket write per client per event is
    // what limits fan-out to a thousand clients, not the framing.
    for (const conn of subs) {
      const sub = conn.subs.get(topic);
      if (!sub) continue;
      if (sub.syncing) {
        for (const e of events) {
          if (sub.syncing.length >= SYNC_BUFFER) {
            sub.syncing = [];
            sub.overflowed = true;
          }
          sub.syncing.push(e);
        }
        continue;
      }
      const batch: Frame[] = [];
      events.forEach((e, i) => {
        if (e.seq <= sub.seq) return;
        batch.push((frames[i] ??= this.#frame({ type: 'event', topic, seq: e.seq, event: e }, appendedAt)));
        sub.seq = e.seq;
      });
      if (batch.length > 0) this.#sendAll(conn, batch);
    }
  }

  /** Another instance appended events to a run up to `lastSeq`. */
  remoteAppended(runId: string, lastSeq: number): void {
    this.#dirtyRuns.add(runId);
    const subs = this.#topics.get(`run:${runId}`);
    if (subs && [...subs].some((c) => (c.subs.get(`run:${runId}`)?.seq ?? lastSeq) < lastSeq)) this.#pull(runId);
  }

  /** Reads every followed run that another instance works, for events the hints missed. */
  resyncRemote(): void {
    for (const name of this.#topics.keys()) {
      if (!name.startsWith('run:')) continue;
      const runId = name.slice('run:'.length);
      if (!this.#opts.isLocal(runId)) this.#pull(runId);
    }
  }

  /** Publishes a remote run's events after the lowest seq any of its subscribers has. */
  #pull(runId: string): void {
    if (this.#pulling.has(runId)) {
      this.#pulling.set(runId, true);
      return;
    }
    this.#pulling.set(runId, false);
    const work = async () => {
      do {
        this.#pulling.set(runId, false);
        for (;;) {
          // Subscribers still syncing read the store themselves; the rest say where to start.
          const subs = [...(this.#topics.get(`run:${runId}`) ?? [])].map((c) => c.subs.get(`run:${runId}`)).filter((x): x is Subscription => x !== undefined && !x.syncing);
          if (subs.length === 0) break;
          const from = Math.min(...subs.map((x) => x.seq));
          const page = await this.#opts.engine.store.readEvents(runId, from, REPLAY_PAGE * 5);
          if (page.length === 0) break;
          this.publish({ runId }, page);
          if (page.length < REPLAY_PAGE * 5) break;
        }
      } while (this.#pulling.get(runId));
    };
    work()
      .catch((err: unknown) => {
        // The database away: the next resync reads again; the health state says why, once.
        if (asRunstateError(err).code === 'DATABASE_UNAVAILABLE') this.#opts.logger.debug({ err, runId }, 'reading a remote run failed');
        else this.#opts.logger.error({ err, runId }, 'reading a remote run failed');
      })
      .finally(() => this.#pulling.delete(runId));
  }

  async close(): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    for (const conn of [...this.#conns.values()]) {
      conn.client.release();
      const bye = wsClose('UNAVAILABLE');
      conn.client.ws.close(bye.code, bye.reason);
      conn.client.ws.terminate();
    }
    this.#conns.clear();
    this.#topics.clear();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }

  // --- connections ----------------------------------------------------------------------

  #open(ws: WebSocket, socket: Duplex, principal: Principal): void {
    const client = new Client(this.#nextId++, ws, socket, {
      queueBytes: this.#opts.queueBytes,
      onDelivered: (t) => this.#metrics.delivery.observe((performance.now() - t) / 1000),
    }, performance.now(), this.#opts.messagesPerSecond * 2);
    const conn: Conn = { client, principal, subs: new Map() };
    this.#conns.set(client, conn);
    ws.on('pong', () => (client.lastPong = performance.now()));
    ws.on('message', (data, isBinary) => {
      if (isBinary) return this.#error(conn, new RunstateError('BAD_REQUEST', 'Send text frames of JSON.'));
      if (!this.#takeToken(client)) return this.#error(conn, new RunstateError('RATE_LIMITED', `At most ${this.#opts.messagesPerSecond} messages per second.`));
      this.#onMessage(conn, (data as Buffer).toString('utf8'));
    });
    ws.on('close', () => this.#drop(conn));
    ws.on('error', (err) => this.#opts.logger.debug({ err, clientId: client.id }, 'websocket error'));
  }

  #drop(conn: Conn): void {
    conn.client.release();
    if (!this.#conns.delete(conn.client)) return;
    for (const name of conn.subs.keys()) this.#unlink(conn, name);
    conn.subs.clear();
  }

  #unlink(conn: Conn, name: string): void {
    const set = this.#topics.get(name);
    set?.delete(conn);
    if (set?.size === 0) this.#topics.delete(name);
  }

  #evict(conn: Conn, reason: EvictionReason): void {
    const { client } = conn;
    if (client.closed) return;
    this.#metrics.evictions.inc({ reason });
    this.#opts.logger.warn({ clientId: client.id, reason, pendingBytes: client.pendingBytes }, 'websocket client evicted: slow consumer');
    // A close frame where it can still get through; the connection ends either way.
    const canWrite = !client.socket.writableNeedDrain;
    client.release();
    if (canWrite) client.ws.close(wsClose('SLOW_CONSUMER').code, 'slow consumer');
    client.ws.terminate();
    this.#drop(conn);
  }

  #send(conn: Conn, frame: Frame): void {
    this.#sendAll(conn, [frame]);
  }

  #sendAll(conn: Conn, frames: readonly Frame[]): void {
    const ok = conn.client.sendAll(frames);
    this.#peakPending = Math.max(this.#peakPending, conn.client.pendingBytes);
    if (!ok) this.#evict(conn, 'queue_full');
  }

  #frame(message: unknown, appendedAt: number | null = null): Frame {
    const payload = Buffer.from(JSON.stringify(message));
    const chunks = Sender.frame(payload, { fin: true, opcode: 1, mask: false, readOnly: true, rsv1: false });
    return { chunks, bytes: chunks.reduce((n, c) => n + c.length, 0), appendedAt };
  }

  #error(conn: Conn, err: RunstateError): void {
    this.#send(conn, this.#frame(wsErrorFrame(err)));
  }

  #takeToken(client: Client): boolean {
    const now = performance.now();
    const rate = this.#opts.messagesPerSecond;
    client.tokens = Math.min(rate * 2, client.tokens + ((now - client.tokensAt) / 1000) * rate);
    client.tokensAt = now;
    if (client.tokens < 1) return false;
    client.tokens -= 1;
    return true;
  }

  #originAllowed(origin: string, host: string | undefined): boolean {
    if (this.#opts.allowedOrigins.includes(origin)) return true;
    try {
      return host !== undefined && new URL(origin).host === host;
    } catch {
      return false;
    }
  }

  // --- messages -------------------------------------------------------------------------

  #onMessage(conn: Conn, text: string): void {
    let msg;
    try {
      msg = parseClientMessage(text);
    } catch (err) {
      if (err instanceof RunstateError) return this.#error(conn, err);
      throw err;
    }
    if (msg.type === 'unsubscribe') {
      conn.subs.delete(msg.topic.name);
      this.#unlink(conn, msg.topic.name);
      return;
    }
    if (!conn.subs.has(msg.topic.name) && conn.subs.size >= this.#opts.maxSubscriptions) {
      return this.#error(conn, new RunstateError('TOO_MANY_SUBSCRIPTIONS', `At most ${this.#opts.maxSubscriptions} topics per connection.`));
    }
    const work = msg.topic.kind === 'run' ? this.#subscribeRun(conn, msg.topic, msg.afterSeq) : this.#subscribeSite(conn, msg.topic);
    work.catch((err: unknown) => {
      conn.subs.delete(msg.topic.name);
      this.#unlink(conn, msg.topic.name);
      if (err instanceof RunstateError) return this.#error(conn, err);
      const refused = asRunstateError(err);
      // The database away: the client is told so and may subscribe again; not a fault of ours to log as one.
      if (refused.code === 'DATABASE_UNAVAILABLE') return this.#error(conn, refused);
      this.#opts.logger.error({ err, clientId: conn.client.id, topic: msg.topic.name }, 'subscribe failed');
      this.#error(conn, new RunstateError('INTERNAL', 'The subscription could not be set up.'));
    });
  }

  /**
   * The hand-over: the subscription is registered (buffering live events) before the
   * snapshot or replay is read, and live events are let through only past the last seq the
   * client was sent. Nothing falls between the two, and nothing is sent twice.
   */
  async #subscribeRun(conn: Conn, topic: Topic, afterSeq: number | undefined): Promise<void> {
    if (!isRunId(topic.id)) throw new RunstateError('INVALID_RUN_ID', `${JSON.stringify(topic.id)} is not a run id.`);
    const sub: Subscription = { topic, syncing: [], overflowed: false, seq: 0 };
    conn.subs.set(topic.name, sub);
    let set = this.#topics.get(topic.name);
    if (!set) this.#topics.set(topic.name, (set = new Set()));
    set.add(conn);

    const durable = await this.#opts.engine.durableView(topic.id);
    if (!durable) throw new RunstateError('RUN_NOT_FOUND', `No run with id ${topic.id}.`);
    if (!canSeeSite(conn.principal, durable.run.site_id)) throw new RunstateError('FORBIDDEN', `This token may not reach run ${topic.id}.`);
    if (conn.subs.get(topic.name) !== sub) return; // unsubscribed meanwhile

    if (afterSeq === undefined || afterSeq > durable.seq) {
      // No position, or one from a log this run never had: a fresh snapshot, said as such.
      const type = afterSeq === undefined ? 'snapshot' : 'reset';
      this.#send(conn, this.#frame({ type, topic: topic.name, seq: durable.seq, run: durable.run }));
      sub.seq = durable.seq;
    } else {
      // Replay from the log at the pace the client reads: a long backlog is not a slow consumer.
      sub.seq = afterSeq;
      for (;;) {
        sub.overflowed = false;
        const page = await this.#opts.engine.store.readEvents(topic.id, sub.seq, REPLAY_PAGE);
        if (conn.client.closed || conn.subs.get(topic.name) !== sub) return;
        if (page.length === 0 && !sub.overflowed) break;
        for (const e of page) this.#send(conn, this.#frame({ type: 'event', topic: topic.name, seq: e.seq, event: e }));
        if (page.length > 0) sub.seq = page[page.length - 1]!.seq;
        await conn.client.roomFor(0);
      }
    }
    const waiting = sub.syncing ?? [];
    sub.syncing = null;
    for (const e of waiting) {
      if (e.seq <= sub.seq) continue;
      sub.seq = e.seq;
      this.#send(conn, this.#frame({ type: 'event', topic: topic.name, seq: e.seq, event: e }));
    }
  }

  async #subscribeSite(conn: Conn, topic: Topic): Promise<void> {
    if (!canSeeSite(conn.principal, topic.id)) throw new RunstateError('FORBIDDEN', `This token may not reach site ${topic.id}.`);
    const sub: Subscription = { topic, syncing: null, overflowed: false, seq: 0 };
    conn.subs.set(topic.name, sub);
    let set = this.#topics.get(topic.name);
    if (!set) this.#topics.set(topic.name, (set = new Set()));
    set.add(conn);
    const runs = await this.#opts.engine.listRuns({ siteIds: [topic.id], open: true, limit: 100 });
    if (conn.subs.get(topic.name) !== sub) return;
    this.#send(conn, this.#frame({ type: 'snapshot', topic: topic.name, runs }));
  }

  /** Site subscribers get each changed run's view, at most once per interval. */
  #flushSites(): void {
    if (this.#dirtyRuns.size === 0) return;
    const dirty = [...this.#dirtyRuns];
    this.#dirtyRuns.clear();
    if (![...this.#topics.keys()].some((t) => t.startsWith('site:'))) return;
    for (const runId of dirty) {
      this.#opts.engine
        .getRun(runId)
        .then((run) => {
          const subs = run && this.#topics.get(`site:${run.site_id}`);
          if (!run || !subs || subs.size === 0) return;
          const frame = this.#frame({ type: 'run', topic: `site:${run.site_id}`, seq: run.last_seq, run });
          for (const conn of subs) this.#send(conn, frame);
        })
        .catch((err: unknown) => this.#opts.logger.error({ err, runId }, 'site update failed'));
    }
  }

  // --- heartbeat ------------------------------------------------------------------------

  /** Pings, and the checks that find slow clients whatever the event rate. */
  #heartbeat(): void {
    const now = performance.now();
    // A tick this late means this process was busy, not reading: the pongs and drains that
    // came in meanwhile are still unread (timers run before I/O), so that time is not the
    // clients'. Without this, a 2 s stall of the hub's own loop evicts every healthy client.
    const late = now - this.#lastBeat - this.#beat;
    this.#lastBeat = now;
    const excuse = late > this.#beat ? late : 0;
    for (const conn of [...this.#conns.values()]) {
      const c = conn.client;
      if (c.closed) continue;
      if (excuse > 0) c.excuse(excuse, now);
      if (now - c.lastPong > this.#opts.pongTimeoutMs) {
        this.#evict(conn, 'pong_missed');
        continue;
      }
      const blocked = c.blockedSince;
      if (blocked !== null && now - blocked > this.#opts.sendTimeoutMs) {
        this.#evict(conn, 'send_timeout');
        continue;
      }
      const behind = c.pendingBytes > this.#opts.queueBytes / 2 || (blocked !== null && now - blocked > this.#opts.sendTimeoutMs / 2);
      if (behind && !c.warned) {
        c.warned = true;
        this.#opts.logger.warn({ clientId: c.id, pendingBytes: c.pendingBytes, blockedMs: blocked === null ? 0 : Math.round(now - blocked) }, 'websocket client falling behind');
      } else if (!behind) c.warned = false;
      if (now - c.lastPing >= this.#opts.pingIntervalMs) {
        c.lastPing = now;
        c.ws.ping();
      }
    }
  }
}

/** An upgrade refused before any WebSocket opens: a plain HTTP answer in the error shape. */
function refuse(socket: Duplex, err: RunstateError): void {
  const res = httpError(err);
  const body = JSON.stringify(res.body);
  const text = STATUS_CODES[res.status] ?? 'Error';
  socket.end(`HTTP/1.1 ${res.status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}
