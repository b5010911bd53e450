// The Postgres commit in one round trip: a journal's batch (expected seq, owner, no event keys)
// written by one statement gated on the run's row, and every batch it does not fit falling back
// to the transaction that reads the row under lock. Statements are counted at the client: each
// `query` call is one round trip.
import { Client } from 'pg';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { EVENTS_CHANNEL, PostgresStore } from '../../../service/store/postgres.js';
import type { CommitBatch } from '../../../service/store/store.js';
import { usePostgres, type TestDatabase } from '../../helpers/postgres.js';
import { until } from '../../helpers/until.js';
import { activities, activity, at, done, newRun, range, untyped } from './contract.js';

const pg = usePostgres();

const FAST = ['runstate_write_if_expected'];
const TRANSACTION = ['BEGIN', 'runstate_commit_lock', 'runstate_write_plan', 'COMMIT'];

/** The stored rows of one run, every table a commit writes (the lease, set by the clock at creation, left out). */
async function rowsOf(c: Client, runId: string) {
  const q = async (sql: string) => (await c.query<{ row: unknown }>(sql, [runId])).rows.map((r) => r.row);
  return {
    run: await q(`SELECT to_jsonb(r) - 'lease_until' AS row FROM runs r WHERE run_id = $1`),
    events: await q('SELECT to_jsonb(e) AS row FROM events e WHERE run_id = $1 ORDER BY seq'),
    ledger: await q('SELECT to_jsonb(l) AS row FROM ledger l WHERE run_id = $1 ORDER BY position'),
    outbox: await q('SELECT to_jsonb(o) AS row FROM outbox o WHERE run_id = $1 ORDER BY id'),
  };
}

