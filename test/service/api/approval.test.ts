// Approval gates (docs/api.md, "Approval"): the content pipeline started with `review: true`
// waits before Review → Publish; approve starts it, reject cancels the run, and the wait
// survives a SIGKILL.
import { afterEach, describe, expect, it } from 'vitest';
import { contentPipeline } from '../../../service/pipelines/index.js';
import { ADMIN, SITE5, appOn, auth } from '../../helpers/app.js';
import { isTransition, tempDir } from '../../helpers/engine.js';
import { callApi, runReaches, startService, type ServiceProcess } from '../../helpers/service-process.js';

const API = '/api/v1/automation';
const REVIEW = 7;
const OPTIONS = { delay_ms: 1, items_per_stage: [2, 1, 0, 1, 0, 0, 2], review: true };

describe('approval gates, in process', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function app() {
    const dir = tempDir();
    const h = await appOn(dir.path, [contentPipeline]);
    cleanup.push(async () => {
      await h.stop();
      dir.remove();
    });
    return h;
  }

  async function startGated(h: Awaited<ReturnType<typeof app>>) {
    const res = await h.app.inject({
      method: 'POST',
      url: `${API}/runs`,
      headers: auth(SITE5),
      payload: { site_id: 'site-5', pipeline: 'content', options: OPTIONS },
    });
    expect(res.statusCode, res.body).toBe(201);
    const runId = res.json().data.run_id as string;
    await h.next((e) => e.run_id === runId && isTransition('run', 'awaiting_approval')(e));
    await h.engine.settle();
    return runId;
  }

  it('waits before the gated stage, with the card, the view and the commands agreeing', async () => {
    const h = await app();
    const runId = await startGated(h);
    const run = (await h.app.inject({ url: `${API}/runs/${runId}`, headers: auth(SITE5) })).json().data;
    expect(run.status).toBe('awaiting_approval');
    expect(run.current_stage).toBe(REVIEW);
    expect(run.allowed_commands.sort()).toEqual(['approve', 'cancel', 'reject']);
    expect(run.stages.map((s: { state: string }) => s.state)).toEqual(['completed', 'completed', 'empty', 'completed', 'empty', 'empty', 'pending']);
    const card = (await h.app.inject({ url: `${API}/current_processing/?site_id=site-5&run_id=${runId}`, headers: auth(SITE5) })).json().data;
    expect(card).toMatchObject({ status: 'awaiting_approval', stage_number: REVIEW, stage_name: 'Review → Publish', stage_state: 'pending' });
    // Pause and retry are not what this state takes.
    for (const command of ['pause', 'retry', 'close']) {
      const res = await h.app.inject({ method: 'POST', url: `${API}/runs/${runId}/${command}`, headers: auth(SITE5) });
      expect(res.statusCode, command).toBe(409);
      expect(res.json().error.code).toBe('COMMAND_NOT_ALLOWED');
    }
  });

  it('starts the stage on approve, recorded as a command naming who and why, and completes', async () => {
    const h = await app();
    const runId = await startGated(h);
    const res = await h.app.inject({ method: 'POST', url: `${API}/runs/${runId}/approve`, headers: auth(SITE5), payload: { reason: 'looks good' } });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ accepted: true, data: { status: 'running' } });
    await h.engine.whenRetired(runId);
    const done = (await h.app.inject({ url: `${API}/runs/${runId}`, headers: auth(SITE5) })).json().data;
    expect(done.status).toBe('completed');
    expect(done.stages[REVIEW - 1]).toMatchObject({ state: 'completed', processed_items: 2 });
    const mine = h.events.filter((e) => e.run_id === runId);
    const command = mine.find((e) => e.event === 'command');
    expect(command).toMatchObject({ command: 'approve', by: 'ops-site-5', reason: 'looks good' });
    const runChanges = mine.filter((e) => e.event === 'state_change' && e.machine_name === 'run').map((e) => e.event === 'state_change' && [e.payload.from_state, e.payload.to_state, e.payload.event_trigger]);
    expect(runChanges).toEqual([
      ['idle', 'running', 'start_requested'],
      ['running', 'awaiting_approval', 'stage_finished'],
      ['awaiting_approval', 'running', 'approve_requested'],
      ['running', 'completed', 'stage_finished'],
    ]);
    // The command comes before the transition it caused.
    expect(mine.findIndex((e) => e.event === 'command')).toBeLessThan(mine.findIndex((e) => e.event === 'state_change' && e.payload.event_trigger === 'approve_requested'));
    // Approving again is refused: the run is not waiting any more.
    const again = await h.app.inject({ method: 'POST', url: `${API}/runs/${runId}/approve`, headers: auth(SITE5) });
    expect(again.statusCode).toBe(409);
  });

  it('cancels the run on reject, and the gated stage never starts', async () => {
    const h = await app();
    const runId = await startGated(h);
    const res = await h.app.inject({ method: 'POST', url: `${API}/runs/${runId}/reject`, headers: auth(SITE5), payload: { reason: 'off brand' } });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().data).toMatchObject({ status: 'cancelled', allowed_commands: ['close'] });
    await h.engine.whenRetired(runId);
    const mine = h.events.filter((e) => e.run_id === runId);
    expect(mine.find((e) => e.event === 'command')).toMatchObject({ command: 'reject', by: 'ops-site-5', reason: 'off brand' });
    expect(mine.some((e) => e.event === 'stage_start' && e.stage === REVIEW)).toBe(false);
    expect(mine.filter(isTransition('run', 'cancelled'))).toHaveLength(1);
  });

  it('answers approve and reject on a run that is not waiting with 409, and bad bodies with 400', async () => {
    const h = await app();
    const res = await h.app.inject({
      method: 'POST',
      url: `${API}/runs`,
      headers: auth(ADMIN),
      payload: { site_id: 'site-5', pipeline: 'content', options: { delay_ms: 1, items_per_stage: 1 } },
    });
    const runId = res.json().data.run_id as string;
    await h.engine.whenRetired(runId);
    for (const command of ['approve', 'reject']) {
      const r = await h.app.inject({ method: 'POST', url: `${API}/runs/${runId}/${command}`, headers: auth(ADMIN) });
      expect(r.statusCode).toBe(409);
      const bad = await h.app.inject({ method: 'POST', url: `${API}/runs/${runId}/${command}`, headers: auth(ADMIN), payload: { reason: { text: 'no' } } });
      expect(bad.statusCode).toBe(400);
      expect(bad.json()).toEqual({ error: { code: 'BAD_REQUEST', message: expect.any(String) } });
    }
    const badOption = await h.app.inject({
      method: 'POST',
      url: `${API}/runs`,
      headers: auth(ADMIN),
      payload: { site_id: 'site-5', pipeline: 'content', options: { review: 'yes' } },
    });
    expect(badOption.statusCode).toBe(400);
    expect(badOption.json().error).toMatchObject({ code: 'INVALID_OPTIONS', message: expect.stringContaining('`review`') });
  });
});

