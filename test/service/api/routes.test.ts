import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { contentPipeline } from '../../../service/pipelines/index.js';
import { ADMIN, OTHER, SITE5, appOn, auth } from '../../helpers/app.js';
import { isTransition, tempDir } from '../../helpers/engine.js';
import { gatedPipeline } from '../../helpers/gated.js';

const API = '/api/v1/automation';

describe('HTTP API', () => {
  let dir: ReturnType<typeof tempDir>;
  let h: Awaited<ReturnType<typeof appOn>>;
  let gate: ReturnType<typeof gatedPipeline>;
  let app: FastifyInstance;

  beforeEach(async () => {
    dir = tempDir();
    gate = gatedPipeline('gated', [2, 0, 1], { holdLoadOf: 2 });
    h = await appOn(dir.path, [gate.pipeline, contentPipeline]);
    app = h.app;
  });
  afterEach(async () => {
    await h.stop();
    dir.remove();
  });

  async function start(token = SITE5, body: Record<string, unknown> = { site_id: 'site-5', pipeline: 'gated' }) {
    const res = await app.inject({ method: 'POST', url: `${API}/runs`, headers: auth(token), payload: body });
    expect(res.statusCode, res.body).toBe(201);
    return res.json().data as { run_id: string; [k: string]: unknown };
  }

  function expectError(res: { statusCode: number; json(): unknown; body: string }, status: number, code: string) {
    expect(res.statusCode, res.body).toBe(status);
    expect(res.json()).toEqual({ error: { code, message: expect.any(String) } });
    // Never a stack trace or a file path.
    expect(res.body).not.toMatch(/\bat .+:\d+|\/work\/|node_modules|\.ts\b/);
  }

  describe('POST /runs', () => {
    it('starts a run for the token’s account and answers 201 with it', async () => {
      const run = await start();
      expect(run).toMatchObject({ site_id: 'site-5', account_id: 'acme', pipeline: 'gated', trigger: 'manual', status: 'running' });
      expect(run.run_id).toMatch(/^run_\d{8}_\d{6}_manual$/);
      expect(h.events[0]).toMatchObject({ event: 'run_started', run_id: run.run_id });
    });

    it('lets the admin name the account, and takes a trigger and options', async () => {
      const run = await start(ADMIN, { site_id: 'site-7', pipeline: 'content', account_id: 'initech', trigger: 'scheduled', options: { delay_ms: 0, items_per_stage: 0 } });
      expect(run).toMatchObject({ account_id: 'initech', site_id: 'site-7', trigger: 'scheduled' });
      expect(run.run_id).toMatch(/_scheduled$/);
    });

    it('refuses bad bodies with 400 and starts nothing', async () => {
      const cases: [unknown, string, RegExp][] = [
        [{ pipeline: 'gated' }, 'BAD_REQUEST', /site_id/],
        [{ site_id: 'site-5', pipeline: 'gated', extra: 1 }, 'BAD_REQUEST', /additional properties/],
        [{ site_id: 'site-5', pipeline: 'nope' }, 'UNKNOWN_PIPELINE', /No pipeline named "nope"/],
        [{ site_id: 'site-5', pipeline: 'content', options: { delay_ms: -5 } }, 'INVALID_OPTIONS', /`delay_ms`/],
        [{ site_id: 'site-5', pipeline: 'content', options: [] }, 'BAD_REQUEST', /options/],
        [{ site_id: 'site-5', pipeline: 'gated', trigger: 'Not Valid' }, 'BAD_REQUEST', /trigger/],
      ];
      for (const [payload, code, message] of cases) {
        const res = await app.inject({ method: 'POST', url: `${API}/runs`, headers: auth(SITE5), payload: payload as object });
        expectError(res, 400, code);
        expect((res.json() as { error: { message: string } }).error.message).toMatch(message);
      }
      expect(await h.store.listRuns({})).toEqual([]);
    });

    it('takes ids given as JSON numbers as their decimal strings', async () => {
      const run = await start(ADMIN, { site_id: 5, pipeline: 'gated', account_id: 7 });
      expect(run).toMatchObject({ site_id: '5', account_id: '7' });
      expect((await h.store.getRun(run.run_id))).toMatchObject({ siteId: '5', accountId: '7' });
      const byNumber = await start(ADMIN, { site_id: '5', pipeline: 'gated' });
      const listed = await app.inject({ url: `${API}/runs?site_id=5`, headers: auth(ADMIN) });
      expect(listed.json().data.map((r: { run_id: string }) => r.run_id)).toEqual([byNumber.run_id, run.run_id].sort().reverse());
      const card = await app.inject({ url: `${API}/current_processing/?site_id=5&run_id=${run.run_id}`, headers: auth(ADMIN) });
      expect(card.statusCode, card.body).toBe(200);
    });

    it('refuses an id that is no id with 400 naming the field, and starts nothing', async () => {
      const cases: [Record<string, unknown>, string][] = [
        [{ site_id: 5.5, pipeline: 'gated' }, 'site_id'],
        [{ site_id: -5, pipeline: 'gated' }, 'site_id'],
        [{ site_id: 2 ** 53, pipeline: 'gated' }, 'site_id'],
        [{ site_id: true, pipeline: 'gated' }, 'site_id'],
        [{ site_id: '..', pipeline: 'gated' }, 'site_id'],
        [{ site_id: { id: 5 }, pipeline: 'gated' }, 'site_id'],
        [{ site_id: 5, pipeline: 'gated', account_id: 1.5 }, 'account_id'],
        [{ site_id: 5, pipeline: 'gated', account_id: null }, 'account_id'],
      ];
      for (const [payload, field] of cases) {
        const res = await app.inject({ method: 'POST', url: `${API}/runs`, headers: auth(ADMIN), payload });
        expectError(res, 400, 'BAD_REQUEST');
        expect((res.json() as { error: { message: string } }).error.message, JSON.stringify(payload)).toContain(`\`${field}\``);
      }
      for (const url of [`${API}/runs?site_id=-1`, `${API}/current_processing/?site_id=..`]) {
        const res = await app.inject({ url, headers: auth(ADMIN) });
        expectError(res, 400, 'BAD_REQUEST');
        expect((res.json() as { error: { message: string } }).error.message).toContain('`site_id`');
      }
      expect(await h.store.listRuns({})).toEqual([]);
    });

    it('answers malformed JSON with 400, an oversized body with 413, another media type with 415', async () => {
      const headers = { ...auth(SITE5), 'content-type': 'application/json' };
      expectError(await app.inject({ method: 'POST', url: `${API}/runs`, headers, payload: '{"site_id":' }), 400, 'BAD_REQUEST');
      const big = JSON.stringify({ site_id: 'site-5', pipeline: 'gated', options: { pad: 'x'.repeat(5000) } });
      expectError(await app.inject({ method: 'POST', url: `${API}/runs`, headers, payload: big }), 413, 'PAYLOAD_TOO_LARGE');
      const text = { ...auth(SITE5), 'content-type': 'text/plain' };
      expectError(await app.inject({ method: 'POST', url: `${API}/runs`, headers: text, payload: 'hello' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
      expect(await h.store.listRuns({})).toEqual([]);
    });
  });

  describe('GET /pipelines', () => {
    it('lists the registered pipelines with their stages, and external', async () => {
      const res = await app.inject({ url: `${API}/pipelines`, headers: auth(SITE5) });
      const names = res.json().data.map((p: { name: string }) => p.name);
      expect(names).toEqual(['gated', 'content', 'external']);
      expect(res.json().data[1].stages[0]).toEqual({ number: 1, key: 'keywords_to_clusters', name: 'Keywords → Clusters' });
      expect((await app.inject({ url: `${API}/pipelines` })).statusCode).toBe(401);
    });
  });

  describe('GET /runs and /runs/:run_id', () => {
    it('lists runs newest first, filtered by site and status', async () => {
      const a = await start();
      await gate.finish();
      const b = await start(ADMIN, { site_id: 'site-9', pipeline: 'gated' });
      const all = await app.inject({ url: `${API}/runs`, headers: auth(ADMIN) });
      expect(all.json().data.map((r: { run_id: string }) => r.run_id)).toEqual([b.run_id, a.run_id].sort().reverse());
      const mine = await app.inject({ url: `${API}/runs`, headers: auth(SITE5) });
      expect(mine.json().data.map((r: { run_id: string }) => r.run_id)).toEqual([a.run_id]);
      const running = await app.inject({ url: `${API}/runs?site_id=site-9&status=running`, headers: auth(ADMIN) });
      expect(running.json().data.map((r: { run_id: string }) => r.run_id)).toEqual([b.run_id]);
      expectError(await app.inject({ url: `${API}/runs?status=sleeping`, headers: auth(ADMIN) }), 400, 'BAD_REQUEST');
      expectError(await app.inject({ url: `${API}/runs?limit=0`, headers: auth(ADMIN) }), 400, 'BAD_REQUEST');
    });

    it('pages with `before`, a run id: the runs listed after it, until none are left', async () => {
      const started: string[] = [];
      for (let i = 0; i < 5; i++) started.push((await start(ADMIN, { site_id: 'site-9', pipeline: 'content', options: { delay_ms: 0, items_per_stage: 0 } })).run_id);
      const ids = (res: { json(): unknown }) => (res.json() as { data: { run_id: string }[] }).data.map((r) => r.run_id);
      const pages: string[] = [];
      let before: string | undefined;
      for (;;) {
        const page = ids(await app.inject({ url: `${API}/runs?limit=2${before ? `&before=${before}` : ''}`, headers: auth(ADMIN) }));
        if (page.length === 0) break;
        pages.push(...page);
        before = page[page.length - 1];
      }
      expect(pages).toEqual([...started].reverse());
      expectError(await app.inject({ url: `${API}/runs?before=run_20200101_000000_manual`, headers: auth(ADMIN) }), 404, 'RUN_NOT_FOUND');
      expectError(await app.inject({ url: `${API}/runs?before=${started[0]}`, headers: auth(SITE5) }), 403, 'FORBIDDEN');
    });

    it('reads one run with its stages, and answers 404 for an unknown id and 400 for a malformed one', async () => {
      const run = await start();
      const res = await app.inject({ url: `${API}/runs/${run.run_id}`, headers: auth(SITE5) });
      expect(res.statusCode).toBe(200);
      expect(res.json().data).toMatchObject({
        run_id: run.run_id,
        status: 'running',
        state: 'running',
        stages: [
          { number: 1, name: 'Stage 1', state: 'running', total_items: 2 },
          { number: 2, state: 'pending', total_items: null },
          { number: 3, state: 'pending' },
        ],
      });
      expectError(await app.inject({ url: `${API}/runs/run_20200101_000000_manual`, headers: auth(SITE5) }), 404, 'RUN_NOT_FOUND');
      expectError(await app.inject({ url: `${API}/runs/..%2F..%2Fetc%2Fpasswd`, headers: auth(SITE5) }), 400, 'INVALID_RUN_ID');
      expectError(await app.inject({ url: `${API}/runs/run_1'%20OR%201=1`, headers: auth(SITE5) }), 400, 'INVALID_RUN_ID');
    });
  });

  describe('commands', () => {
    it('pauses gracefully, is idempotent, records who sent it, and resumes', async () => {
      const run = await start();
      const url = `${API}/runs/${run.run_id}`;
      await gate.inFlight(1);
      const pause = await app.inject({ method: 'POST', url: `${url}/pause`, headers: auth(SITE5), payload: { reason: 'provider outage' } });
      expect(pause.statusCode).toBe(200);
      expect(pause.json()).toMatchObject({ accepted: true, data: { status: 'running' } });
      expect(h.events.find((e) => e.event === 'command')).toMatchObject({ command: 'pause', by: 'ops-site-5', reason: 'provider outage' });
      await gate.finish();
      await h.next(isTransition('run', 'paused'));
      // A second pause, with or without a body, changes nothing.
      const again = await app.inject({ method: 'POST', url: `${url}/pause`, headers: auth(SITE5) });
      expect(again.json()).toMatchObject({ accepted: false, data: { status: 'paused' } });
      const empty = await app.inject({ method: 'POST', url: `${url}/pause`, headers: { ...auth(SITE5), 'content-type': 'application/json' }, payload: '' });
      expect(empty.statusCode).toBe(200);
      expect(h.events.filter((e) => e.event === 'command')).toHaveLength(1);
      const resume = await app.inject({ method: 'POST', url: `${url}/resume`, headers: auth(SITE5) });
      expect(resume.json()).toMatchObject({ accepted: true, data: { status: 'running' } });
    });

    it('answers 409 for a command the state does not allow and changes nothing', async () => {
      const run = await start();
      const url = `${API}/runs/${run.run_id}`;
      await gate.inFlight(1);
      await h.engine.settle();
      const before = h.events.length;
      expectError(await app.inject({ method: 'POST', url: `${url}/retry`, headers: auth(SITE5) }), 409, 'COMMAND_NOT_ALLOWED');
      expectError(await app.inject({ method: 'POST', url: `${url}/close`, headers: auth(SITE5) }), 409, 'COMMAND_NOT_ALLOWED');
      expect(h.events.length).toBe(before);
      expectError(await app.inject({ method: 'POST', url: `${url}/explode`, headers: auth(SITE5) }), 400, 'BAD_REQUEST');
      expectError(await app.inject({ method: 'POST', url: `${url}/pause`, headers: auth(SITE5), payload: { reason: 'x'.repeat(501) } }), 400, 'BAD_REQUEST');
      expectError(await app.inject({ method: 'POST', url: `${url}/pause`, headers: auth(SITE5), payload: { why: 'x' } }), 400, 'BAD_REQUEST');
      expectError(await app.inject({ method: 'POST', url: `${API}/runs/run_20200101_000000_manual/pause`, headers: auth(SITE5) }), 404, 'RUN_NOT_FOUND');
      expect((await h.engine.getRun(run.run_id))!.status).toBe('running');
      expect(h.events.length).toBe(before);
    });
  });

  describe('GET /runs/:run_id/trace', () => {
    it('streams the events as JSONL in seq order, after a seq', async () => {
      const run = await start();
      await gate.finish();
      await h.next((e) => e.event === 'stage_item_processed');
      const res = await app.inject({ url: `${API}/runs/${run.run_id}/trace`, headers: auth(SITE5) });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/x-ndjson/);
      const log = await h.store.readEvents(run.run_id, 0);
      expect(res.body).toBe(log.map((e) => `${JSON.stringify(e)}\n`).join(''));
      const after = await app.inject({ url: `${API}/runs/${run.run_id}/trace?after_seq=3`, headers: auth(SITE5) });
      expect(after.body.trimEnd().split('\n').map((l) => JSON.parse(l).seq)).toEqual(log.slice(3).map((e) => e.seq));
      expectError(await app.inject({ url: `${API}/runs/${run.run_id}/trace?after_seq=-1`, headers: auth(SITE5) }), 400, 'BAD_REQUEST');
    });
  });

  describe('GET /current_processing/', () => {
    it('answers for a paused run with its last progress, an empty stage without going blank, a completed run until it is closed', async () => {
      const run = await start();
      const q = `${API}/current_processing/?site_id=site-5&run_id=${run.run_id}`;
      await gate.finish();
      await gate.inFlight(1);
      await app.inject({ method: 'POST', url: `${API}/runs/${run.run_id}/pause`, headers: auth(SITE5) });
      await gate.finish();
      await h.next(isTransition('run', 'paused'));
      // Paused between stages: the finished stage, at 100%, paused.
      let card = (await app.inject({ url: q, headers: auth(SITE5) })).json().data;
      expect(card).toMatchObject({ run_id: run.run_id, stage_number: 1, processed_items: 2, total_items: 2, percentage: 100, status: 'paused' });

      await app.inject({ method: 'POST', url: `${API}/runs/${run.run_id}/resume`, headers: auth(SITE5) });
      await gate.loadHeldNow();
      await app.inject({ method: 'POST', url: `${API}/runs/${run.run_id}/pause`, headers: auth(SITE5) });
      gate.releaseLoad();
      await h.next(isTransition('stage_2', 'empty'));
      await h.next(isTransition('run', 'paused'), h.events.findLast((e) => e.event === 'command')!.seq);
      card = (await app.inject({ url: q, headers: auth(SITE5) })).json().data;
      expect(card).toMatchObject({ stage_number: 2, total_items: 0, processed_items: 0, percentage: 100, stage_state: 'empty', status: 'paused', currently_processing: [], up_next: [] });

      await app.inject({ method: 'POST', url: `${API}/runs/${run.run_id}/resume`, headers: auth(SITE5) });
      await gate.finish();
      await h.engine.whenRetired(run.run_id);
      for (const url of [q, `${API}/current_processing?site_id=site-5`]) {
        card = (await app.inject({ url, headers: auth(SITE5) })).json().data;
        expect(card).toMatchObject({ run_id: run.run_id, stage_number: 3, percentage: 100, status: 'completed', stage_state: 'completed' });
      }
      await app.inject({ method: 'POST', url: `${API}/runs/${run.run_id}/close`, headers: auth(SITE5) });
      expect((await app.inject({ url: q, headers: auth(SITE5) })).json()).toEqual({ data: null });
      expect((await app.inject({ url: `${API}/current_processing?site_id=site-5`, headers: auth(SITE5) })).json()).toEqual({ data: null });
    });

    it('refuses a query with neither site nor run, and a run of another site', async () => {
      const run = await start();
      expectError(await app.inject({ url: `${API}/current_processing/`, headers: auth(SITE5) }), 400, 'BAD_REQUEST');
      expectError(await app.inject({ url: `${API}/current_processing/?site_id=site-9&run_id=${run.run_id}`, headers: auth(ADMIN) }), 404, 'RUN_NOT_FOUND');
      expectError(await app.inject({ url: `${API}/current_processing/?run_id=bad`, headers: auth(SITE5) }), 400, 'INVALID_RUN_ID');
    });
  });

  describe('operations', () => {
    it('answers /healthz, /metrics and the OpenAPI description without a token', async () => {
      const run = await start();
      await gate.finish();
      await h.next((e) => e.event === 'stage_item_processed');
      const health = await app.inject({ url: '/healthz' });
      expect(health.json()).toEqual({ status: 'ok', store: 'sqlite', runs_in_memory: 1 });
      const metrics = await app.inject({ url: '/metrics' });
      expect(metrics.headers['content-type']).toMatch(/^text\/plain/);
      expect(metrics.body).toContain('runstate_runs{status="running"} 1');
      expect(metrics.body).toContain('runstate_items_total{outcome="processed"} 1');
      expect(metrics.body).toMatch(/runstate_http_request_duration_seconds_count\{method="POST",route="\/api\/v1\/automation\/runs",status_code="201"\} 1/);
      expect(metrics.body).toContain('runstate_events_total{event="state_change"}');
      const spec = (await app.inject({ url: '/api/v1/openapi.json' })).json();
      expect(spec.openapi).toMatch(/^3\./);
      expect(Object.keys(spec.paths)).toEqual(
        expect.arrayContaining([`${API}/runs`, `${API}/runs/{run_id}`, `${API}/runs/{run_id}/{command}`, `${API}/runs/{run_id}/trace`, `${API}/current_processing`]),
      );
      expect(run.run_id).toBeTruthy();
    });

    it('answers an unknown route with 404 in the error shape and echoes the request id', async () => {
      const res = await app.inject({ url: '/nope?token=secret', headers: { 'x-request-id': 'req-42' } });
      expectError(res, 404, 'NOT_FOUND');
      expect(res.body).not.toContain('secret');
      expect(res.headers['x-request-id']).toBe('req-42');
    });
  });

  describe('access control', () => {
    it('refuses requests without a token or with a wrong one, changing nothing', async () => {
      for (const headers of [{}, auth('wrong-token-0123456789abcdef'), { authorization: `Bearer ${ADMIN}` }, { authorization: 'Token' }]) {
        expectError(await app.inject({ method: 'POST', url: `${API}/runs`, headers, payload: { site_id: 'site-5', pipeline: 'gated' } }), 401, 'UNAUTHORIZED');
        expectError(await app.inject({ url: `${API}/runs`, headers }), 401, 'UNAUTHORIZED');
      }
      expect(await h.store.listRuns({})).toEqual([]);
    });

    it('keeps a site token to its own sites: read, command, list, start and current_processing', async () => {
      const run = await start();
      await gate.inFlight(1);
      await h.engine.settle();
      const before = h.events.length;
      const denied = [
        app.inject({ url: `${API}/runs/${run.run_id}`, headers: auth(OTHER) }),
        app.inject({ method: 'POST', url: `${API}/runs/${run.run_id}/cancel`, headers: auth(OTHER) }),
        app.inject({ url: `${API}/runs/${run.run_id}/trace`, headers: auth(OTHER) }),
        app.inject({ url: `${API}/runs?site_id=site-5`, headers: auth(OTHER) }),
        app.inject({ method: 'POST', url: `${API}/runs`, headers: auth(OTHER), payload: { site_id: 'site-5', pipeline: 'gated' } }),
        app.inject({ method: 'POST', url: `${API}/runs`, headers: auth(SITE5), payload: { site_id: 'site-5', pipeline: 'gated', account_id: 'globex' } }),
        app.inject({ url: `${API}/current_processing/?site_id=site-5`, headers: auth(OTHER) }),
        app.inject({ url: `${API}/current_processing/?run_id=${run.run_id}`, headers: auth(OTHER) }),
      ];
      for (const res of await Promise.all(denied)) expectError(res, 403, 'FORBIDDEN');
      const list = await app.inject({ url: `${API}/runs`, headers: auth(OTHER) });
      expect(list.json()).toEqual({ data: [] });
      expect(h.events.length).toBe(before);
      expect((await h.store.listRuns({})).length).toBe(1);
      expect((await h.engine.getRun(run.run_id))!.status).toBe('running');
    });
  });
});
