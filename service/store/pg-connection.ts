// Postgres connections that survive the database going away: a pool whose every connection has
// its errors handled and whose calls give up in bounded time, and a LISTEN connection that
// reconnects with backoff and jitter and says when notifications may have been missed.
import { Client, Pool, type CustomTypesConfig, type PoolClient } from 'pg';
import { isTransient } from './faults.js';

export interface PgTimeouts {
  /** How long a call waits for a pooled connection (or a new one to open) before it fails. [acquireMs=2000] */
  acquireMs?: number;
  /** Longest statement, on the server (`statement_timeout`); the client gives up 1 s later. [statementMs=5000] */
  statementMs?: number;
}

export interface PgPoolOptions extends PgTimeouts {
  connectionString: string;
  max: number;
  types: CustomTypesConfig;
  /** Told of every connection error that is not a call's own (an idle or checked-out connection dropped). */
  onError: (err: Error) => void;
}

const DEFAULT_ACQUIRE_MS = 2000;
const DEFAULT_STATEMENT_MS = 5000;

/**
 * A pool that never crashes the process and never hangs a caller: every connection it opens
 * has an 'error' listener for its whole life (pg removes the pool's own while a connection is
 * checked out, so an error between two queries of a transaction would otherwise be an uncaught
 * 'error' event), acquiring waits `acquireMs` at most, and every statement ends within
 * `statementMs` on the server and `statementMs + 1000` on the client, even on a connection
 * that hangs rather than closes.
 */
export function createPool(opts: PgPoolOptions): Pool {
  const acquireMs = opts.acquireMs ?? DEFAULT_ACQUIRE_MS;
  const statementMs = opts.statementMs ?? DEFAULT_STATEMENT_MS;
  for (const [name, v] of [['acquireMs', acquireMs], ['statementMs', statementMs]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new TypeError(`Expected \`${name}\` to be a positive integer, got ${String(v)}.`);
  }
  const pool = new Pool({
    connectionString: opts.connectionString,
    max: opts.max,
    types: opts.types,
    application_name: 'runstate',
    connectionTimeoutMillis: acquireMs,
    statement_timeout: statementMs,
    query_timeout: statementMs + 1000,
    // A transaction whose connection is cut off mid-way must not keep its row locks for long.
    idle_in_transaction_session_timeout: statementMs * 2,
    keepAlive: true,
    keepAliveInitialDelayMillis: 5000,
    // A connection that hung while idle is let go soon, not found again after the network is back.
    idleTimeoutMillis: 5000,
  });
  pool.on('error', (err) => opts.onError(err));
  pool.on('connect', (client) => {
    client.on('error', (err) => opts.onError(err));
  });
  return pool;
}

/**
 * Runs `work` on a pooled connection, outside a transaction (each statement its own). A
 * connection cut off or hung is destroyed, not returned to the pool; after any other error it
 * is idle again, and kept.
 */
export async function onConnection<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    return await work(client);
  } catch (err) {
    if (isTransient(err)) broken = err as Error;
    throw err;
  } finally {
    client.release(broken);
  }
}

/**
 * Runs `work` in one transaction on a pooled connection. A connection that cannot roll back
 * (cut off, hung) is destroyed, not returned to the pool.
 */
export async function inTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    if (isTransient(err)) {
      // Cut off or hung: a ROLLBACK would wait as long again. The server rolls back when the connection goes.
      broken = err as Error;
      throw err;
    }
    try {
      await client.query('ROLLBACK');
    } catch (rollbackErr) {
      // The connection is unusable; the first error is the one to report.
      broken = rollbackErr as Error;
    }
    throw err;
  } finally {
    client.release(broken);
  }
}

