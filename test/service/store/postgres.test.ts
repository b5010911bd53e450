import { Client } from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EVENTS_CHANNEL, PostgresStore } from '../../../service/store/postgres.js';
import { usePostgres, type TestDatabase } from '../../helpers/postgres.js';
import { activities, activity, at, done, messageOf, newRun, range, untyped, type OpenStore } from './contract.js';
import { ownershipContract } from './ownership.contract.js';
import { runStoreContract } from './run-store.contract.js';

const pg = usePostgres();

const openPostgres: OpenStore = async () => {
  const db = await pg.createDatabase();
  const store = await PostgresStore.connect(db.url, { poolSize: 4 });
  return {
    store,
    async cleanup() {
      await store.close();
      await db.drop();
    },
  };
};

runStoreContract('postgres', openPostgres);
ownershipContract('postgres', openPostgres);

describe('PostgresStore', () => {
  let db: TestDatabase;
  const opened: PostgresStore[] = [];
  const clients: Client[] = [];

  async function open(url = db.url): Promise<PostgresStore> {
    const store = await PostgresStore.connect(url, { poolSize: 4 });
    opened.push(store);
    return store;
  }

  async function client(url = db.url): Promise<Client> {
    const c = new Client({ connectionString: url });
    clients.push(c);
    await c.connect();
    return c;
  }

  beforeEach(async () => {
    db = await pg.createDatabase();
  });

  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
    for (const c of clients.splice(0)) await c.end();
    await db.drop();
  });

  describe('two instances on one database', () => {
    it('keeps seqs gap-free and unique under concurrent commits to one run', async () => {
      const a = await open();
      const b = await open();
      await a.createRun(newRun('run_a'));
      const sizes = Array.from({ length: 40 }, (_, i) => (i % 4) + 1);
      const results = await Promise.all(
        sizes.map((size, i) => (i % 2 === 0 ? a : b).commit('run_a', { events: activities(size, `c${i}-`) })),
      );
      const total = sizes.reduce((x, y) => x + y, 0);

      expect(results.flatMap((r) => r.seqs).sort((x, y) => x - y)).toEqual(range(1, total));
      for (const [i, res] of results.entries()) {
        const from = res.seqs[0]!;
        expect(res.seqs).toEqual(range(from, from + sizes[i]! - 1));
      }
      for (const store of [a, b]) {
        expect((await store.readEvents('run_a', 0)).map((e) => e.seq)).toEqual(range(1, total));
        expect((await store.getRun('run_a'))?.lastSeq).toBe(total);
      }
    });

    it('appends a key once when both instances commit it at once', async () => {
      const a = await open();
      const b = await open();
      await a.createRun(newRun('run_a'));
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          (i % 2 === 0 ? a : b).commit('run_a', { events: [activity(`try${i}`), activity(`extra${i}`)], eventKeys: ['item:1', null] }),
        ),
      );
      expect(results.filter((r) => r.seqs[0] === 1)).toHaveLength(20);
      expect(results.flatMap((r) => r.events).filter((e) => String(messageOf(e)).startsWith('try'))).toHaveLength(1);
      expect((await b.readEvents('run_a', 0)).map((e) => e.seq)).toEqual(range(1, 21));
    });

    it('records an item once when both instances commit it at once', async () => {
      const a = await open();
      const b = await open();
      await a.createRun(newRun('run_a'));
      const settled = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).commit('run_a', { events: activities(1), ledger: [done(1, 7)] })),
      );
      expect(settled.filter((s) => s.status === 'fulfilled')).toHaveLength(1);
      for (const s of settled) {
        if (s.status === 'rejected') expect(s.reason).toMatchObject({ code: 'LEDGER_CONFLICT' });
      }
      expect(await b.ledger('run_a')).toEqual([done(1, 7)]);
      expect((await b.readEvents('run_a', 0)).map((e) => e.seq)).toEqual([1]);
    });
  });

  describe('notifications', () => {
    function nextNotification(listener: Client): Promise<{ channel: string; payload: string | undefined }> {
      return new Promise((resolve) => listener.once('notification', (n) => resolve({ channel: n.channel, payload: n.payload })));
    }

    it(`notifies ${EVENTS_CHANNEL} with the run id and last seq after a commit that appends`, async () => {
      const store = await open();
      const listener = await client();
      await listener.query(`LISTEN ${EVENTS_CHANNEL}`);
      await store.createRun(newRun('run:with:colons'));

      const received = nextNotification(listener);
      await store.commit('run:with:colons', { events: activities(3) });
      expect(await received).toEqual({ channel: EVENTS_CHANNEL, payload: 'run:with:colons:3' });
    });

    it('does not notify for a commit that appends nothing or is rolled back', async () => {
      const store = await open();
      const listener = await client();
      await listener.query(`LISTEN ${EVENTS_CHANNEL}`);
      await store.createRun(newRun('run_a'));
      const first = nextNotification(listener);
      await store.commit('run_a', { events: activities(1), eventKeys: ['k'], ledger: [done(1, 1)] });
      expect((await first).payload).toBe('run_a:1');
      const payloads: (string | undefined)[] = [];
      listener.on('notification', (n) => payloads.push(n.payload));

      await store.commit('run_a', { events: [], status: 'running' });
      await store.commit('run_a', { events: [activity('again')], eventKeys: ['k'] });
      await expect(store.commit('run_a', { events: activities(2), ledger: [done(1, 1)] })).rejects.toMatchObject({
        code: 'LEDGER_CONFLICT',
      });
      // Notifications arrive in commit order: the one of this commit is the first one since.
      const received = nextNotification(listener);
      await store.commit('run_a', { events: activities(1) });
      await received;
      expect(payloads).toEqual(['run_a:2']);
    });
  });

  describe('connect', () => {
    it('applies the migrations once when several instances start at once on an empty database', async () => {
      const stores = await Promise.all(Array.from({ length: 4 }, () => open()));
      const c = await client();
      const versions = await c.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
      expect(versions.rows.map((r) => r.version)).toEqual([1, 2, 3]);
      await stores[0]!.createRun(newRun('run_a'));
      expect((await stores[3]!.getRun('run_a'))?.status).toBe('idle');
    });

    it('keeps everything across a reconnect and carries on from it', async () => {
      const first = await open();
      await first.createRun(newRun('run_a', { createdAt: at(1) }));
      await first.saveStageItems('run_a', 1, [{ id: 1, title: 'One' }, { id: 'x', title: 'X' }]);
      await first.commit('run_a', {
        events: activities(3),
        eventKeys: ['k1', null, null],
        snapshot: { value: 'running' },
        status: 'running',
        ledger: [done(1, 1), done(1, 'x', { status: 'failed', attempts: 3, error: 'timeout', cost: 0.1 })],
      });
      await first.markTraced('run_a', 3);
      const runBefore = await first.getRun('run_a');
      const eventsBefore = await first.readEvents('run_a', 0);
      await first.close();

      const second = await open();
      expect(await second.getRun('run_a')).toEqual(runBefore);
      expect(await second.readEvents('run_a', 0)).toEqual(eventsBefore);
      expect(await second.ledger('run_a')).toEqual([done(1, 1), done(1, 'x', { status: 'failed', attempts: 3, error: 'timeout', cost: 0.1 })]);
      expect(await second.getStageItems('run_a', 1)).toEqual([{ id: 1, title: 'One' }, { id: 'x', title: 'X' }]);
      expect(await second.listUntraced()).toEqual([]);
      const res = await second.commit('run_a', { events: activities(2, 'after'), eventKeys: ['k1', 'k2'] });
      expect(res.seqs).toEqual([1, 4]);
    });

    it('migrates a database of the previous schema: runs with a machine name (external) are not hosted', async () => {
      const first = await open();
      await first.createRun(newRun('run_internal', { createdAt: at(1) }));
      await first.createRun(newRun('run_external', { pipeline: 'external', machineName: 'face-processor', createdAt: at(2) }));
      await first.close();
      // Back to schema 2: no `hosted` column, migration 3 not applied.
      const c = await client();
      await c.query('ALTER TABLE runs DROP COLUMN hosted');
      await c.query('DELETE FROM schema_migrations WHERE version = 3');

      const second = await open();
      expect((await second.listRuns({})).map((r) => [r.runId, r.hosted])).toEqual([
        ['run_external', false],
        ['run_internal', true],
      ]);
      expect((await second.claimRuns('a', 60_000, 10)).map((r) => r.runId)).toEqual(['run_internal']);
    });

    it('rejects a bad pool size with a TypeError that names it', async () => {
      await expect(PostgresStore.connect(db.url, { poolSize: 0 })).rejects.toThrow(/`poolSize`/);
      await expect(PostgresStore.connect(db.url, { poolSize: 1.5 })).rejects.toBeInstanceOf(TypeError);
    });

    it('rejects when the server cannot be reached', async () => {
      const url = new URL(pg.server().url('postgres'));
      url.hostname = '127.0.0.1';
      url.port = '1';
      await expect(PostgresStore.connect(url.toString())).rejects.toThrow();
    });
  });

  it('stores the body of an event byte for byte as the JSON of the event returned', async () => {
    const store = await open();
    await store.createRun(newRun('run_a'));
    const { events } = await store.commit('run_a', {
      events: [untyped({ event: 'stage_item_processed', timestamp: at(3), zeta: 1, alpha: { b: 2, a: [3, { y: null, x: 'é' }] }, seq: 99, run_id: 'x' })],
    });
    const c = await client();
    const { rows } = await c.query<{ body: string }>('SELECT body FROM events WHERE run_id = $1', ['run_a']);
    expect(rows.map((r) => r.body)).toEqual(events.map((e) => JSON.stringify(e)));
    expect(rows[0]!.body.startsWith('{"event":"stage_item_processed","run_id":"run_a","seq":1,"timestamp"')).toBe(true);
  });

  it('orders run ids in byte order whatever the collation of the database', async () => {
    const c = await client(pg.server().url('postgres'));
    const name = `${db.name}_icu`;
    await c.query(`CREATE DATABASE ${name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'`);
    try {
      const store = await open(pg.server().url(name));
      for (const id of ['run_b', 'Run_C', 'run_a', 'run-z']) await store.createRun(newRun(id, { createdAt: at(1) }));
      // Byte order, as SQLite's: uppercase before lowercase, '-' before '_'.
      expect((await store.listRuns({})).map((r) => r.runId)).toEqual(['run_b', 'run_a', 'run-z', 'Run_C']);
      await store.close();
    } finally {
      await c.query(`DROP DATABASE ${name} WITH (FORCE)`);
    }
  });
});
