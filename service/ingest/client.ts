// A client for the ingest socket, for engines written in TypeScript (docs/ingest.md has the
// protocol and a Python example). It keeps every event until the service acknowledges it,
// and after a dropped connection reconnects and sends the unacknowledged ones again: each
// carries an `event_id`, so a resend is never appended twice.
import { randomUUID } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

export interface OutgoingEvent {
  run_id: string;
  /** Set one to make resends across processes idempotent; a random one is used otherwise. */
  event_id?: string;
  machine_name: string;
  event_type: 'state_change' | 'activity_log' | 'item_processed';
  payload: Record<string, unknown>;
}

export interface IngestClientOptions {
  socketPath: string;
  /** Scope the connection to one token's sites (sent as `{"hello":{"token":…}}`). */
  token?: string;
  /** Commands for this connection's runs: pause, resume, cancel. */
  onCommand?: (command: { command: string; run_id: string }) => void;
  /** [100] First reconnect delay in ms; doubles up to `maxReconnectMs`, with jitter. */
  minReconnectMs?: number;
  /** [5000] */
  maxReconnectMs?: number;
  /** [10000] Events sent but not acknowledged; `send` waits for room past it. */
  maxInFlight?: number;
}

export class IngestRejected extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

interface Pending {
  line: string;
  resolve: (seq: number) => void;
  reject: (err: Error) => void;
}

export class IngestClient {
  readonly #opts: Required<Omit<IngestClientOptions, 'token' | 'onCommand'>> & Pick<IngestClientOptions, 'token' | 'onCommand'>;
  /** Sent or waiting to be sent, oldest first; answered in this order. */
  readonly #unacked: Pending[] = [];
  #socket: Socket | null = null;
  #connected = false;
  #hellos = 0;
  #attempt = 0;
  #closed = false;
  #room: (() => void)[] = [];

  constructor(opts: IngestClientOptions) {
    this.#opts = { minReconnectMs: 100, maxReconnectMs: 5000, maxInFlight: 10_000, ...opts };
    this.#connect();
  }

  /** Sends one event; resolves with its seq once it is durable, rejects if the service refuses it. */
  async send(event: OutgoingEvent): Promise<number> {
    if (this.#closed) throw new Error('the ingest client is closed');
    while (this.#unacked.length >= this.#opts.maxInFlight) await new Promise<void>((r) => this.#room.push(r));
    const line = `${JSON.stringify({ ...event, event_id: event.event_id ?? randomUUID() })}\n`;
    return new Promise<number>((resolve, reject) => {
      this.#unacked.push({ line, resolve, reject });
      if (this.#connected) this.#socket!.write(line);
    });
  }

  /** Waits for every event sent so far to be answered, then closes. */
  async close(): Promise<void> {
    await Promise.allSettled(this.#unacked.map((p) => new Promise<void>((r) => {
      const { resolve, reject } = p;
      p.resolve = (seq) => (resolve(seq), r());
      p.reject = (err) => (reject(err), r());
    })));
    this.#closed = true;
    this.#socket?.end();
  }

  #connect(): void {
    const socket = connect(this.#opts.socketPath);
    this.#socket = socket;
    socket.on('connect', () => {
      this.#connected = true;
      this.#attempt = 0;
      this.#hellos = 0;
      if (this.#opts.token) {
        this.#hellos = 1;
        socket.write(`${JSON.stringify({ hello: { token: this.#opts.token } })}\n`);
      }
      // Everything not acknowledged goes again, in order: the service dedupes by event_id.
      if (this.#unacked.length) socket.write(this.#unacked.map((p) => p.line).join(''));
    });
    const lines = createInterface({ input: socket });
    lines.on('line', (line) => this.#onLine(line));
    // A refused or reset connection is what reconnecting is for; 'close' follows.
    lines.on('error', () => undefined);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.#connected = false;
      if (this.#closed) return;
      const base = Math.min(this.#opts.maxReconnectMs, this.#opts.minReconnectMs * 2 ** this.#attempt++);
      setTimeout(() => this.#connect(), base / 2 + Math.random() * (base / 2)).unref();
    });
  }

  #onLine(line: string): void {
    const msg = JSON.parse(line) as { ok?: boolean; seq?: number; error?: { code: string; message: string }; command?: string; run_id?: string };
    if (msg.command !== undefined) {
      this.#opts.onCommand?.({ command: msg.command, run_id: String(msg.run_id) });
      return;
    }
    if (this.#hellos > 0) {
      this.#hellos -= 1;
      if (!msg.ok) this.#failAll(new IngestRejected(msg.error?.code ?? 'UNAUTHORIZED', msg.error?.message ?? 'hello refused'));
      return;
    }
    const p = this.#unacked.shift();
    this.#room.shift()?.();
    if (!p) return;
    if (msg.ok && typeof msg.seq === 'number') p.resolve(msg.seq);
    else p.reject(new IngestRejected(msg.error?.code ?? 'UNKNOWN', msg.error?.message ?? 'refused'));
  }

  #failAll(err: Error): void {
    for (const p of this.#unacked.splice(0)) p.reject(err);
    this.#closed = true;
    this.#socket?.end();
  }
}