export interface Prober {
  /** `SELECT 1` that fails within `timeoutMs`, whatever the connection does. */
  ping(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * The health check's own connection, outside the pool: a pool busy with commits is not a
 * database that is away, and a probe must not wait behind them. A connection that fails or
 * does not answer in time is destroyed; the next ping opens a new one.
 */
export function prober(opts: { connectionString: string; types: CustomTypesConfig; onError?: (err: Error) => void }): Prober {
  let current: Client | null = null;
  let closed = false;
  const discard = (c: Client) => {
    if (current === c) current = null;
    destroy(c);
  };
  const connected = async (timeoutMs: number): Promise<Client> => {
    if (current) return current;
    const c = new Client({
      connectionString: opts.connectionString,
      types: opts.types,
      application_name: 'runstate-health',
      connectionTimeoutMillis: timeoutMs,
      keepAlive: true,
    });
    c.on('error', (err) => {
      opts.onError?.(err);
      discard(c);
    });
    c.on('end', () => discard(c));
    try {
      await c.connect();
    } catch (err) {
      discard(c);
      throw err;
    }
    if (closed) {
      discard(c);
      throw new Error('the prober is closed');
    }
    current = c;
    return c;
  };
  return {
    async ping(timeoutMs) {
      const attempt = (async () => {
        const c = await connected(timeoutMs);
        try {
          // pg honours a per-query `query_timeout`; its types do not list it.
          await c.query({ text: 'SELECT 1', query_timeout: timeoutMs } as { text: string });
        } catch (err) {
          discard(c);
          throw err;
        }
      })();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(Object.assign(new Error(`the database did not answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
      });
      try {
        await Promise.race([attempt, timeout]);
      } finally {
        clearTimeout(timer);
        // Lost the race: its failure, when it comes, is already told.
        attempt.catch(() => undefined);
      }
    },
    async close() {
      closed = true;
      const c = current;
      current = null;
      await c?.end().catch(() => undefined);
    },
  };
}

/** Ends a client at once, even one whose socket hangs. */
function destroy(c: Client): void {
  (c as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  void c.end().catch(() => undefined);
}

export interface ListenerOptions {
  connectionString: string;
  types: CustomTypesConfig;
  channel: string;
  onNotification: (payload: string) => void;
  /** After every reconnect: notifications may have been missed meanwhile. */
  onResync: () => void;
  /** Told of connection errors (for the log and the health state). */
  onError?: (err: Error) => void;
  /** How often the connection is checked with a round trip, so that a hung one is noticed. [heartbeatMs=2000] */
  heartbeatMs?: number;
}

/**
 * LISTEN on a connection of its own (outside the pool), kept open: reconnects with exponential
 * backoff and full jitter (100 ms, doubling, up to 5 s) when it closes, errors, or stops
 * answering the heartbeat, re-LISTENs, then calls `onResync`. Resolves once the first LISTEN
 * is in place; returns the function that stops it.
 */
export async function listen(opts: ListenerOptions): Promise<() => Promise<void>> {
  const heartbeatMs = opts.heartbeatMs ?? 2000;
  let client: Client | null = null;
  let stopped = false;
  let attempt = 0;
  let retry: NodeJS.Timeout | undefined;
  let beat: NodeJS.Timeout | undefined;

  const drop = (c: Client, err?: Error) => {
    if (err) opts.onError?.(err);
    if (client !== c) return;
    client = null;
    clearInterval(beat);
    // A hung socket would not end by itself.
    destroy(c);
    schedule();
  };
  const schedule = () => {
    if (stopped || retry) return;
    const ceiling = Math.min(5000, 100 * 2 ** attempt++);
    retry = setTimeout(() => {
      retry = undefined;
      void open().then(
        () => opts.onResync(),
        () => schedule(),
      );
    }, Math.random() * ceiling);
    retry.unref();
  };
  const open = async (): Promise<void> => {
    const c = new Client({
      connectionString: opts.connectionString,
      types: opts.types,
      application_name: 'runstate-listen',
      connectionTimeoutMillis: Math.max(1000, heartbeatMs),
      query_timeout: Math.max(1000, heartbeatMs),
      keepAlive: true,
    });
    c.on('notification', (n) => {
      if (n.channel === opts.channel && n.payload) opts.onNotification(n.payload);
    });
    c.on('error', (err) => drop(c, err));
    c.on('end', () => drop(c));
    try {
      await c.connect();
      await c.query(`LISTEN ${opts.channel}`);
    } catch (err) {
      opts.onError?.(err as Error);
      destroy(c);
      throw err;
    }
    if (stopped) {
      await c.end().catch(() => undefined);
      return;
    }
    client = c;
    attempt = 0;
    beat = setInterval(() => {
      c.query('SELECT 1').catch((err: unknown) => drop(c, err as Error));
    }, heartbeatMs);
    beat.unref();
  };
  await open();
  return async () => {
    stopped = true;
    clearTimeout(retry);
    clearInterval(beat);
    const c = client;
    client = null;
    await c?.end().catch(() => undefined);
  };
}
