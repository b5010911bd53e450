// The schedule tables (service/schedules/types.ts ScheduleStore), on SQLite and on Postgres.
import { afterEach, describe, expect, it } from 'vitest';
import { openScheduleStore } from '../../../service/schedules/index.js';
import type { Schedule, ScheduleStore } from '../../../service/schedules/types.js';
import { PostgresStore } from '../../../service/store/postgres.js';
import { SqliteStore } from '../../../service/store/sqlite.js';
import { tempDir } from '../../helpers/engine.js';
import { usePostgres } from '../../helpers/postgres.js';

const pg = usePostgres();

type Open = () => Promise<{ open(): Promise<ScheduleStore>; cleanup(): Promise<void> }>;

const openSqlite: Open = async () => {
  const dir = tempDir('rs-sched-store-');
  const store = new SqliteStore({ filename: `${dir.path}/runstate.db` });
  return {
    open: () => openScheduleStore(store),
    async cleanup() {
      await store.close();
      dir.remove();
    },
  };
};

const openPostgres: Open = async () => {
  const db = await pg.createDatabase();
  const stores: PostgresStore[] = [];
  return {
    // Each open is a pool of its own, as each instance has.
    async open() {
      const s = await PostgresStore.connect(db.url, { poolSize: 2 });
      stores.push(s);
      return openScheduleStore(s);
    },
    async cleanup() {
      for (const s of stores) await s.close();
      await db.drop();
    },
  };
};

const T0 = Date.parse('2026-01-01T00:00:00Z');

function schedule(id: string, over: Partial<Schedule> = {}): Schedule {
  return {
    scheduleId: id,
    accountId: 'acme',
    siteId: 'site-1',
    pipeline: 'face_processor',
    options: { seed: 1 },
    cron: '* * * * * *',
    timezone: 'UTC',
    overlap: 'skip',
    status: 'active',
    createdBy: 'admin',
    createdAt: new Date(T0).toISOString(),
    lastFireAt: T0,
    ...over,
  };
}

