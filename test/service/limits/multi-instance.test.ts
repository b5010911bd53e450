import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { StoredEvent } from '../../../service/events.js';
import { PostgresStore } from '../../../service/store/postgres.js';
import { tempDir } from '../../helpers/engine.js';
import { usePostgres } from '../../helpers/postgres.js';
import { callApi, startService, type ServiceProcess } from '../../helpers/service-process.js';
import { flightsOf, maxOverlap, worstWindow } from './measure.js';
import { type Probe, until as untilWithin } from '../../helpers/until.js';

const TOKEN = 'limits-admin-token-0123456789';
const PIPELINES = join(import.meta.dirname, '..', '..', 'helpers', 'limited-pipelines.ts');

const pg = usePostgres();

async function api(i: ServiceProcess, path: string, body?: unknown) {
  const res = await callApi(i, path, { body });
  expect(res.status).toBeLessThan(300);
  return res.body;
}

const until = <T>(what: string, probe: Probe<T>, ms = 60_000): Promise<T> => untilWithin(what, probe, ms);

describe('limits shared by two instances of one Postgres', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('holds both instances’ runs to the key’s rate together, and to its concurrency, and each sees the other’s waiting', { timeout: 120_000 }, async () => {
    const db = await pg.createDatabase();
    cleanup.push(() => db.drop());
    const dirs = [tempDir('rs-lim1-'), tempDir('rs-lim2-')];
    cleanup.push(() => dirs.forEach((d) => d.remove()));
    const env = (name: string) => ({ DATABASE_URL: db.url, RUNSTATE_ADMIN_TOKEN: TOKEN, RUNSTATE_INSTANCE_ID: name, RUNSTATE_PIPELINES: PIPELINES });
    const [i1, i2] = await Promise.all([startService(dirs[0]!.path, env('i1')), startService(dirs[1]!.path, env('i2'))]);
    cleanup.push(async () => {
      for (const i of [i1!, i2!]) i.child.kill('SIGKILL');
      await Promise.all([i1!.exited, i2!.exited]);
    });
    const store = await PostgresStore.connect(db.url, { poolSize: 2 });
    cleanup.push(() => store.close());
    const finished = (runIds: string[]) =>
      until('the runs to complete', async () => (await Promise.all(runIds.map((r) => store.getRun(r)))).every((r) => r?.status === 'completed'));
    const eventsOf = async (runIds: string[]): Promise<StoredEvent[]> => (await Promise.all(runIds.map((r) => store.readEvents(r, 0)))).flat();

    // 10/s on the key `shared`, one run on each instance.
    const rate = [
      (await api(i1!, '/runs', { site_id: 'site-5', pipeline: 'limited_rate', options: { items: 30 } })).data.run_id as string,
      (await api(i2!, '/runs', { site_id: 'site-5', pipeline: 'limited_rate', options: { items: 30 } })).data.run_id as string,
    ];
    expect((await store.getRun(rate[0]!))!.owner).toBe('i1');
    expect((await store.getRun(rate[1]!))!.owner).toBe('i2');
    await finished(rate);
    const times = (await eventsOf(rate)).filter((e) => e.event === 'stage_item_processed').map((e) => Date.parse(e.timestamp));
    expect(times).toHaveLength(60);
    for (const w of [1, 2, 3, 6]) expect(worstWindow(times, w * 1000), `${w} s window`).toBeLessThanOrEqual(10 * w + 1);
    expect(Math.max(...times) - Math.min(...times)).toBeGreaterThanOrEqual(5900);

    // Two in flight at most on the key `pair`, one run on each instance, four of its own at once.
    const options = { items: 16, concurrency: 4, ms: 300 };
    const pair = [
      (await api(i1!, '/runs', { site_id: 'site-5', pipeline: 'limited_pair', options })).data.run_id as string,
      (await api(i2!, '/runs', { site_id: 'site-5', pipeline: 'limited_pair', options })).data.run_id as string,
    ];
    // An instance has at most 4 attempts of its own waiting: more than that counts the other's too.
    const seen = await until('i1 to see i2’s waiting attempts', async () => {
      const l = ((await api(i1!, '/limits')).data as { key: string; waiting: number; in_use: number }[]).find((x) => x.key === 'pair');
      return l && l.waiting >= 5 && l;
    });
    expect(seen).toMatchObject({ concurrency: 2 });
    expect(seen.in_use).toBeLessThanOrEqual(2);
    await finished(pair);
    const flights = flightsOf(await eventsOf(pair));
    expect(flights).toHaveLength(32);
    expect(maxOverlap(flights)).toBeLessThanOrEqual(2);
  });
});
