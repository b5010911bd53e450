import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { demoPipelines } from '../../../service/pipelines/index.js';
import { ADMIN, OTHER, SITE5, appOn, auth } from '../../helpers/app.js';
import { isEvent, tempDir } from '../../helpers/engine.js';
import { gatedPipeline } from '../../helpers/gated.js';
import { type Probe, until as untilWithin } from '../../helpers/until.js';

const P = '/api/v1/automation';

const until = <T>(what: string, probe: Probe<T>, ms = 20_000): Promise<T> => untilWithin(what, probe, ms);

interface FireView {
  fire_at: string;
  state: string;
  run_id: string | null;
  run_status: string | null;
}
interface ScheduleView {
  schedule_id: string;
  status: string;
  next_run_at: string | null;
  last_runs: FireView[];
  [k: string]: unknown;
}

describe('schedules', () => {
  let dir: ReturnType<typeof tempDir>;
  let app: Awaited<ReturnType<typeof appOn>>;
  const gate = gatedPipeline('gated', [1]);

  beforeEach(async () => {
    dir = tempDir();
    app = await appOn(dir.path, [...demoPipelines, gate.pipeline]);
    await app.start();
  });
  afterEach(async () => {
    while (gate.pending.length > 0) await gate.finish();
    await app.stop();
    dir.remove();
  });

  const call = async (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown, token = ADMIN) => {
    const res = await app.app.inject({ method, url: `${P}${url}`, headers: auth(token), ...(payload === undefined ? {} : { payload: payload as object }) });
    return { status: res.statusCode, body: res.json() as { data: ScheduleView & ScheduleView[]; error?: { code: string; message: string } } };
  };
  const fires = async (id: string) => (await call('GET', `/schedules/${id}`)).body.data.last_runs;

  it('refuses bad input with a 400 naming the field, and stores nothing', async () => {
    const ok = { site_id: 'site-1', pipeline: 'face_processor', cron: '*/5 * * * *' };
    const cases: [unknown, string, RegExp][] = [
      [{ ...ok, cron: '* * * *' }, 'INVALID_SCHEDULE', /`cron`/],
      [{ ...ok, cron: '* * * * * * *' }, 'INVALID_SCHEDULE', /`cron`/],
      [{ ...ok, cron: '61 * * * *' }, 'INVALID_SCHEDULE', /`cron`/],
      [{ ...ok, cron: '0 0 30 2 *' }, 'INVALID_SCHEDULE', /never fires/],
      [{ ...ok, timezone: 'Mars/Olympus' }, 'INVALID_SCHEDULE', /`timezone`/],
      [{ ...ok, pipeline: 'nope' }, 'UNKNOWN_PIPELINE', /nope/],
      [{ ...ok, pipeline: 'external' }, 'BAD_REQUEST', /external/],
      [{ ...ok, options: { delay_ms: 'slow' } }, 'INVALID_OPTIONS', /delay_ms/],
      [{ ...ok, options: { colour: 'red' } }, 'INVALID_OPTIONS', /colour/],
      [{ ...ok, overlap: 'queue' }, 'BAD_REQUEST', /overlap/],
      [{ ...ok, site_id: 'bad site' }, 'BAD_REQUEST', /site_id/],
      [{ pipeline: 'face_processor', cron: '* * * * *' }, 'BAD_REQUEST', /site_id/],
    ];
    for (const [payload, code, message] of cases) {
      const res = await call('POST', '/schedules', payload);
      expect(res.status, JSON.stringify(payload)).toBe(400);
      expect(res.body.error?.code, JSON.stringify(payload)).toBe(code);
      expect(res.body.error?.message).toMatch(message);
    }
    expect((await call('POST', '/schedules', { ...ok, site_id: 'site-9' }, SITE5)).status).toBe(403);
    expect((await call('GET', '/schedules')).body.data).toEqual([]);
  });

  it('answers 201 with the schedule and its next fire time, and scopes it to the token’s sites', async () => {
    const res = await call('POST', '/schedules', { site_id: 'site-5', pipeline: 'face_processor', cron: '0 9 * * 1-5', timezone: 'europe/paris', options: { seed: 3 } }, SITE5);
    expect(res.status).toBe(201);
    const s = res.body.data;
    expect(s).toMatchObject({ site_id: 'site-5', account_id: 'acme', pipeline: 'face_processor', cron: '0 9 * * 1-5', timezone: 'Europe/Paris', overlap: 'skip', status: 'active', options: { seed: 3 }, last_runs: [] });
    expect(s.schedule_id).toMatch(/^sch_[0-9a-f]{24}$/);
    const next = new Date(s.next_run_at!);
    expect(next.getTime()).toBeGreaterThan(Date.now());
    // 09:00 in Paris is 07:00 or 08:00 UTC, on a weekday.
    expect([7, 8]).toContain(next.getUTCHours());
    expect([1, 2, 3, 4, 5]).toContain(next.getUTCDay());

    expect((await call('GET', '/schedules?site_id=site-5', undefined, SITE5)).body.data.map((x) => x.schedule_id)).toEqual([s.schedule_id]);
    expect((await call('GET', '/schedules', undefined, OTHER)).body.data).toEqual([]);
    expect((await call('GET', `/schedules/${s.schedule_id}`, undefined, OTHER)).body.error?.code).toBe('SCHEDULE_NOT_FOUND');
    expect((await call('POST', `/schedules/${s.schedule_id}/pause`, undefined, OTHER)).status).toBe(404);
    expect((await call('DELETE', `/schedules/${s.schedule_id}`, undefined, OTHER)).status).toBe(404);
    expect((await call('GET', '/schedules/sch_nope')).status).toBe(404);

    const paused = await call('POST', `/schedules/${s.schedule_id}/pause`, undefined, SITE5);
    expect(paused.body.data).toMatchObject({ status: 'paused', next_run_at: null });
    const resumed = await call('POST', `/schedules/${s.schedule_id}/resume`, undefined, SITE5);
    expect(resumed.body.data).toMatchObject({ status: 'active', next_run_at: s.next_run_at });
    expect((await call('DELETE', `/schedules/${s.schedule_id}`, undefined, SITE5)).body.data).toEqual({ schedule_id: s.schedule_id, deleted: true });
    expect((await call('GET', `/schedules/${s.schedule_id}`)).status).toBe(404);
  });

  it('starts one run per fire of a 6-field cron, each with trigger `scheduled`', { timeout: 30_000 }, async () => {
    const res = await call('POST', '/schedules', { site_id: 'site-1', pipeline: 'face_processor', cron: '*/2 * * * * *', overlap: 'allow', options: { delay_ms: 0, items_per_stage: 1 } });
    const id = res.body.data.schedule_id;
    const started = await until('three fires started', async () => {
      const f = (await fires(id)).filter((x) => x.state === 'started');
      return f.length >= 3 && f;
    });
    const times = started.map((f) => Date.parse(f.fire_at)).reverse();
    // Every fire time on the 2-second grid, none skipped, each with a run of its own.
    for (const [i, t] of times.entries()) {
      expect(t % 2000).toBe(0);
      if (i > 0) expect(t - times[i - 1]!).toBe(2000);
    }
    const runIds = started.map((f) => f.run_id!);
    expect(new Set(runIds).size).toBe(runIds.length);
    for (const runId of runIds) {
      expect(runId).toMatch(/_scheduled(_\d+)?$/);
      const run = await app.app.inject({ method: 'GET', url: `${P}/runs/${runId}`, headers: auth(ADMIN) });
      expect(run.json().data).toMatchObject({ site_id: 'site-1', pipeline: 'face_processor', trigger: 'scheduled' });
      const first = await app.next((e) => e.run_id === runId && isEvent('run_started')(e));
      expect(first).toMatchObject({ trigger: 'scheduled' });
    }
    const runs = (await app.app.inject({ method: 'GET', url: `${P}/runs`, headers: auth(ADMIN) })).json().data as { run_id: string }[];
    // No run but the fires' (the list may hold fires started after the `fires` read).
    const fired = new Set((await fires(id)).map((f) => f.run_id));
    expect(runs.every((r) => fired.has(r.run_id))).toBe(true);
    const metrics = (await app.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(Number(/runstate_schedule_fires_total\{outcome="started"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThanOrEqual(3);
  });

  it('with overlap skip starts no run while the previous one is unfinished', { timeout: 30_000 }, async () => {
    const res = await call('POST', '/schedules', { site_id: 'site-1', pipeline: 'gated', cron: '* * * * * *' });
    const id = res.body.data.schedule_id;
    await gate.inFlight(1); // the first fire's run waits on its item
    const skipped = await until('two fires skipped', async () => {
      const f = await fires(id);
      return f.filter((x) => x.state === 'skipped').length >= 2 && f;
    });
    expect(skipped.filter((x) => x.state === 'started')).toHaveLength(1);
    const firstRun = skipped.find((x) => x.state === 'started')!.run_id!;
    await gate.finish();
    await until('the first run completed', async () => (await app.engine.getRun(firstRun))?.status === 'completed');
    const after = await until('a second run started', async () => {
      const f = (await fires(id)).filter((x) => x.state === 'started');
      return f.length >= 2 && f;
    });
    expect(after[0]!.run_id).not.toBe(firstRun);
    // The skipped fires fell between the two runs' fires: none of them started anything.
    const [second, first] = [Date.parse(after[0]!.fire_at), Date.parse(after[1]!.fire_at)];
    const between = (await fires(id)).filter((x) => Date.parse(x.fire_at) > first && Date.parse(x.fire_at) < second);
    expect(between.length).toBeGreaterThanOrEqual(2);
    expect(between.every((x) => x.state === 'skipped' && x.run_id === null)).toBe(true);
    const metrics = (await app.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(Number(/runstate_schedule_fires_total\{outcome="skipped"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);
  });

  it('pausing stops the fires and resuming does not catch up the ones that fell meanwhile', { timeout: 30_000 }, async () => {
    const res = await call('POST', '/schedules', { site_id: 'site-1', pipeline: 'face_processor', cron: '* * * * * *', overlap: 'allow', options: { delay_ms: 0, items_per_stage: 1 } });
    const id = res.body.data.schedule_id;
    await until('a fire', async () => (await fires(id)).length >= 1);
    await call('POST', `/schedules/${id}/pause`);
    const pausedAt = Date.now();
    const seen = (await fires(id)).length;
    // Three fire times go by while it is paused.
    await until('three seconds passed', () => Date.now() - pausedAt > 3000, 10_000);
    expect((await fires(id)).length).toBe(seen);
    const resumedAt = Date.now();
    await call('POST', `/schedules/${id}/resume`);
    const next = await until('a fire after the resume', async () => {
      const f = await fires(id);
      return f.length > seen && f;
    });
    expect(next.length).toBe(seen + 1);
    expect(Date.parse(next[0]!.fire_at)).toBeGreaterThanOrEqual(resumedAt - 1000);
  });
});
