// Bulk commands (docs/api.md, "Bulk commands"): one command, many runs, each as if commanded
// alone, over only the runs the token may see.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ADMIN, OTHER, SITE5, appOn, auth } from '../../helpers/app.js';
import { tempDir } from '../../helpers/engine.js';
import { gatedPipeline } from '../../helpers/gated.js';

const API = '/api/v1/automation';

describe('POST /runs/bulk/:command', () => {
  let dir: ReturnType<typeof tempDir>;
  let gate: ReturnType<typeof gatedPipeline>;
  let h: Awaited<ReturnType<typeof appOn>>;

  beforeEach(async () => {
    dir = tempDir();
    gate = gatedPipeline('gated', [1]);
    h = await appOn(dir.path, [gate.pipeline]);
  });
  afterEach(async () => {
    await h.stop();
    dir.remove();
  });

  async function start(site: string, token = ADMIN): Promise<string> {
    const res = await h.app.inject({ method: 'POST', url: `${API}/runs`, headers: auth(token), payload: { site_id: site, pipeline: 'gated' } });
    expect(res.statusCode, res.body).toBe(201);
    return res.json().data.run_id as string;
  }

  function bulk(command: string, payload: unknown, token = SITE5) {
    return h.app.inject({ method: 'POST', url: `${API}/runs/bulk/${command}`, headers: auth(token), payload: payload as object });
  }

  async function statusOf(runId: string): Promise<string> {
    return (await h.app.inject({ url: `${API}/runs/${runId}`, headers: auth(ADMIN) })).json().data.status as string;
  }

  it('commands every run of the site the token may see, and only those', async () => {
    const mine = [await start('site-5'), await start('site-5'), await start('site-5')];
    const theirs = await start('site-9');
    await gate.inFlight(4);
    await h.engine.settle();
    const res = await bulk('cancel', { status: 'running', reason: 'provider outage' });
    expect(res.statusCode, res.body).toBe(200);
    const { results } = res.json() as { results: { run_id: string; status: number; accepted: boolean; run_status: string }[] };
    expect(results.map((r) => r.run_id).sort()).toEqual([...mine].sort());
    for (const r of results) expect(r).toEqual({ run_id: r.run_id, status: 200, accepted: true, run_status: 'cancelled' });
    expect(await statusOf(theirs)).toBe('running');
    for (const id of mine) {
      const commands = h.events.filter((e) => e.run_id === id && e.event === 'command');
      expect(commands).toEqual([expect.objectContaining({ command: 'cancel', by: 'ops-site-5', reason: 'provider outage' })]);
    }
    // Again: each run answers as alone, a cancel of a cancelled run changes nothing; a pause is refused.
    const again = (await bulk('cancel', { site_id: 'site-5' })).json().results as { status: number; accepted?: boolean }[];
    expect(again.map((r) => [r.status, r.accepted])).toEqual([[200, false], [200, false], [200, false]]);
    const pause = (await bulk('pause', { run_ids: mine })).json().results as { run_id: string; status: number; code: string }[];
    expect(pause.map((r) => [r.run_id, r.status, r.code])).toEqual(mine.map((id) => [id, 409, 'COMMAND_NOT_ALLOWED']));
  });

  it('answers each of the run_ids as the command alone would, in the order given', async () => {
    const mine = await start('site-5');
    const theirs = await start('site-9');
    await gate.inFlight(2);
    await h.engine.settle();
    const ids = [theirs, 'run_20200101_000000_manual', 'not-a-run', mine];
    const res = await bulk('cancel', { run_ids: ids });
    expect(res.statusCode, res.body).toBe(200);
    const results = res.json().results as { run_id: string; status: number; code?: string }[];
    expect(results.map((r) => [r.run_id, r.status, r.code])).toEqual([
      [theirs, 403, 'FORBIDDEN'],
      ['run_20200101_000000_manual', 404, 'RUN_NOT_FOUND'],
      ['not-a-run', 400, 'INVALID_RUN_ID'],
      [mine, 200, undefined],
    ]);
    expect(await statusOf(theirs)).toBe('running');
    expect(await statusOf(mine)).toBe('cancelled');
    // The admin sees every site; a filter still narrows a list of ids.
    const narrowed = (await bulk('cancel', { run_ids: [theirs], site_id: 'site-5' }, ADMIN)).json().results as { status: number }[];
    expect(narrowed[0]!.status).toBe(409);
    expect(await statusOf(theirs)).toBe('running');
  });

  it('answers bad input with the error shape and commands nothing', async () => {
    const runId = await start('site-5');
    await gate.inFlight(1);
    await h.engine.settle();
    const before = (await h.store.getRun(runId))!.lastSeq;
    const cases: [string, unknown, string, number, string][] = [
      ['explode', { site_id: 'site-5' }, SITE5, 400, 'BAD_REQUEST'],
      ['cancel', {}, SITE5, 400, 'BAD_REQUEST'],
      ['cancel', { run_ids: [{}] }, SITE5, 400, 'BAD_REQUEST'],
      ['cancel', { run_ids: [] }, SITE5, 400, 'BAD_REQUEST'],
      ['cancel', { status: 'sleeping' }, SITE5, 400, 'BAD_REQUEST'],
      ['cancel', { site_id: 'site-5', extra: 1 }, SITE5, 400, 'BAD_REQUEST'],
      ['cancel', { site_id: '../x' }, SITE5, 400, 'BAD_REQUEST'],
      ['cancel', { site_id: 'site-5' }, OTHER, 403, 'FORBIDDEN'],
      ['cancel', { site_id: 'site-5' }, 'nope', 401, 'UNAUTHORIZED'],
    ];
    for (const [command, payload, token, status, code] of cases) {
      const res = await bulk(command, payload, token);
      expect(res.statusCode, `${command} ${JSON.stringify(payload)}: ${res.body}`).toBe(status);
      expect(res.json()).toEqual({ error: { code, message: expect.any(String) } });
    }
    // Nothing for OTHER to see, so nothing commanded.
    expect((await bulk('cancel', { status: 'running' }, OTHER)).json()).toEqual({ results: [] });
    expect((await h.store.getRun(runId))!.lastSeq).toBe(before);
  });
});
