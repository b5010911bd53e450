import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../helpers/engine.js';
import { callApi, startService, type ServiceProcess } from '../../helpers/service-process.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const API = '/api/v1/automation';

// A .ts module with no imports at all: a plain object is a pipeline.
const PLAIN_TS = `
const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    count: { type: 'integer', minimum: 1, maximum: 50, default: 3, description: 'Items per stage' },
    label: { type: 'string', enum: ['a', 'b'], default: 'a' },
  },
};
export default {
  name: 'plain_ts',
  description: 'A TypeScript module with no imports',
  options_schema: schema,
  stages: [
    { key: 'first', name: 'First', loadItems: async ({ options }: { options: { count: number } }) =>
        Array.from({ length: options.count }, (_, i) => ({ id: i + 1, title: 'one ' + (i + 1) })),
      processItem: async () => ({ cost: 1 }) },
    { key: 'second', name: 'Second', concurrency: 2,
      loadItems: async ({ options }: { options: { count: number; label: string } }) =>
        Array.from({ length: options.count }, (_, i) => ({ id: 'x' + i, title: options.label + i })),
      processItem: async () => {} },
  ],
};
`;

// An .mjs module outside the repository, importing from the package by name.
const IMPORTED_MJS = `
import { definePipeline } from 'runstate';
export default definePipeline({
  name: 'imported_mjs',
  options_schema: { type: 'object', properties: { n: { type: 'integer', minimum: 0, default: 2 } }, required: ['n'] },
  stages: [{ key: 'only', name: 'Only', loadItems: ({ options }) => Array.from({ length: options.n }, (_, i) => ({ id: i, title: 'item ' + i })),
             processItem: async (item, ctx) => { if (!ctx.idempotencyKey.endsWith(':' + item.id)) throw new Error('bad key'); } }],
});
`;

const WORKERS_JSON = {
  name: 'on_workers',
  description: 'Stages that run on workers',
  options_schema: { type: 'object', properties: { lang: { type: 'string', default: 'en' } } },
  stages: [
    { key: 'fetch', name: 'Fetch', queue: 'fetchers', concurrency: 4 },
    { key: 'render', name: 'Render', queue: 'renderers', max_attempts: 2, lease_ms: 60000, approval: true },
  ],
};

async function api(svc: ServiceProcess, path: string, body?: unknown) {
  const res = await callApi(svc, path, { body });
  return { status: res.status, json: res.body };
}

async function finished(svc: ServiceProcess, runId: string): Promise<{ status: string }> {
  for (let i = 0; i < 300; i++) {
    const { json } = await api(svc, `/runs/${runId}`);
    if (['completed', 'failed', 'cancelled'].includes(json.data.status)) return json.data;
    await sleep(50);
  }
  throw new Error(`run ${runId} did not finish`);
}

/** Starts the service expecting it to refuse: its exit code and what it said. */
function refusedStart(dataDir: string, pipelines: string): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'service/server.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', RUNSTATE_DATA: dataDir, RUNSTATE_LOG_LEVEL: 'warn', RUNSTATE_PIPELINES: pipelines },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, out })));
}

