import { chmod, lstat, unlink } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { ADMIN_NAME, TokenRegistry, type Principal } from '../auth/tokens.js';
import type { Engine } from '../engine/engine.js';
import type { IngestReply } from '../engine/kinds/external.js';
import { RunstateError, asRunstateError, ingestFailure } from '../errors.js';
import { errorMessage } from '../format.js';
import { ingest } from './ingest.js';

export interface IngestSocketOptions {
  /** `RUNSTATE_INGEST_SOCKET`: the socket file. */
  path: string;
  engine: Engine;
  tokens: TokenRegistry;
  logger: Logger;
  /** [65536] Longest line, newline excluded; a longer one is answered with PAYLOAD_TOO_LARGE. */
  maxLineBytes?: number;
  /** [1000] Lines read but not yet answered; past it the connection stops reading (backpressure). */
  maxPendingLines?: number;
}

const ADMIN: Principal = { name: ADMIN_NAME, admin: true, accountId: null, siteIds: null };
/** Lines answered per durable write at most. */
const BATCH = 500;

/**
 * The Unix socket door (docs/ingest.md): newline-delimited JSON in, one reply line per line out,
 * in order, each once its event is durable. The socket file is 0600, so only the service's
 * own user connects; such a connection may act for every site, or say
 * `{"hello":{"token":"…"}}` first to act for one token's sites only.
 */
export class IngestSocket {
  readonly #opts: Required<IngestSocketOptions>;
  readonly #server: Server;
  readonly #conns = new Set<Connection>();
  #offCommands: (() => void) | null = null;

  constructor(opts: IngestSocketOptions) {
    this.#opts = { maxLineBytes: 64 * 1024, maxPendingLines: 1000, ...opts };
    this.#server = createServer((socket) => {
      const conn = new Connection(socket, this.#opts);
      this.#conns.add(conn);
      socket.on('close', () => this.#conns.delete(conn));
    });
  }

  async start(): Promise<void> {
    await removeStaleSocket(this.#opts.path);
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#opts.path, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    await chmod(this.#opts.path, 0o600);
    this.#offCommands = this.#opts.engine.external.onCommand((runId, command) => {
      for (const c of this.#conns) c.command(runId, command);
    });
    this.#opts.logger.info({ path: this.#opts.path }, 'ingest socket listening');
  }

