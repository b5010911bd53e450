// The journal's batch window on a real SQLite store: how many transactions the records of
// several turns of the event loop become, and when the batch is closed.
import { afterEach, describe, expect, it } from 'vitest';
import { Journal } from '../../../service/engine/journal.js';
import { SqliteStore } from '../../../service/store/sqlite.js';
import type { CommitBatch, CommitResult, Store, StoredEvent } from '../../../service/store/store.js';
import { tempDir } from '../../helpers/engine.js';
import { activity, at, messageOf, newRun } from '../store/contract.js';

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('Journal batch window', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function journal(batchWindowMs: number | undefined, wrap: (store: Store) => Store = (s) => s) {
    const dir = tempDir('rs-journal-window-');
    const sqlite = new SqliteStore({ filename: `${dir.path}/runstate.db` });
    const store = wrap(sqlite);
    cleanup.push(async () => (await sqlite.close(), dir.remove()));
    const runId = 'run_20251204_190332_manual';
    await store.createRun(newRun(runId, { createdAt: at(0), lease: { owner: 'me', ms: 60_000 } }));
    const batches: { events: StoredEvent[]; at: number }[] = [];
    let recorded = 0;
    const checkpoints: number[] = [];
    const j = new Journal({
      store,
      runId,
      owner: 'me',
      lastSeq: 0,
      // The snapshot says how many records it has seen: it must be read when the batch closes.
      checkpoint: () => (checkpoints.push(recorded), { snapshot: { recorded }, status: 'running', error: null }),
      onAppended: (events) => batches.push({ events, at: performance.now() }),
      onFault: (err) => {
        throw err;
      },
      ...(batchWindowMs === undefined ? {} : { batchWindowMs }),
    });
    const record = (message: string) => {
      recorded += 1;
      j.record(activity(message));
    };
    return { j, store, runId, batches, checkpoints, record };
  }

  it('without a window, closes a batch at the end of each turn', async () => {
    const { j, batches, record } = await journal(undefined);
    record('a');
    await nextTurn();
    record('b');
    await nextTurn();
    record('c');
    await j.flush();
    expect(batches.map((b) => b.events.map(messageOf))).toEqual([['a'], ['b'], ['c']]);
  });

  it('keeps a batch open across turns for its window, then writes it in one transaction with the snapshot of that moment', async () => {
    const { j, store, runId, batches, checkpoints, record } = await journal(200);
    const opened = performance.now();
    record('a');
    for (const m of ['b', 'c', 'd']) {
      await nextTurn();
      record(m);
    }
    // Still open: nothing written while the window lasts.
    await nextTurn();
    expect(batches).toEqual([]);
    await expect.poll(() => batches.length, { timeout: 5000 }).toBe(1);
    expect(batches[0]!.events.map(messageOf)).toEqual(['a', 'b', 'c', 'd']);
    // Timers may fire up to a millisecond early by performance.now()'s finer clock.
    expect(batches[0]!.at - opened).toBeGreaterThanOrEqual(199);
    expect(checkpoints).toEqual([4]);
    expect((await store.getRun(runId))?.snapshot).toEqual({ recorded: 4 });
    await j.flush();
    expect(batches).toHaveLength(1);
  });

  it('closes an open batch at once for whoever waits for durability', async () => {
    const { j, store, runId, batches, record } = await journal(60_000);
    record('a');
    await nextTurn();
    record('b');
    await j.acknowledged();
    expect(batches.map((b) => b.events.map(messageOf))).toEqual([['a', 'b']]);
    record('c');
    await j.flush();
    expect((await store.readEvents(runId, 0)).map(messageOf)).toEqual(['a', 'b', 'c']);
    expect(batches).toHaveLength(2);
  });

  it('keeps a batch that came due open while the write before it is under way, and writes it once that is answered', async () => {
    // The real store, answering each commit only when the test lets it (as a database far away would).
    let release = () => {};
    const commits: string[][] = [];
    const slow = (store: Store): Store =>
      new Proxy(store, {
        get(target, prop) {
          const value: unknown = Reflect.get(target, prop);
          if (prop !== 'commit') return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
          return async (runId: string, batch: CommitBatch): Promise<CommitResult> => {
            commits.push(batch.events.map((e) => (e.event === 'activity_log' ? e.message : e.event)));
            await new Promise<void>((resolve) => (release = resolve));
            return target.commit(runId, batch);
          };
        },
      });
    const { j, store, runId, batches, checkpoints, record } = await journal(undefined, slow);
    record('a');
    await expect.poll(() => commits).toEqual([['a']]);
    for (const m of ['b', 'c', 'd']) {
      record(m);
      await nextTurn();
    }
    // Each of those turns would have closed a batch of its own; they wait in one.
    expect(commits).toEqual([['a']]);
    release();
    await expect.poll(() => commits).toEqual([['a'], ['b', 'c', 'd']]);
    release();
    await j.flush();
    expect(batches.map((b) => b.events.map(messageOf))).toEqual([['a'], ['b', 'c', 'd']]);
    expect(checkpoints).toEqual([1, 4]);
    expect((await store.readEvents(runId, 0)).map(messageOf)).toEqual(['a', 'b', 'c', 'd']);
  });
});