describe('approval gates, across a SIGKILL', () => {
  const procs: ServiceProcess[] = [];
  const dirs: ReturnType<typeof tempDir>[] = [];
  afterEach(async () => {
    for (const p of procs.splice(0)) {
      p.child.kill('SIGKILL');
      await p.exited;
    }
    dirs.splice(0).forEach((d) => d.remove());
  });

  const api = (svc: ServiceProcess, path: string, init: { method?: string; body?: unknown } = {}) => callApi<{ data: Record<string, unknown> }>(svc, path, init);

  const waitFor = (svc: ServiceProcess, runId: string, status: string) => runReaches<Record<string, unknown> & { status: string }>(svc, runId, status, 20_000);

  it('is still awaiting approval after a SIGKILL and restart, and approve then completes it', async () => {
    const dir = tempDir('runstate-approval-');
    dirs.push(dir);
    const first = await startService(dir.path);
    procs.push(first);
    const started = await api(first, '/runs', { method: 'POST', body: { site_id: 'site-5', pipeline: 'content', options: OPTIONS } });
    expect(started.status).toBe(201);
    const runId = started.body.data.run_id as string;
    await waitFor(first, runId, 'awaiting_approval');
    first.child.kill('SIGKILL');
    await first.exited;
    procs.splice(procs.indexOf(first), 1);

    const second = await startService(dir.path);
    procs.push(second);
    const restored = await api(second, `/runs/${runId}`);
    expect(restored.body.data).toMatchObject({ status: 'awaiting_approval', current_stage: REVIEW });
    expect(restored.body.data.allowed_commands).toEqual(expect.arrayContaining(['approve', 'reject']));
    const approved = await api(second, `/runs/${runId}/approve`, { method: 'POST', body: { reason: 'after the crash' } });
    expect(approved.status).toBe(200);
    const done = await waitFor(second, runId, 'completed');
    expect((done.stages as { processed_items: number }[])[REVIEW - 1]!.processed_items).toBe(2);
    const trace = await fetch(`${second.base}${API}/runs/${runId}/trace`, { headers: { authorization: `Token ${second.token}` } });
    const lines = (await trace.text()).trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((e) => e.seq)).toEqual(lines.map((_, i) => i + 1));
    expect(lines.find((e) => e.event === 'command')).toMatchObject({ command: 'approve', reason: 'after the crash', by: expect.any(String) });
    expect(lines.filter((e) => e.event === 'stage_start' && e.stage === REVIEW)).toHaveLength(1);
  });
});