describe('RUNSTATE_PIPELINES', () => {
  const dir = tempDir('runstate-pipelines-');
  let svc: ServiceProcess;

  beforeAll(async () => {
    mkdirSync(join(dir.path, 'mods'));
    mkdirSync(join(dir.path, 'elsewhere'));
    writeFileSync(join(dir.path, 'mods', 'plain.ts'), PLAIN_TS);
    writeFileSync(join(dir.path, 'mods', 'README.md'), 'not a pipeline, not loaded');
    writeFileSync(join(dir.path, 'elsewhere', 'imported.mjs'), IMPORTED_MJS);
    writeFileSync(join(dir.path, 'workers.json'), JSON.stringify(WORKERS_JSON));
    const pipelines = [join(dir.path, 'mods'), join(dir.path, 'elsewhere', 'imported.mjs'), join(dir.path, 'workers.json')].join(',');
    svc = await startService(join(dir.path, 'data'), { RUNSTATE_PIPELINES: pipelines });
  }, 30_000);

  afterAll(async () => {
    await svc?.stop();
    dir.remove();
  });

  it('lists every pipeline beside the demo ones, with its stages and options schema', async () => {
    const { json } = await api(svc, '/pipelines');
    const byName = new Map((json.data as { name: string }[]).map((p) => [p.name, p]));
    expect([...byName.keys()]).toEqual(['content', 'face_processor', 'face_processor_workers', 'plain_ts', 'imported_mjs', 'on_workers', 'external']);
    expect(byName.get('plain_ts')).toMatchObject({
      description: 'A TypeScript module with no imports',
      stages: [{ number: 1, key: 'first', name: 'First' }, { number: 2, key: 'second', name: 'Second' }],
      options_schema: { properties: { count: { type: 'integer', default: 3, description: 'Items per stage' } } },
    });
    expect(byName.get('imported_mjs')).toMatchObject({ options_schema: { required: ['n'] }, stages: [{ key: 'only' }] });
    expect(byName.get('on_workers')).toMatchObject({
      stages: [{ key: 'fetch', name: 'Fetch', queue: 'fetchers' }, { key: 'render', queue: 'renderers' }],
      options_schema: WORKERS_JSON.options_schema,
    });
    expect(byName.get('content')).toMatchObject({ options_schema: { properties: { review: { type: 'boolean', default: false } } } });
  });

  it('runs each module to completion, an event per item, with the schema defaults filled in', async () => {
    const started = await api(svc, '/runs', { site_id: 'site-1', pipeline: 'plain_ts', options: { count: 4 } });
    expect(started.status).toBe(201);
    expect(started.json.data.options).toEqual({ count: 4, label: 'a' });
    const other = await api(svc, '/runs', { site_id: 'site-1', pipeline: 'imported_mjs' });
    expect(other.status).toBe(201);
    expect(other.json.data.options).toEqual({ n: 2 });
    for (const [runId, perStage] of [[started.json.data.run_id, [4, 4]], [other.json.data.run_id, [2]]] as const) {
      expect(await finished(svc, runId)).toMatchObject({ status: 'completed' });
      const trace = await fetch(`${svc.base}${API}/runs/${runId}/trace`, { headers: { authorization: `Token ${svc.token}` } });
      const events = (await trace.text()).trim().split('\n').map((l) => JSON.parse(l) as { event: string; stage?: number; processed?: number });
      perStage.forEach((n, i) => {
        const processed = events.filter((e) => e.event === 'stage_item_processed' && e.stage === i + 1);
        expect(processed.map((e) => e.processed), `${runId} stage ${i + 1}`).toEqual(Array.from({ length: n }, (_, k) => k + 1));
      });
    }
  });

  it('refuses options that break the schema, naming the field and the rule, and starts nothing', async () => {
    const before = (await api(svc, '/runs')).json.data.length;
    for (const [pipeline, options, message] of [
      ['plain_ts', { count: 0 }, /`count` must be >= 1 \(rule `minimum`\)/],
      ['plain_ts', { label: 'c' }, /`label` must be equal to one of the allowed values \(rule `enum`\)/],
      ['plain_ts', { colour: 'red' }, /`colour` is not a known option/],
      ['imported_mjs', { n: 'two' }, /`n` must be integer/],
    ] as const) {
      const res = await api(svc, '/runs', { site_id: 'site-1', pipeline, options });
      expect(res.status, JSON.stringify(options)).toBe(400);
      expect(res.json.error.code).toBe('INVALID_OPTIONS');
      expect(res.json.error.message).toMatch(message);
    }
    expect((await api(svc, '/runs')).json.data.length).toBe(before);
  });

  it('starts a .json declaration whose stages are jobs for workers, with each stage’s lease, and holds a stage with `approval` until approved', async () => {
    const res = await api(svc, '/runs', { site_id: 'site-1', pipeline: 'on_workers' });
    expect(res.status).toBe(201);
    const runId = res.json.data.run_id as string;
    const claimAll = async (queue: string, waitMs: number) => {
      const r = await fetch(`${svc.base}/api/v1/workers/claim`, {
        method: 'POST',
        headers: { authorization: `Token ${svc.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ queue, worker_id: 'test', wait_ms: waitMs }),
      });
      return ((await r.json()) as { jobs: { job_id: string; kind: string; stage_key: string; lease_ms: number; options: unknown }[] }).jobs;
    };
    const claim = async (queue: string) => (await claimAll(queue, 5000))[0]!;
    const fetchLoad = await claim('fetchers');
    expect(fetchLoad).toMatchObject({ kind: 'load', stage_key: 'fetch', lease_ms: 30_000, options: { lang: 'en' } });
    await fetch(`${svc.base}/api/v1/workers/jobs/${fetchLoad.job_id}/complete`, {
      method: 'POST',
      headers: { authorization: `Token ${svc.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ items: [] }),
    });
    // Stage 2 waits for approval: the run says so and its queue hands out nothing.
    await expect.poll(async () => (await api(svc, `/runs/${runId}`)).json.data.status, { timeout: 10_000 }).toBe('awaiting_approval');
    expect(await claimAll('renderers', 300)).toEqual([]);
    expect((await api(svc, `/runs/${runId}/approve`, { reason: 'checked' })).status).toBe(200);
    expect(await claim('renderers')).toMatchObject({ kind: 'load', stage_key: 'render', lease_ms: 60_000 });
    await api(svc, `/runs/${runId}/cancel`, {});
  });

  describe('stops the start with exit 2, naming the file', () => {
    const write = (name: string, text: string) => {
      const path = join(dir.path, 'bad', name);
      mkdirSync(join(dir.path, 'bad'), { recursive: true });
      writeFileSync(path, text);
      return path;
    };

    it('for a module with a syntax error', async () => {
      const file = write('broken.mjs', 'export default { name: "broken", stages: [ };');
      const { code, out } = await refusedStart(join(dir.path, 'data-broken'), file);
      expect(code).toBe(2);
      expect(out).toContain(`${file}: failed to load: SyntaxError`);
    });

    it('for an export that is not a pipeline, field by field', async () => {
      const file = write('not-a-pipeline.ts', `export default { name: 'half', stages: [
        { key: 'a', name: 'A', loadItems: async () => [], processItem: async () => {} },
        { key: 'b', name: 'B', loadItems: async () => [] },
      ] };`);
      const { code, out } = await refusedStart(join(dir.path, 'data-half'), file);
      expect(code).toBe(2);
      expect(out).toContain(`${file}: not a pipeline "half": stage 2 has no \`processItem\` and no \`queue\``);
    });

    it('for an `approval` that is not true or false', async () => {
      const file = write('gate.json', JSON.stringify({ name: 'gate', stages: [{ key: 'a', name: 'A', queue: 'q', approval: 'yes' }] }));
      const { code, out } = await refusedStart(join(dir.path, 'data-gate'), file);
      expect(code).toBe(2);
      expect(out).toContain(`${file}: not a pipeline "gate": stage 1's \`approval\` must be true or false, got a string`);
    });

    it('for two pipelines of one name', async () => {
      const first = write('one.mjs', 'export default { name: "twice", stages: [{ key: "a", name: "A", loadItems: () => [], processItem: () => {} }] };');
      const second = write('two.json', JSON.stringify({ name: 'twice', stages: [{ key: 'a', name: 'A', queue: 'q' }] }));
      const { code, out } = await refusedStart(join(dir.path, 'data-twice'), `${first},${second}`);
      expect(code).toBe(2);
      expect(out).toContain(`${second}: a pipeline named "twice" is already defined in ${first}`);
    });
  });
});
