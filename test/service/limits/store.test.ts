import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryLimitStore } from '../../../service/limits/memory.js';
import { PostgresLimitStore } from '../../../service/limits/postgres.js';
import type { LimitStore } from '../../../service/limits/store.js';
import { PostgresStore } from '../../../service/store/postgres.js';
import { usePostgres, type TestDatabase } from '../../helpers/postgres.js';

const pg = usePostgres();

// One contract, both adapters: what the limiter relies on from its store.
describe.each(['memory', 'postgres'] as const)('limit store (%s)', (kind) => {
  let store: LimitStore;
  let other: LimitStore;
  const closing: (() => Promise<unknown>)[] = [];
  let db: TestDatabase | undefined;

  beforeEach(async () => {
    if (kind === 'memory') {
      store = other = new MemoryLimitStore();
      return;
    }
    db = await pg.createDatabase();
    // Two instances: two connections pools on one database.
    const [a, b] = await Promise.all([PostgresStore.connect(db.url, { poolSize: 2 }), PostgresStore.connect(db.url, { poolSize: 2 })]);
    closing.push(() => a!.close(), () => b!.close());
    store = await PostgresLimitStore.open(a!.connection.pool);
    other = await PostgresLimitStore.open(b!.connection.pool);
  });
  afterEach(async () => {
    for (const c of closing.splice(0)) await c();
    await db?.drop();
  });

  it('gives one token, then says how long until the next, for every taker of the key', async () => {
    expect(await store.takeToken('k', 5000)).toBe(0);
    const wait = await other.takeToken('k', 5000);
    expect(wait).toBeGreaterThan(4000);
    expect(wait).toBeLessThanOrEqual(5000);
    expect(await store.takeToken('another', 5000)).toBe(0);
  });

  it('hands out a key’s slots up to its size, and a slot given back goes again', async () => {
    expect(await store.takeSlot('k', 2, 'a', 60_000)).toBe(true);
    expect(await other.takeSlot('k', 2, 'b', 60_000)).toBe(true);
    expect(await store.takeSlot('k', 2, 'c', 60_000)).toBe(false);
    await other.releaseSlot('k', 'b');
    expect(await store.takeSlot('k', 2, 'c', 60_000)).toBe(true);
    expect(await other.takeSlot('k', 2, 'd', 60_000)).toBe(false);
  });

  it.runIf(kind === 'postgres')('frees the slot of a holder that stopped renewing once its lease runs out, not before', async () => {
    expect(await store.takeSlot('k', 1, 'dead', 300)).toBe(true);
    expect(await store.takeSlot('k', 1, 'alive', 60_000)).toBe(false);
    await store.renewSlots(['dead'], 300);
    const deadline = Date.now() + 10_000;
    while (!(await other.takeSlot('k', 1, 'next', 60_000))) {
      if (Date.now() > deadline) throw new Error('the dead holder kept its slot');
      await new Promise((r) => setTimeout(r, 50));
    }
    // The dead holder's late release does not free the slot its successor holds.
    await store.releaseSlot('k', 'dead');
    expect(await store.takeSlot('k', 1, 'third', 60_000)).toBe(false);
  });

  it.runIf(kind === 'postgres')('sums what the other instances published, not its own', async () => {
    await store.publish('i1', new Map([['k', { waiting: 3, inFlight: 1 }]]));
    await other.publish('i2', new Map([['k', { waiting: 2, inFlight: 2 }]]));
    expect(await store.othersUsage('i1')).toEqual(new Map([['k', { waiting: 2, inFlight: 2 }]]));
    expect(await other.othersUsage('i2')).toEqual(new Map([['k', { waiting: 3, inFlight: 1 }]]));
  });
});