describe.each([
  ['sqlite', openSqlite],
  ['postgres', openPostgres],
] as const)('schedule store on %s', (_name, make) => {
  let env: Awaited<ReturnType<Open>>;
  afterEach(async () => env?.cleanup());

  it('lets one claimer of many take a fire, and none take an earlier one after it', async () => {
    env = await make();
    const stores = await Promise.all([env.open(), env.open(), env.open()]);
    await stores[0]!.create(schedule('sch_a'));
    const wins = await Promise.all(stores.flatMap((s, i) => [1, 2, 3].map((k) => s.claimFire('sch_a', T0 + 2000, `i${i}.${k}`, T0 + 2001))));
    expect(wins.filter(Boolean)).toHaveLength(1);
    expect(await stores[1]!.claimFire('sch_a', T0 + 1000, 'late', T0 + 2002)).toBe(false);
    expect((await stores[2]!.get('sch_a'))!.lastFireAt).toBe(T0 + 2000);
    const [fire] = (await stores[0]!.lastFires(['sch_a'], 5)).get('sch_a')!;
    expect(fire).toMatchObject({ fireAt: T0 + 2000, state: 'claimed', runId: null, runStatus: null });
  });

  it('claims nothing for a paused or deleted schedule, and resuming moves past the paused span', async () => {
    env = await make();
    const s = await env.open();
    await s.create(schedule('sch_b'));
    expect((await s.setStatus('sch_b', 'paused', T0 + 10))!.status).toBe('paused');
    expect(await s.active()).toEqual([]);
    expect(await s.claimFire('sch_b', T0 + 1000, 'i1', T0 + 1000)).toBe(false);
    const resumed = await s.setStatus('sch_b', 'active', T0 + 60_000);
    expect(resumed).toMatchObject({ status: 'active', lastFireAt: T0 + 60_000 });
    expect(await s.claimFire('sch_b', T0 + 30_000, 'i1', T0 + 60_001)).toBe(false);
    expect(await s.remove('sch_b')).toBe(true);
    expect(await s.remove('sch_b')).toBe(false);
    expect(await s.get('sch_b')).toBeUndefined();
    expect(await s.setStatus('sch_b', 'active', T0)).toBeUndefined();
  });

  it('settles fires, finds the previous run’s fire, and hands a stale claim over once', async () => {
    env = await make();
    const [a, b] = [await env.open(), await env.open()];
    await a.create(schedule('sch_c'));
    await a.create(schedule('sch_d', { siteId: 'site-2', createdAt: new Date(T0 + 1).toISOString() }));
    expect(await a.claimFire('sch_c', T0 + 1000, 'i1', T0 + 1000)).toBe(true);
    await a.settleFire('sch_c', T0 + 1000, { state: 'started', runId: 'run_20260101_000001_scheduled' });
    expect(await a.claimFire('sch_c', T0 + 2000, 'i1', T0 + 2000)).toBe(true);
    await a.settleFire('sch_c', T0 + 2000, { state: 'skipped', error: 'busy' });
    expect(await a.claimFire('sch_c', T0 + 3000, 'i1', T0 + 3000)).toBe(true);
    expect(await b.previousRunFire('sch_c', T0 + 3000)).toMatchObject({ fireAt: T0 + 1000, state: 'started', runId: 'run_20260101_000001_scheduled' });
    expect(await b.previousRunFire('sch_c', T0 + 1000)).toBeUndefined();

    expect((await b.staleFires(T0 + 3000)).map((f) => f.fireAt)).toEqual([]);
    expect((await b.staleFires(T0 + 3001)).map((f) => f.fireAt)).toEqual([T0 + 3000]);
    const taken = await Promise.all([a.reclaimFire('sch_c', T0 + 3000, 'i1', T0 + 3001, T0 + 9000), b.reclaimFire('sch_c', T0 + 3000, 'i2', T0 + 3001, T0 + 9000)]);
    expect(taken.filter(Boolean)).toHaveLength(1);
    await b.settleFire('sch_c', T0 + 3000, { state: 'missed' });
    // A settled fire stays as it was settled.
    await b.settleFire('sch_c', T0 + 3000, { state: 'started', runId: 'x' });

    const last = await a.lastFires(['sch_c', 'sch_d'], 2);
    expect(last.get('sch_c')!.map((f) => [f.fireAt, f.state])).toEqual([
      [T0 + 3000, 'missed'],
      [T0 + 2000, 'skipped'],
    ]);
    expect(last.get('sch_d')).toEqual([]);
    expect((await a.list({ siteIds: ['site-2'] })).map((x) => x.scheduleId)).toEqual(['sch_d']);
    expect((await a.list({})).map((x) => x.scheduleId)).toEqual(['sch_c', 'sch_d']);
    expect((await a.get('sch_c'))!.options).toEqual({ seed: 1 });
  });

  it('prunes fires beyond the newest ones kept, but never the latest one with a run', async () => {
    env = await make();
    const s = await env.open();
    await s.create(schedule('sch_e'));
    const fire = async (k: number, state: 'started' | 'skipped') => {
      expect(await s.claimFire('sch_e', T0 + k * 1000, 'i1', T0 + k * 1000)).toBe(true);
      await s.settleFire('sch_e', T0 + k * 1000, state === 'started' ? { state, runId: `r${k}` } : { state });
    };
    await fire(1, 'started');
    await fire(2, 'skipped');
    await fire(3, 'started');
    for (let k = 4; k <= 9; k++) await fire(k, 'skipped');
    await s.pruneFires('sch_e', 3);
    const left = async () => (await s.lastFires(['sch_e'], 100)).get('sch_e')!.map((f) => (f.fireAt - T0) / 1000);
    // 1 and 2 go; 3 stays (the latest with a run) although it is beyond the newest three.
    expect(await left()).toEqual([9, 8, 7, 6, 5, 4, 3]);
    await fire(10, 'started');
    await s.pruneFires('sch_e', 3);
    expect(await left()).toEqual([10, 9, 8]);
    await s.pruneFires('sch_e', 3);
    expect(await left()).toEqual([10, 9, 8]);
  });
});
