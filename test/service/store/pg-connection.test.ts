// inTransaction on the pool's pipelined connections: BEGIN goes out with the work's first
// statement, and the transaction is still one transaction, rolled back whole on a failure.
import net from 'node:net';
import { types, type Pool } from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createPool, inTransaction } from '../../../service/store/pg-connection.js';
import { usePostgres, type TestDatabase } from '../../helpers/postgres.js';

const pg = usePostgres();

/** A proxy that can hold back what the server answers, and keeps what the client sent. */
async function holdingProxy(target: string) {
  const url = new URL(target);
  const [port, host] = [Number(url.port), url.hostname];
  let holding = false;
  let sent = '';
  const held: (() => void)[] = [];
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    client.on('data', (chunk) => {
      sent += chunk.toString('latin1');
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => (holding ? held.push(() => client.write(chunk)) : client.write(chunk)));
    const end = () => (client.destroy(), upstream.destroy());
    for (const s of [client, upstream]) s.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url.port = String((server.address() as net.AddressInfo).port);
  url.hostname = '127.0.0.1';
  return {
    url: url.toString(),
    sent: () => sent,
    hold: () => void (holding = true),
    release: () => {
      holding = false;
      for (const f of held.splice(0)) f();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function until(done: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('inTransaction', () => {
  let db: TestDatabase;
  let pool: Pool;
  const open = (url: string) => createPool({ connectionString: url, max: 1, types, onError: () => {} });

  beforeEach(async () => {
    db = await pg.createDatabase();
    pool = open(db.url);
    await pool.query('CREATE TABLE t (n int PRIMARY KEY)');
  });
  afterEach(async () => {
    await pool.end();
    await db.drop();
  });

  it("sends the work's first statement before BEGIN is answered", async () => {
    const proxy = await holdingProxy(db.url);
    const viaProxy = open(proxy.url);
    try {
      await viaProxy.query('SELECT 1'); // the connection is open and idle in the pool
      proxy.hold();
      const tx = inTransaction(viaProxy, async (c) => (await c.query<{ n: number }>('SELECT 4242 AS n')).rows[0]!.n);
      // Without pipelining the client waits for BEGIN's answer, which the proxy holds: this never holds.
      await until(() => proxy.sent().includes('SELECT 4242'), "the work's statement to reach the server");
      expect(proxy.sent().indexOf('BEGIN')).toBeLessThan(proxy.sent().indexOf('SELECT 4242'));
      proxy.release();
      await expect(tx).resolves.toBe(4242);
    } finally {
      proxy.release();
      await viaProxy.end();
      await proxy.close();
    }
  });

  it("commits the work's statements together, the first one included", async () => {
    await inTransaction(pool, async (c) => {
      await c.query('INSERT INTO t VALUES (1)');
      await c.query('INSERT INTO t VALUES (2)');
    });
    expect((await pool.query('SELECT n FROM t ORDER BY n')).rows).toEqual([{ n: 1 }, { n: 2 }]);
  });

  it('rolls back the first statement when the work fails after it', async () => {
    await expect(
      inTransaction(pool, async (c) => {
        await c.query('INSERT INTO t VALUES (1)');
        throw new Error('the work failed');
      }),
    ).rejects.toThrow('the work failed');
    expect((await pool.query('SELECT count(*)::int AS n FROM t')).rows).toEqual([{ n: 0 }]);
  });

  it("rejects with the first statement's own error and leaves the connection usable", async () => {
    await expect(inTransaction(pool, (c) => c.query('SELECT * FROM no_such_table'))).rejects.toMatchObject({ code: '42P01' });
    // The pool has one connection: it is the same one, out of the failed transaction.
    await inTransaction(pool, (c) => c.query('INSERT INTO t VALUES (3)'));
    expect((await pool.query('SELECT n FROM t')).rows).toEqual([{ n: 3 }]);
  });
});
