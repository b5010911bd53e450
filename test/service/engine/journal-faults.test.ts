// The journal through store faults that pass (a connection cut, a disk full) and ones that do
// not (a lease lost, someone else's write), on real stores with the faults injected around them.
import { afterEach, describe, expect, it } from 'vitest';
import { Journal } from '../../../service/engine/journal.js';
import { StoreUnavailableError } from '../../../service/store/faults.js';
import { PostgresStore } from '../../../service/store/postgres.js';
import { SqliteStore } from '../../../service/store/sqlite.js';
import { SeqConflictError, type Store, type StoredEvent } from '../../../service/store/store.js';
import { tempDir } from '../../helpers/engine.js';
import { faultyStore } from '../../helpers/faulty-store.js';
import { usePostgres } from '../../helpers/postgres.js';
import { activity, at, done, messageOf, newRun } from '../store/contract.js';

const pg = usePostgres();

const stores: [string, () => Promise<{ store: Store; cleanup(): Promise<void> }>][] = [
  [
    'sqlite',
    async () => {
      const dir = tempDir('rs-journal-');
      const store = new SqliteStore({ filename: `${dir.path}/runstate.db` });
      return { store, cleanup: async () => (await store.close(), dir.remove()) };
    },
  ],
  [
    'postgres',
    async () => {
      const db = await pg.createDatabase();
      const store = await PostgresStore.connect(db.url, { poolSize: 2 });
      return { store, cleanup: async () => (await store.close(), await db.drop()) };
    },
  ],
];

describe.each(stores)('Journal on %s through faults', (_, open) => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function journal() {
    const opened = await open();
    cleanup.push(() => opened.cleanup());
    const runId = 'run_20251204_190332_manual';
    await opened.store.createRun(newRun(runId, { createdAt: at(0), lease: { owner: 'me', ms: 60_000 } }));
    const f = faultyStore(opened.store);
    const appended: StoredEvent[] = [];
    const faults: unknown[] = [];
    let held = 0;
    let resumed = 0;
    const j = new Journal({
      store: f.store,
      runId,
      owner: 'me',
      lastSeq: 0,
      checkpoint: () => ({ snapshot: { n: appended.length }, status: 'running', error: null }),
      onAppended: (events) => appended.push(...events),
      onFault: (err) => faults.push(err),
      onHold: () => (held += 1),
      onResume: () => (resumed += 1),
      retryDelay: () => 5,
    });
    return { j, f, runId, store: opened.store, appended, faults, counts: () => ({ held, resumed }) };
  }

  it('holds a refused batch, answers at once meanwhile, and writes everything in order once the store is back', async () => {
    const { j, f, runId, store, appended, faults, counts } = await journal();
    j.record(activity('a'));
    await j.flush();
    f.refuse(true);
    j.record(activity('b'), done(1, 1));
    await expect.poll(() => j.holding).toBe(true);
    j.record(activity('c'), done(1, 2));
    await expect(j.acknowledged()).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(j.write({ events: [activity('d')] })).rejects.toBeInstanceOf(StoreUnavailableError);
    f.refuse(false);
    await j.flush();
    const events = await store.readEvents(runId, 0);
    expect(events.map((e) => [e.seq, messageOf(e)])).toEqual([[1, 'a'], [2, 'b'], [3, 'c']]);
    expect(appended.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect((await store.ledger(runId)).map((l) => l.itemId)).toEqual([1, 2]);
    expect(faults).toEqual([]);
    expect(counts()).toEqual({ held: 1, resumed: 1 });
  });

  it('acknowledges what was recorded before the call, however fast records keep coming after it', async () => {
    const { j, runId, store } = await journal();
    j.record(activity('first'));
    let acked = false;
    const ack = j.acknowledged().then(() => (acked = true));
    // One more record every turn of the event loop, as a run of instant items makes them. A
    // journal that waits to be quiet never answers while they come; the deadline only ends that
    // case (a bound in turns failed under load, when one commit outlasted 2,000 turns).
    let more = 0;
    const deadline = performance.now() + 20_000;
    while (!acked && performance.now() < deadline) {
      j.record(activity(`m${more++}`));
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(acked).toBe(true);
    await ack;
    await j.flush();
    const events = await store.readEvents(runId, 0);
    expect(events.map(messageOf)).toEqual(['first', ...Array.from({ length: more }, (_, i) => `m${i}`)]);
  });

  it('reads back a batch that landed before the connection was cut, rather than appending it twice', async () => {
    const { j, f, runId, store, appended, faults } = await journal();
    f.next('land-then-cut');
    j.record(activity('a'), done(1, 1));
    j.record(activity('b'), done(1, 2));
    await j.flush();
    j.record(activity('c'));
    await j.flush();
    expect((await store.readEvents(runId, 0)).map((e) => [e.seq, messageOf(e)])).toEqual([[1, 'a'], [2, 'b'], [3, 'c']]);
    expect(appended.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(await store.ledger(runId)).toHaveLength(2);
    expect(faults).toEqual([]);
  });

  it('is a fault, not a hold, when someone else wrote to the run', async () => {
    const { j, runId, store, faults } = await journal();
    j.record(activity('a'));
    await j.flush();
    await store.commit(runId, { events: [activity('foreign')] });
    j.record(activity('b'));
    await j.flush();
    expect(faults).toHaveLength(1);
    expect(faults[0]).toBeInstanceOf(SeqConflictError);
    expect((await store.readEvents(runId, 0)).map(messageOf)).toEqual(['a', 'foreign']);
  });

  it('is a fault, not a hold, when the lease is lost', async () => {
    const { j, runId, store, faults } = await journal();
    await store.releaseLeases('me');
    await store.claimRuns('other', 60_000, 10);
    j.record(activity('a'));
    await j.flush();
    expect(faults).toHaveLength(1);
    expect((faults[0] as { code: string }).code).toBe('LEASE_LOST');
    expect(j.holding).toBe(false);
    expect(await store.readEvents(runId, 0)).toEqual([]);
  });

  it('drops a held batch when stopped and writes nothing after', async () => {
    const { j, f, runId, store } = await journal();
    f.refuse(true);
    j.record(activity('a'));
    await expect.poll(() => j.holding).toBe(true);
    j.stop();
    f.refuse(false);
    await j.flush();
    j.record(activity('b'));
    await j.flush();
    expect(await store.readEvents(runId, 0)).toEqual([]);
  });

  it('refuses a commit whose expectLastSeq is not the log’s, writing nothing', async () => {
    const { runId, store } = await journal();
    await store.commit(runId, { events: [activity('a')], expectLastSeq: 0, owner: 'me' });
    const err = await store.commit(runId, { events: [activity('b')], ledger: [done(1, 1)], expectLastSeq: 0, owner: 'me' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SeqConflictError);
    expect((err as SeqConflictError).lastSeq).toBe(1);
    expect(await store.ledger(runId)).toEqual([]);
    expect((await store.getRun(runId))!.lastSeq).toBe(1);
  });
});
