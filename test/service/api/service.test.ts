import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../service/config.js';
import { buildService } from '../../../service/service.js';
import { TraceWriter } from '../../../service/trace/trace-writer.js';
import { ADMIN, appOn, auth } from '../../helpers/app.js';
import { isTransition, tempDir } from '../../helpers/engine.js';
import { gatedPipeline } from '../../helpers/gated.js';
import { wsClient } from '../../helpers/ws-client.js';

const API = '/api/v1/automation';
const NUMERIC = 'numeric-token-0123456789abcdef';

describe('buildService (the wiring server.ts runs)', () => {
  const dirs: ReturnType<typeof tempDir>[] = [];
  const stops: (() => Promise<void>)[] = [];
  function dir() {
    const d = tempDir('runstate-service-');
    dirs.push(d);
    return d.path;
  }
  async function service(...args: Parameters<typeof appOn>) {
    const h = await appOn(...args);
    stops.push(h.stop);
    return h;
  }
  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
    dirs.splice(0).forEach((d) => d.remove());
  });

  it('listens on a free port after start, serves the API and the hub, and traces what runs do', async () => {
    const gate = gatedPipeline('gated', [1]);
    const h = await service(dir(), [gate.pipeline]);
    const { url, port } = await h.start();
    expect(url).toBe(`http://127.0.0.1:${port}`);
    expect(await (await fetch(`${url}/healthz`)).json()).toMatchObject({ status: 'ok', store: 'sqlite' });
    const res = await fetch(`${url}${API}/runs`, {
      method: 'POST',
      headers: { ...auth(ADMIN), 'content-type': 'application/json' },
      body: JSON.stringify({ site_id: 5, pipeline: 'gated' }),
    });
    expect(res.status).toBe(201);
    const run = ((await res.json()) as { data: { run_id: string; site_id: string } }).data;
    expect(run.site_id).toBe('5');
    const watcher = await wsClient(`${url.replace('http', 'ws')}/ws?token=${ADMIN}`);
    watcher.send({ type: 'subscribe', topic: `run:${run.run_id}`, after_seq: 0 });
    await gate.finish();
    const done = await h.next(isTransition('run', 'completed'));
    // The hub gets the engine's events: the watcher sees the run to its end.
    await watcher.until(() => watcher.events().some((m) => m.seq === done.seq));
    watcher.close();
    await h.engine.whenRetired(run.run_id);
    await h.traces.flush();
    // The service's own listeners: metrics counted the item, the trace file has every event.
    expect(await h.metrics.registry.getSingleMetricAsString('runstate_items_total')).toContain('outcome="processed"} 1');
    const record = (await h.store.getRun(run.run_id))!;
    const trace = readFileSync(join(TraceWriter.runDir(h.config.dataDir, record), 'run_trace.jsonl'), 'utf8');
    expect(trace.trimEnd().split('\n')).toHaveLength(record.lastSeq);
  });

  it('stops once, even when called twice or before start: items in flight aborted, nothing listening, no new runs', async () => {
    const idle = await service(dir(), []);
    await Promise.all([idle.stop(), idle.stop()]);

    const gate = gatedPipeline('gated', [2]);
    const h = await service(dir(), [gate.pipeline]);
    const { url } = await h.start();
    await h.engine.startRun({ accountId: 'acme', siteId: 'site-5', pipeline: 'gated' });
    await gate.inFlight(1);
    await h.stop();
    await h.stop();
    expect(gate.aborted).toHaveLength(1);
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    await expect(h.engine.startRun({ accountId: 'acme', siteId: 'site-5', pipeline: 'gated' })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });

  it('recovers on start what the last one left running, and runs its item again', async () => {
    const data = dir();
    const first = gatedPipeline('gated', [1]);
    const a = await service(data, [first.pipeline]);
    await a.start();
    const run = await a.engine.startRun({ accountId: 'acme', siteId: 'site-5', pipeline: 'gated' });
    const [inFlight] = await first.inFlight(1);
    await a.stop();

    const second = gatedPipeline('gated', [1]);
    const b = await service(data, [second.pipeline]);
    expect(b.engine.isHosted(run.run_id)).toBe(false);
    await b.start();
    expect(b.engine.isHosted(run.run_id)).toBe(true);
    const [again] = await second.inFlight(1);
    expect(again!.key).toBe(inFlight!.key);
    await second.finish();
    await b.next(isTransition('run', 'completed'));
    expect((await b.engine.getRun(run.run_id))!.status).toBe('completed');
  });

  it('loads a tokens file whose ids are JSON numbers: the token sees site "5"', async () => {
    const gate = gatedPipeline('gated', [1]);
    const h = await service(dir(), [gate.pipeline], {}, { tokens: [{ token: NUMERIC, name: 'ops-5', account_id: 5, site_ids: [5, 'x'] }] });
    expect(h.tokens.authenticate(NUMERIC)).toMatchObject({ accountId: '5', siteIds: new Set(['5', 'x']) });
    const started = await h.app.inject({ method: 'POST', url: `${API}/runs`, headers: auth(NUMERIC), payload: { site_id: '5', pipeline: 'gated' } });
    expect(started.statusCode, started.body).toBe(201);
    expect(started.json().data).toMatchObject({ site_id: '5', account_id: '5' });
    const listed = await h.app.inject({ url: `${API}/runs?site_id=5`, headers: auth(NUMERIC) });
    expect(listed.json().data.map((r: { run_id: string }) => r.run_id)).toEqual([started.json().data.run_id]);
    const elsewhere = await h.app.inject({ method: 'POST', url: `${API}/runs`, headers: auth(NUMERIC), payload: { site_id: 6, pipeline: 'gated' } });
    expect(elsewhere.statusCode).toBe(403);
  });

  it('refuses a tokens file with an id that is no id, naming the entry and the field, before writing anything', async () => {
    const data = dir();
    const file = join(data, 'bad-tokens.json');
    writeFileSync(file, JSON.stringify([{ token: NUMERIC, name: 'ops-5', account_id: 5, site_ids: [5, 1.5] }]));
    const config = loadConfig({ RUNSTATE_DATA: data, RUNSTATE_TOKENS_FILE: file, PORT: '0' });
    const built = buildService(config);
    await expect(built).rejects.toThrow(ConfigError);
    await expect(built).rejects.toThrow(/entry 0: Expected `site_ids\[1\]` to be an id .*got 1\.5\./);
    expect(existsSync(join(data, 'admin-token'))).toBe(false);
  });
});
