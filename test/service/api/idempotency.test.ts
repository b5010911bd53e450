// Idempotent start (docs/api.md, "Idempotent start"): `POST /runs` with `Idempotency-Key`
// makes one run however many requests arrive at once, on one SQLite instance and on two
// instances sharing a Postgres.
import { afterEach, describe, expect, it } from 'vitest';
import { ADMIN, OTHER, SITE5, appOn, auth } from '../../helpers/app.js';
import { tempDir } from '../../helpers/engine.js';
import { gatedPipeline } from '../../helpers/gated.js';
import { usePostgres } from '../../helpers/postgres.js';
import { startService, type ServiceProcess } from '../../helpers/service-process.js';

const API = '/api/v1/automation';
const BODY = { site_id: 'site-5', pipeline: 'gated', options: {} };

describe('POST /runs with Idempotency-Key, on SQLite', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function app() {
    const dir = tempDir();
    const gate = gatedPipeline('gated', [1]);
    const h = await appOn(dir.path, [gate.pipeline]);
    cleanup.push(async () => {
      await h.stop();
      dir.remove();
    });
    return h;
  }

  it('makes one run of 20 concurrent starts with one key; the others answer 200 with it, replayed', async () => {
    const h = await app();
    const responses = await Promise.all(
      Array.from({ length: 20 }, () =>
        h.app.inject({ method: 'POST', url: `${API}/runs`, headers: { ...auth(SITE5), 'idempotency-key': 'order-42' }, payload: BODY }),
      ),
    );
    const created = responses.filter((r) => r.statusCode === 201);
    const replayed = responses.filter((r) => r.statusCode === 200);
    expect(created).toHaveLength(1);
    expect(replayed).toHaveLength(19);
    const runId = created[0]!.json().data.run_id as string;
    expect(created[0]!.headers['idempotent-replayed']).toBeUndefined();
    for (const r of replayed) {
      expect(r.headers['idempotent-replayed']).toBe('true');
      expect(r.json().data.run_id).toBe(runId);
    }
    expect((await h.store.listRuns({})).map((r) => r.runId)).toEqual([runId]);
    expect(h.events.filter((e) => e.event === 'run_started')).toHaveLength(1);
  });

  it('answers a reused key with another body 422, takes the same body in another key order, and keeps keys per token', async () => {
    const h = await app();
    const key = { 'idempotency-key': 'k' };
    const first = await h.app.inject({ method: 'POST', url: `${API}/runs`, headers: { ...auth(SITE5), ...key }, payload: { ...BODY, options: { a: 1, b: 2 } } });
    expect(first.statusCode).toBe(201);
    const reordered = await h.app.inject({
      method: 'POST',
      url: `${API}/runs`,
      headers: { ...auth(SITE5), ...key },
      payload: { options: { b: 2, a: 1 }, pipeline: 'gated', site_id: 'site-5', trigger: 'manual' },
    });
    expect(reordered.statusCode, reordered.body).toBe(200);
    expect(reordered.json().data.run_id).toBe(first.json().data.run_id);
    const other = await h.app.inject({ method: 'POST', url: `${API}/runs`, headers: { ...auth(SITE5), ...key }, payload: { ...BODY, trigger: 'api' } });
    expect(other.statusCode).toBe(422);
    expect(other.json()).toEqual({ error: { code: 'IDEMPOTENCY_KEY_REUSED', message: expect.stringContaining(first.json().data.run_id) } });
    // The admin's key `k` is not ops-site-5's.
    const admin = await h.app.inject({ method: 'POST', url: `${API}/runs`, headers: { ...auth(ADMIN), ...key }, payload: BODY });
    expect(admin.statusCode).toBe(201);
    expect((await h.store.listRuns({})).length).toBe(2);
  });

  it('refuses a malformed key, and a start refused for other reasons claims no key', async () => {
    const h = await app();
    for (const bad of ['', 'x'.repeat(256), 'with space', 'ünïcode']) {
      const res = await h.app.inject({ method: 'POST', url: `${API}/runs`, headers: { ...auth(SITE5), 'idempotency-key': bad }, payload: BODY });
      expect(res.statusCode, JSON.stringify(bad)).toBe(400);
      expect(res.json()).toEqual({ error: { code: 'BAD_REQUEST', message: expect.any(String) } });
    }
    const forbidden = await h.app.inject({ method: 'POST', url: `${API}/runs`, headers: { ...auth(OTHER), 'idempotency-key': 'z' }, payload: BODY });
    expect(forbidden.statusCode).toBe(403);
    const unknown = await h.app.inject({ method: 'POST', url: `${API}/runs`, headers: { ...auth(SITE5), 'idempotency-key': 'z' }, payload: { ...BODY, pipeline: 'nope' } });
    expect(unknown.statusCode).toBe(400);
    const ok = await h.app.inject({ method: 'POST', url: `${API}/runs`, headers: { ...auth(SITE5), 'idempotency-key': 'z' }, payload: BODY });
    expect(ok.statusCode).toBe(201);
    expect(await h.store.listRuns({})).toHaveLength(1);
  });
});

describe('POST /runs with Idempotency-Key, two instances on one Postgres', () => {
  const pg = usePostgres();
  const TOKEN = 'shared-admin-token-0123456789';
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('makes one run of 20 concurrent starts with one key spread over both', async () => {
    const db = await pg.createDatabase();
    cleanup.push(() => db.drop());
    const dirs = [tempDir('rs-idem-1-'), tempDir('rs-idem-2-')];
    cleanup.push(() => dirs.forEach((d) => d.remove()));
    const instances: ServiceProcess[] = await Promise.all(
      dirs.map((d, i) => startService(d.path, { DATABASE_URL: db.url, RUNSTATE_ADMIN_TOKEN: TOKEN, RUNSTATE_INSTANCE_ID: `i${i + 1}` })),
    );
    cleanup.push(async () => {
      for (const i of instances) i.child.kill('SIGKILL');
      await Promise.all(instances.map((i) => i.exited));
    });
    const body = JSON.stringify({ site_id: 'site-5', pipeline: 'content', options: { delay_ms: 1, items_per_stage: 1 } });
    const responses = await Promise.all(
      Array.from({ length: 20 }, async (_, n) => {
        const res = await fetch(`${instances[n % 2]!.base}${API}/runs`, {
          method: 'POST',
          headers: { authorization: `Token ${TOKEN}`, 'content-type': 'application/json', 'idempotency-key': 'nightly-2026-12-01' },
          body,
        });
        return { status: res.status, replayed: res.headers.get('idempotent-replayed'), runId: ((await res.json()) as { data: { run_id: string } }).data.run_id };
      }),
    );
    expect(responses.filter((r) => r.status === 201)).toHaveLength(1);
    expect(responses.filter((r) => r.status === 200 && r.replayed === 'true')).toHaveLength(19);
    expect(new Set(responses.map((r) => r.runId)).size).toBe(1);
    const list = await fetch(`${instances[0]!.base}${API}/runs`, { headers: { authorization: `Token ${TOKEN}` } });
    expect(((await list.json()) as { data: unknown[] }).data).toHaveLength(1);
  });
});
