import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../helpers/engine.js';
import { usePostgres } from '../../helpers/postgres.js';
import { callApi, startService, type ServiceProcess } from '../../helpers/service-process.js';
import { until } from '../../helpers/until.js';

const TOKEN = 'shared-admin-token-0123456789';
const FAST = { delay_ms: 0, items_per_stage: 1 };

const postgres = usePostgres();

interface Fire {
  fire_at: string;
  state: string;
  run_id: string | null;
}

async function api(svc: ServiceProcess, method: string, path: string, body?: unknown) {
  return (await callApi<{ data: Record<string, unknown> }>(svc, path, { method, body })).body;
}

describe('schedules across processes', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('three instances on one Postgres start exactly one run per fire', { timeout: 120_000 }, async () => {
    const db = await postgres.createDatabase();
    cleanup.push(() => db.drop());
    const dirs = [tempDir('rs-s1-'), tempDir('rs-s2-'), tempDir('rs-s3-')];
    cleanup.push(() => dirs.forEach((d) => d.remove()));
    const all = await Promise.all(
      ['s1', 's2', 's3'].map((n, k) => startService(dirs[k]!.path, { DATABASE_URL: db.url, RUNSTATE_ADMIN_TOKEN: TOKEN, RUNSTATE_INSTANCE_ID: n })),
    );
    cleanup.push(async () => {
      for (const i of all) i.child.kill('SIGKILL');
      await Promise.all(all.map((i) => i.exited));
    });
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    cleanup.push(() => client.end());

    const made = await api(all[0]!, 'POST', '/schedules', { site_id: 'site-1', pipeline: 'face_processor', cron: '*/2 * * * * *', overlap: 'allow', options: FAST });
    const id = made.data.schedule_id as string;
    // Another instance sees it (its ticker looks once a second).
    expect((await api(all[2]!, 'GET', `/schedules/${id}`)).data.schedule_id).toBe(id);
    await until('five fires started', async () => {
      const res = await client.query("SELECT count(*)::int AS n FROM schedule_fires WHERE schedule_id = $1 AND state = 'started'", [id]);
      return (res.rows[0] as { n: number }).n >= 5;
    });
    await api(all[1]!, 'POST', `/schedules/${id}/pause`);
    // Fires claimed before the pause settle; then nothing moves.
    await until('no fire left claimed', async () => (await client.query("SELECT 1 FROM schedule_fires WHERE state = 'claimed'")).rowCount === 0);

    const fires = (await client.query<{ fire_at: string; state: string; run_id: string | null; claimed_by: string }>('SELECT * FROM schedule_fires ORDER BY fire_at')).rows;
    const runs = (await client.query<{ run_id: string; trigger: string }>('SELECT run_id, trigger FROM runs')).rows;
    // Every run is a fire's, every fire has one run, and the fire times are each 2 s after the last.
    expect(fires.every((f) => f.state === 'started')).toBe(true);
    expect(runs.map((r) => r.run_id).sort()).toEqual(fires.map((f) => f.run_id!).sort());
    expect(runs.every((r) => r.trigger === 'scheduled')).toBe(true);
    const times = fires.map((f) => Number(f.fire_at));
    times.forEach((t, i) => i > 0 && expect(t - times[i - 1]!).toBe(2000));
    const keys = (await client.query<{ key: string }>("SELECT key FROM idempotency_keys WHERE scope = 'schedule' ORDER BY key")).rows.map((r) => r.key);
    expect(keys).toEqual(times.map((t) => `schedule:${id}:${new Date(t).toISOString()}`));
    // The API on any instance shows the same fires.
    const shown = (await api(all[2]!, 'GET', `/schedules/${id}`)).data.last_runs as Fire[];
    expect(shown.map((f) => f.run_id)).toEqual(fires.slice(-5).reverse().map((f) => f.run_id));
  });

  it.each(['sqlite', 'postgres'] as const)('an instance down for 10 s starts one run for the fires it missed (%s)', { timeout: 120_000 }, async (kind) => {
    const dir = tempDir('rs-catchup-');
    cleanup.push(() => dir.remove());
    const env: Record<string, string> = { RUNSTATE_ADMIN_TOKEN: TOKEN };
    if (kind === 'postgres') {
      const db = await postgres.createDatabase();
      cleanup.push(() => db.drop());
      env.DATABASE_URL = db.url;
    }
    const first = await startService(dir.path, env);
    cleanup.push(() => first.stop());
    const made = await api(first, 'POST', '/schedules', { site_id: 'site-1', pipeline: 'face_processor', cron: '*/2 * * * * *', overlap: 'allow', options: FAST });
    const id = made.data.schedule_id as string;
    const fires = async (svc: ServiceProcess) => ((await api(svc, 'GET', `/schedules/${id}`)).data.last_runs as Fire[]).filter((f) => f.state !== 'claimed');
    const before = await until('two fires started', async () => {
      const f = await fires(first);
      return f.length >= 2 && f;
    });
    first.child.kill('SIGKILL');
    await first.exited;
    const killedAt = Date.now();
    // Ten seconds of fire times go by with no instance up.
    await until('ten seconds down', () => Date.now() - killedAt >= 10_000, 15_000);
    const second = await startService(dir.path, env);
    cleanup.push(() => second.stop());
    // The ticker starts before the service listens: its catch-up fire is due by the time it is ready.
    const readyAt = Date.now();

    const after = await until('the catch-up and a regular fire', async () => {
      const f = await fires(second);
      const lastBefore = Date.parse(before[0]!.fire_at);
      const newer = f.filter((x) => Date.parse(x.fire_at) > lastBefore).reverse();
      return newer.length >= 2 && { lastBefore, newer };
    });
    const [catchUp, next] = after.newer;
    // One run for the five or more missed fire times: the latest of them, due by the time the
    // service was up; then the schedule goes on from there.
    expect(catchUp!.state).toBe('started');
    expect(Date.parse(catchUp!.fire_at) - after.lastBefore).toBeGreaterThanOrEqual(10_000);
    expect(Date.parse(catchUp!.fire_at)).toBeLessThanOrEqual(readyAt);
    expect(Date.parse(next!.fire_at) - Date.parse(catchUp!.fire_at)).toBe(2000);
    const runs = (await api(second, 'GET', '/runs?site_id=site-1')).data as unknown as { run_id: string; trigger: string; created_at: string }[];
    const fireOf = new Map((await fires(second)).map((f) => [f.run_id, f]));
    // No run besides the fires' (the two before the kill, the catch-up, and the regular ones after).
    expect(runs.every((r) => r.trigger === 'scheduled' && fireOf.has(r.run_id))).toBe(true);
    // Of the runs made after the kill, the catch-up is the only one for a fire time before the
    // next regular fire (judged by fire time: a slow start may create it after that time).
    const inGap = runs.filter((r) => Date.parse(r.created_at) > killedAt && Date.parse(fireOf.get(r.run_id)!.fire_at) < Date.parse(next!.fire_at));
    expect(inGap.map((r) => r.run_id)).toEqual([catchUp!.run_id]);
  });
});
