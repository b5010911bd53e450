import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/engine.js';
import { startService, type ServiceProcess } from '../helpers/service-process.js';

const ROOT = join(import.meta.dirname, '..', '..');
const API = '/api/v1/automation';

describe('examples/jsonl-import, as its README says to run it', () => {
  const dir = tempDir('runstate-example-');
  const source = join(dir.path, 'in');
  const database = join(dir.path, 'out', 'import.db');
  let svc: ServiceProcess;

  async function api(path: string, body?: unknown) {
    const res = await fetch(`${svc.base}${API}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: `Token ${svc.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as { data: { run_id: string; status: string; stages: { state: string; processed_items: number; failed_items: number }[] } } };
  }

  async function finished(runId: string) {
    for (let i = 0; i < 400; i++) {
      const { json } = await api(`/runs/${runId}`);
      if (['completed', 'failed', 'cancelled'].includes(json.data.status)) return json.data;
      await sleep(50);
    }
    throw new Error('the run did not finish');
  }

  beforeAll(async () => {
    mkdirSync(source);
    mkdirSync(join(dir.path, 'out'));
    const lines = (records: unknown[]) => records.map((r) => JSON.stringify(r)).join('\n') + '\n';
    writeFileSync(join(source, 'a.jsonl'), lines([{ id: 1, type: 'user', name: 'Ada' }, { id: 2, type: 'user', name: 'Grace' }, { id: 3, type: 'order', total: 12 }]));
    writeFileSync(join(source, 'b.jsonl'), lines([{ id: 3, type: 'order', total: 15 }, { id: 'x-4', type: 'order', total: 7 }, { id: 5, name: 'no type' }]));
    writeFileSync(join(source, 'broken.jsonl'), `${JSON.stringify({ id: 9, type: 'user' })}\n{not json\n`);
    writeFileSync(join(source, 'notes.txt'), 'not a .jsonl file');
    svc = await startService(join(dir.path, 'data'), { RUNSTATE_PIPELINES: join(ROOT, 'examples', 'jsonl-import') });
  }, 30_000);

  afterAll(async () => {
    await svc?.stop();
    dir.remove();
  });

  it('imports the files into SQLite, fails the broken one by name, and counts by type', async () => {
    const started = await api('/runs', { site_id: 'local', pipeline: 'jsonl_import', options: { source, database } });
    expect(started.status).toBe(201);
    const run = await finished(started.json.data.run_id);
    expect(run.status).toBe('completed');
    expect(run.stages.map((s) => [s.state, s.processed_items, s.failed_items])).toEqual([
      ['completed', 3, 1],
      ['completed', 2, 0],
      ['completed', 3, 0],
    ]);
    const trace = await (await fetch(`${svc.base}${API}/runs/${run.run_id}/trace`, { headers: { authorization: `Token ${svc.token}` } })).text();
    expect(trace).toContain('broken.jsonl line 2: expected a JSON object with an `id`');

    const db = new Database(database, { readonly: true });
    try {
      const records = db.prepare('SELECT id, type, source_file FROM records ORDER BY id').all();
      expect(records).toEqual([
        { id: '1', type: 'user', source_file: 'a.jsonl' },
        { id: '2', type: 'user', source_file: 'a.jsonl' },
        { id: '3', type: 'order', source_file: 'b.jsonl' },
        { id: '5', type: 'untyped', source_file: 'b.jsonl' },
        { id: 'x-4', type: 'order', source_file: 'b.jsonl' },
      ]);
      expect(JSON.parse((db.prepare("SELECT body FROM records WHERE id = '3'").get() as { body: string }).body)).toEqual({ id: 3, type: 'order', total: 15 });
      expect(db.prepare('SELECT type, count FROM summary ORDER BY type').all()).toEqual([
        { type: 'order', count: 2 },
        { type: 'untyped', count: 1 },
        { type: 'user', count: 2 },
      ]);
      expect(db.prepare('SELECT idempotency_key FROM imports ORDER BY file').all()).toEqual([
        { idempotency_key: `${run.run_id}:2:a.jsonl` },
        { idempotency_key: `${run.run_id}:2:b.jsonl` },
      ]);
    } finally {
      db.close();
    }
  });

  it('refuses a run without its required options, naming them', async () => {
    const res = await fetch(`${svc.base}${API}/runs`, {
      method: 'POST',
      headers: { authorization: `Token ${svc.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ site_id: 'local', pipeline: 'jsonl_import', options: { source } }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: 'INVALID_OPTIONS', message: 'Invalid options for jsonl_import: `database` is required (rule `required`).' } });
  });
});