describe('PostgresStore commit in one statement', () => {
  const dbs: TestDatabase[] = [];
  const opened: PostgresStore[] = [];
  const clients: Client[] = [];

  /** The statements (names of prepared ones, else their text) the stores' connections send while `work` runs. */
  async function statementsOf(work: () => Promise<unknown>): Promise<string[]> {
    const spy = vi.spyOn(Client.prototype, 'query');
    try {
      await work();
      return spy.mock.calls.flatMap(([q], i) => {
        if (clients.includes(spy.mock.contexts[i] as Client)) return [];
        return [typeof q === 'string' ? q : ((q as { name?: string; text: string }).name ?? (q as { text: string }).text)];
      });
    } finally {
      spy.mockRestore();
    }
  }

/** What `work` is rejected with, and the statements it sent. */
  async function failureOf(work: () => Promise<unknown>): Promise<{ err: unknown; sent: string[] }> {
    let err: unknown;
    const sent = await statementsOf(() => work().then(() => expect.unreachable('the commit succeeded'), (e: unknown) => (err = e)));
    return { err, sent };
  }

  async function database(): Promise<{ db: TestDatabase; store: PostgresStore; sql: Client; hints: string[] }> {
    const db = await pg.createDatabase();
    dbs.push(db);
    const store = await PostgresStore.connect(db.url, { poolSize: 2 });
    opened.push(store);
    const sql = new Client({ connectionString: db.url });
    clients.push(sql);
    await sql.connect();
    await sql.query(`LISTEN ${EVENTS_CHANNEL}`);
    const hints: string[] = [];
    sql.on('notification', (n) => hints.push(n.payload ?? ''));
    return { db, store, sql, hints };
  }

  /** Commits a batch on a run of its own and waits for its hint: every hint before it has arrived (commit order). */
  async function allHints(store: PostgresStore, hints: string[]): Promise<string[]> {
    await store.createRun(newRun('run_sentinel'));
    await store.commit('run_sentinel', { events: activities(1) });
    await until('the sentinel hint', () => hints.includes('run_sentinel:1'));
    return hints.filter((h) => h !== 'run_sentinel:1');
  }

  beforeEach(() => {
    // updated_at and the outbox's created_at are the commit's clock: the same in both databases.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.UTC(2025, 11, 4, 19, 30) });
  });

  afterEach(async () => {
    vi.useRealTimers();
    for (const c of clients.splice(0)) await c.end();
    for (const store of opened.splice(0)) await store.close();
    for (const db of dbs.splice(0)) await db.drop();
  });

  const lease = { owner: 'a', ms: 60_000 };
  const batches: CommitBatch[] = [
    {
      events: [activity('started'), untyped({ event: 'stage_complete', timestamp: at(2), stage: 1 })],
      ledger: [done(1, 1), done(1, 'x', { status: 'failed', attempts: 3, cost: 0.25, error: 'timeout' })],
      snapshot: { value: 'running', context: { n: 2 } },
      status: 'running',
      error: null,
    },
    { events: [], ledger: [done(2, 7)], snapshot: { value: 'running', context: { n: 3 } }, status: 'running', error: 'slow' },
    {
      events: [untyped({ event: 'state_change', timestamp: at(3), machine_name: 'run', payload: { from_state: 'running', to_state: 'completed' } })],
      snapshot: { value: 'completed' },
      status: 'completed',
      error: null,
      closedAt: at(4),
    },
  ];

  it('writes a journal batch in one round trip, exactly the rows, result and hint the transaction writes', async () => {
    const fast = await database();
    const slow = await database();
    for (const { store } of [fast, slow]) await store.createRun(newRun('run_a', { lease }));
    let seq = 0;
    for (const batch of batches) {
      let a: unknown;
      let b: unknown;
      expect(await statementsOf(async () => (a = await fast.store.commit('run_a', { ...batch, owner: 'a', expectLastSeq: seq })))).toEqual(FAST);
      // Without expectLastSeq the plan cannot be made before the row is read: the transaction.
      expect(await statementsOf(async () => (b = await slow.store.commit('run_a', { ...batch, owner: 'a' })))).toEqual(TRANSACTION);
      expect(a).toEqual(b);
      seq = (b as { events: { seq: number }[] }).events.at(-1)?.seq ?? seq;
    }
    expect(seq).toBe(3);
    expect(await rowsOf(fast.sql, 'run_a')).toEqual(await rowsOf(slow.sql, 'run_a'));
    const written = await rowsOf(fast.sql, 'run_a');
    expect(written.events).toHaveLength(3);
    expect(written.ledger).toHaveLength(3);
    expect(written.outbox).toMatchObject([{ seq: 2, kind: 'stage_complete' }, { seq: 3, kind: 'run_completed' }]);
    expect(written.run).toMatchObject([{ last_seq: 3, status: 'completed', error: null, closed_at: at(4), owner: 'a' }]);
    // No hint for the batch that appended nothing.
    expect(await allHints(fast.store, fast.hints)).toEqual(['run_a:2', 'run_a:3']);
    expect(await allHints(slow.store, slow.hints)).toEqual(['run_a:2', 'run_a:3']);
  });

  describe('a batch the run is not as expected for: the error the transaction finds, nothing written, no hint', () => {
    const cases: {
      name: string;
      setUp: (store: PostgresStore, sql: Client) => Promise<void>;
      batch: CommitBatch;
      error: { code: string; message: string; lastSeq?: number };
      sent: string[];
    }[] = [
      {
        name: 'a stale expected seq, before an item recorded already',
        setUp: async (store) => void (await store.commit('run_a', { events: activities(1), ledger: [done(1, 1)], owner: 'a', expectLastSeq: 0 })),
        batch: { events: activities(2), ledger: [done(1, 1)], owner: 'a', expectLastSeq: 0 },
        error: { code: 'SEQ_CONFLICT', message: 'run run_a is at seq 1, not 0', lastSeq: 1 },
        sent: [...FAST, 'BEGIN', 'runstate_commit_lock', 'ROLLBACK'],
      },
      {
        name: 'a lease that expired by the database’s clock',
        setUp: async (_, sql) => void (await sql.query(`UPDATE runs SET lease_until = now() - interval '1 second' WHERE run_id = 'run_a'`)),
        batch: { events: activities(1), owner: 'a', expectLastSeq: 0 },
        error: { code: 'LEASE_LOST', message: 'this instance no longer holds the lease of run run_a' },
        sent: [...FAST, 'BEGIN', 'runstate_commit_lock', 'ROLLBACK'],
      },
      {
        name: 'a lease another instance took',
        setUp: async (store) => {
          await store.releaseLeases('a');
          await store.claimRuns('b', 60_000, 10);
        },
        batch: { events: activities(1), owner: 'a', expectLastSeq: 0 },
        error: { code: 'LEASE_LOST', message: 'this instance no longer holds the lease of run run_a' },
        sent: [...FAST, 'BEGIN', 'runstate_commit_lock', 'ROLLBACK'],
      },
      {
        name: 'a released lease',
        setUp: async (store) => store.releaseLeases('a'),
        batch: { events: [], ledger: [done(1, 1)], owner: 'a', expectLastSeq: 0 },
        error: { code: 'LEASE_LOST', message: 'this instance no longer holds the lease of run run_a' },
        sent: [...FAST, 'BEGIN', 'runstate_commit_lock', 'ROLLBACK'],
      },
      {
        name: 'an unknown run',
        setUp: async () => {},
        batch: { events: activities(1), owner: 'a', expectLastSeq: 0 },
        error: { code: 'STORE_NOT_FOUND', message: 'run run_nope does not exist' },
        sent: [...FAST, 'BEGIN', 'runstate_commit_lock', 'ROLLBACK'],
      },
      {
        name: 'an item an earlier commit recorded',
        setUp: async (store) => void (await store.commit('run_a', { events: activities(1), ledger: [done(1, 7)], owner: 'a', expectLastSeq: 0 })),
        batch: { events: activities(2), ledger: [done(1, 8), done(1, '7')], owner: 'a', expectLastSeq: 1 },
        error: { code: 'LEDGER_CONFLICT', message: 'item 7 of stage 1 is already recorded for run run_a' },
        sent: [...FAST, 'BEGIN', 'runstate_commit_lock', 'runstate_write_plan', 'ROLLBACK'],
      },
      {
        name: 'an item repeated in the batch (planned in the transaction, no statement before it)',
        setUp: async () => {},
        batch: { events: activities(1), ledger: [done(1, 7), done(2, 7), done(1, 7)], owner: 'a', expectLastSeq: 0 },
        error: { code: 'LEDGER_CONFLICT', message: 'item 7 of stage 1 is already recorded for run run_a' },
        sent: ['BEGIN', 'runstate_commit_lock', 'ROLLBACK'],
      },
    ];

    it.each(cases)('$name', async ({ setUp, batch, error, sent }) => {
      const { store, sql, hints } = await database();
      await store.createRun(newRun('run_a', { lease }));
      await setUp(store, sql);
      const runId = error.code === 'STORE_NOT_FOUND' ? 'run_nope' : 'run_a';
      const before = await rowsOf(sql, 'run_a');
      const hintsBefore = await allHints(store, hints);

      let opened = 0;
      store.pool.on('connect', () => (opened += 1));
      const failed = await failureOf(() => store.commit(runId, batch));
      // The connection whose statement failed went back to the pool (idle, reused), not away.
      expect(opened).toBe(0);

      expect(failed.err).toMatchObject(error);
      expect((failed.err as Error).message).toBe(error.message);
      expect(failed.sent).toEqual(sent);
      expect(await rowsOf(sql, 'run_a')).toEqual(before);
      await store.commit('run_sentinel', { events: activities(1) });
      await until('the second sentinel hint', () => hints.includes('run_sentinel:2'));
      expect(hints.filter((h) => !h.startsWith('run_sentinel:'))).toEqual(hintsBefore);
    });
  });

  describe('two instances committing the same run at once', () => {
    /** Holds the run's row lock in a transaction of its own until `release`; resolves once both commits wait on it. */
    async function heldRow(db: TestDatabase, sql: Client, change = '') {
      const blocker = new Client({ connectionString: db.url });
      clients.push(blocker);
      await blocker.connect();
      await blocker.query('BEGIN');
      await blocker.query(change || `SELECT 1 FROM runs WHERE run_id = 'run_a' FOR UPDATE`);
      return {
        waitForTwo: () =>
          until('both commits waiting on the row lock', async () => {
            const res = await sql.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'runstate' AND wait_event_type = 'Lock'`,
            );
            return res.rows[0]!.n === 2;
          }),
        release: () => blocker.query('COMMIT'),
      };
    }

    async function twoStores() {
      const first = await database();
      const other = await PostgresStore.connect(first.db.url, { poolSize: 2 });
      opened.push(other);
      await first.store.createRun(newRun('run_a', { lease }));
      return { ...first, stores: [first.store, other] as const };
    }

    it('lets one of two commits expecting the same seq win; the other, having waited on the row, is a seq conflict', async () => {
      const { db, sql, stores } = await twoStores();
      const lock = await heldRow(db, sql);
      let results: PromiseSettledResult<unknown>[] = [];
      const sent = await statementsOf(async () => {
        const settled = Promise.allSettled(
          stores.map((s, i) => s.commit('run_a', { events: activities(2, `s${i}-`), ledger: [done(1, i)], owner: 'a', expectLastSeq: 0 })),
        );
        await lock.waitForTwo();
        await lock.release();
        results = await settled;
      });
      // Both tried the one statement; the loser's transaction read the row and wrote nothing.
      expect(sent.sort()).toEqual([...FAST, ...FAST, 'BEGIN', 'runstate_commit_lock', 'ROLLBACK'].sort());
      const won = results.filter((s) => s.status === 'fulfilled');
      const lost = results.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost.map((s) => s.reason as unknown)).toMatchObject([{ code: 'SEQ_CONFLICT', lastSeq: 2 }]);
      const rows = await rowsOf(sql, 'run_a');
      expect(rows.events.map((e) => (e as { seq: number }).seq)).toEqual([1, 2]);
      expect(rows.ledger).toHaveLength(1);
    });

    it('records an item once when two commits expecting the same seq append nothing and the gate lets both through', async () => {
      const { db, sql, stores } = await twoStores();
      const lock = await heldRow(db, sql);
      let results: PromiseSettledResult<unknown>[] = [];
      const sent = await statementsOf(async () => {
        const settled = Promise.allSettled(stores.map((s) => s.commit('run_a', { events: [], ledger: [done(1, 7)], owner: 'a', expectLastSeq: 0 })));
        await lock.waitForTwo();
        await lock.release();
        results = await settled;
      });
      // The loser's statement failed on the ledger's unique key; its transaction found the item.
      expect(sent.sort()).toEqual([...FAST, ...FAST, 'BEGIN', 'runstate_commit_lock', 'runstate_write_plan', 'ROLLBACK'].sort());
      expect(results.filter((s) => s.status === 'fulfilled')).toHaveLength(1);
      expect(results.filter((s) => s.status === 'rejected').map((s) => (s as PromiseRejectedResult).reason as unknown)).toMatchObject([
        { code: 'LEDGER_CONFLICT' },
      ]);
      expect((await rowsOf(sql, 'run_a')).ledger).toHaveLength(1);
    });

    it('writes neither when another instance takes the lease while both wait on the row', async () => {
      const { db, sql, stores } = await twoStores();
      const lock = await heldRow(db, sql, `UPDATE runs SET owner = 'b', lease_until = now() + interval '1 minute' WHERE run_id = 'run_a'`);
      const settled = Promise.allSettled(stores.map((s) => s.commit('run_a', { events: activities(1), owner: 'a', expectLastSeq: 0 })));
      await lock.waitForTwo();
      await lock.release();
      expect((await settled).map((s) => (s as PromiseRejectedResult).reason as unknown)).toMatchObject([{ code: 'LEASE_LOST' }, { code: 'LEASE_LOST' }]);
      expect((await rowsOf(sql, 'run_a')).events).toEqual([]);
    });

    it('keeps seqs gap-free over many rounds of racing journal batches, one winner a round', async () => {
      const { sql, stores } = await twoStores();
      let seq = 0;
      for (let round = 0; round < 20; round++) {
        const results = await Promise.allSettled(
          stores.map((s, i) => s.commit('run_a', { events: activities(1 + i, `r${round}-${i}-`), ledger: [done(round, i)], owner: 'a', expectLastSeq: seq })),
        );
        const won = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
        expect(won).toHaveLength(1);
        for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'SEQ_CONFLICT' });
        seq = won[0]!.seqs.at(-1)!;
      }
      const rows = await rowsOf(sql, 'run_a');
      expect(rows.events.map((e) => (e as { seq: number }).seq)).toEqual(range(1, seq));
      expect(rows.ledger).toHaveLength(20);
    });
  });
});