  async stop(): Promise<void> {
    this.#offCommands?.();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const c of this.#conns) c.end();
    await closed;
    await unlink(this.#opts.path).catch(() => undefined);
  }
}

/** A leftover socket file from a crash is removed; anything else at that path is not ours to delete. */
async function removeStaleSocket(path: string): Promise<void> {
  try {
    const st = await lstat(path);
    if (!st.isSocket()) throw new Error(`RUNSTATE_INGEST_SOCKET ${path} exists and is not a socket; refusing to replace it`);
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

class Connection {
  readonly #socket: Socket;
  readonly #opts: Required<IngestSocketOptions>;
  #principal: Principal = ADMIN;
  /** Runs this connection sent events for: their commands come back here. */
  readonly #runs = new Set<string>();
  #partial: Buffer[] = [];
  #partialBytes = 0;
  /** The current line passed the limit: drop it to its newline, then answer it. */
  #oversize = false;
  #lines: (Buffer | 'oversize')[] = [];
  #working = false;
  #ended = false;

  constructor(socket: Socket, opts: Required<IngestSocketOptions>) {
    this.#socket = socket;
    this.#opts = opts;
    socket.on('data', (chunk: Buffer) => this.#read(chunk));
    socket.on('end', () => {
      this.#ended = true;
    });
    socket.on('error', (err) => opts.logger.debug({ err }, 'ingest connection error'));
  }

  command(runId: string, command: string): void {
    if (this.#runs.has(runId) && !this.#socket.destroyed) this.#socket.write(`${JSON.stringify({ command, run_id: runId })}\n`);
  }

  end(): void {
    this.#socket.end();
  }

  #read(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) break;
      this.#take(chunk.subarray(start, nl), true);
      start = nl + 1;
    }
    if (start < chunk.length) this.#take(chunk.subarray(start), false);
    if (this.#lines.length >= this.#opts.maxPendingLines) this.#socket.pause();
    void this.#work();
  }

  #take(piece: Buffer, complete: boolean): void {
    if (!this.#oversize) {
      this.#partial.push(piece);
      this.#partialBytes += piece.length;
      if (this.#partialBytes > this.#opts.maxLineBytes) {
        this.#oversize = true;
        this.#partial = [];
        this.#partialBytes = 0;
      }
    }
    if (!complete) return;
    if (this.#oversize) this.#lines.push('oversize');
    else {
      const line = Buffer.concat(this.#partial);
      if (line.length > 0 && !(line.length === 1 && line[0] === 0x0d)) this.#lines.push(line);
    }
    this.#oversize = false;
    this.#partial = [];
    this.#partialBytes = 0;
  }

  /** Answers lines in order, a batch per durable write, pausing the engine while replies back up. */
  async #work(): Promise<void> {
    if (this.#working) return;
    this.#working = true;
    try {
      while (this.#lines.length > 0 && !this.#socket.destroyed) {
        const lines = this.#lines.splice(0, BATCH);
        if (this.#lines.length < this.#opts.maxPendingLines / 2 && !this.#ended) this.#socket.resume();
        const replies = await this.#answer(lines);
        const ok = this.#socket.write(replies.map((r) => `${JSON.stringify(r)}\n`).join(''));
        if (!ok) await new Promise<void>((resolve) => this.#socket.once('drain', resolve).once('close', resolve));
      }
    } catch (err) {
      this.#opts.logger.error({ err }, 'ingest connection failed');
      this.#socket.destroy();
    } finally {
      this.#working = false;
    }
  }

  async #answer(lines: readonly (Buffer | 'oversize')[]): Promise<unknown[]> {
    const replies: unknown[] = new Array<unknown>(lines.length);
    const events: unknown[] = [];
    const at: number[] = [];
    const flush = async () => {
      if (events.length === 0) return;
      let res: IngestReply[];
      try {
        res = await ingest(this.#opts.engine, this.#principal, events);
      } catch (err) {
        this.#opts.logger.error({ err }, 'ingest failed');
        const refused = asRunstateError(err);
        res = events.map(() => ingestFailure(refused.code === 'DATABASE_UNAVAILABLE' ? refused : new RunstateError('INTERNAL', 'The event could not be stored.')));
      }
      res.forEach((r, k) => {
        replies[at[k]!] = r;
        // Commands for a run come back to connections that have fed it.
        if (r.ok) this.#runs.add((events[k] as { run_id: string }).run_id);
      });
      events.length = 0;
      at.length = 0;
    };
    for (const [i, line] of lines.entries()) {
      if (line === 'oversize') {
        replies[i] = ingestFailure(new RunstateError('PAYLOAD_TOO_LARGE', `The line is over ${this.#opts.maxLineBytes} bytes.`));
        continue;
      }
      let value: unknown;
      try {
        value = JSON.parse(line.toString('utf8'));
      } catch (err) {
        replies[i] = ingestFailure(new RunstateError('BAD_REQUEST', `The line is not valid JSON: ${errorMessage(err).slice(0, 120)}`));
        continue;
      }
      const hello = (value as { hello?: { token?: unknown } } | null)?.hello;
      if (hello !== undefined) {
        await flush(); // events before the hello are answered under the old scope
        const principal = this.#opts.tokens.authenticate(typeof hello?.token === 'string' ? hello.token : undefined);
        if (principal) this.#principal = principal;
        replies[i] = principal ? { ok: true } : ingestFailure(new RunstateError('UNAUTHORIZED', 'Unknown token.'));
        continue;
      }
      events.push(value);
      at.push(i);
    }
    await flush();
    return replies;
  }
}
