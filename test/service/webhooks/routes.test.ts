import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../../service/app.js';
import { TokenRegistry } from '../../../service/auth/tokens.js';
import { Metrics } from '../../../service/metrics.js';
import { faceProcessorPipeline } from '../../../service/pipelines/index.js';
import { webhookStoreFor } from '../../../service/webhooks/index.js';
import { ADMIN, OTHER, SITE5, auth } from '../../helpers/app.js';
import { engineOn, tempDir } from '../../helpers/engine.js';

const P = '/api/v1/automation';
const SECRET = 'a-secret-of-sixteen-chars';

async function appWith(dir: string, allowPrivate: boolean) {
  const harness = engineOn(dir, [faceProcessorPipeline]);
  const tokens = new TokenRegistry([
    { token: ADMIN, principal: { name: 'admin', admin: true, accountId: null, siteIds: null } },
    { token: SITE5, principal: { name: 'ops-site-5', admin: false, accountId: 'acme', siteIds: new Set(['site-5']) } },
    { token: OTHER, principal: { name: 'ops-other', admin: false, accountId: 'globex', siteIds: new Set(['site-9']) } },
  ]);
  const webhooks = webhookStoreFor(harness.store);
  // Names resolve without DNS: localhost to loopback, *.internal to a private address and a
  // public one (every address counts), anything else to a public address.
  const resolve = async (host: string) =>
    host === 'localhost' ? ['127.0.0.1', '::1'] : host.endsWith('.internal') ? ['93.184.216.34', '10.0.0.7'] : ['93.184.216.34'];
  const app = await buildApp(
    { bodyLimit: 4096 },
    { ...harness, tokens, metrics: new Metrics(harness.store), logger: pino({ level: 'silent' }), webhooks: { webhooks, allowPrivate, resolve } },
  );
  return { ...harness, app, webhooks };
}

describe('/webhooks', () => {
  let dir: ReturnType<typeof tempDir>;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => dir.remove());

  it('creates, lists, shows deliveries of and deletes a subscription, never showing its secret', async () => {
    const { app, store } = await appWith(dir.path, false);
    const created = await app.inject({
      method: 'POST',
      url: `${P}/webhooks`,
      headers: auth(SITE5),
      payload: { site_id: 'site-5', url: 'https://hooks.example.com/runstate', events: ['run_completed', 'run_failed'], secret: SECRET },
    });
    expect(created.statusCode).toBe(201);
    const hook = created.json().data;
    expect(hook).toMatchObject({ site_id: 'site-5', account_id: 'acme', url: 'https://hooks.example.com/runstate', events: ['run_completed', 'run_failed'], created_by: 'ops-site-5' });
    expect(hook.webhook_id).toMatch(/^wh_[0-9a-f]{24}$/);
    expect(JSON.stringify(created.json())).not.toContain(SECRET);

    const listed = await app.inject({ url: `${P}/webhooks`, headers: auth(SITE5) });
    expect(listed.json().data).toEqual([hook]);
    expect((await app.inject({ url: `${P}/webhooks`, headers: auth(OTHER) })).json().data).toEqual([]);
    expect((await app.inject({ url: `${P}/webhooks?site_id=site-5`, headers: auth(ADMIN) })).json().data).toEqual([hook]);

    const deliveries = await app.inject({ url: `${P}/webhooks/${hook.webhook_id}/deliveries`, headers: auth(SITE5) });
    expect(deliveries.statusCode).toBe(200);
    expect(deliveries.json().data).toEqual([]);
    expect((await app.inject({ url: `${P}/webhooks/${hook.webhook_id}/deliveries`, headers: auth(OTHER) })).statusCode).toBe(404);
    expect((await app.inject({ method: 'DELETE', url: `${P}/webhooks/${hook.webhook_id}`, headers: auth(OTHER) })).json().error.code).toBe('WEBHOOK_NOT_FOUND');

    const deleted = await app.inject({ method: 'DELETE', url: `${P}/webhooks/${hook.webhook_id}`, headers: auth(SITE5) });
    expect(deleted.json()).toEqual({ data: { webhook_id: hook.webhook_id, deleted: true } });
    expect((await app.inject({ method: 'DELETE', url: `${P}/webhooks/${hook.webhook_id}`, headers: auth(SITE5) })).statusCode).toBe(404);
    expect((await app.inject({ url: `${P}/webhooks`, headers: auth(ADMIN) })).json().data).toEqual([]);
    await app.close();
    await store.close();
  });

  it('refuses with 400 a URL that is not http(s) or reaches a loopback, link-local or private address', async () => {
    const { app, store } = await appWith(dir.path, false);
    const post = (url: string, token = ADMIN) =>
      app.inject({ method: 'POST', url: `${P}/webhooks`, headers: auth(token), payload: { url, events: ['run_completed'], secret: SECRET } });
    for (const url of [
      'http://127.0.0.1:8080/hook',
      'http://localhost/hook',
      'http://[::1]/hook',
      'http://169.254.169.254/latest/meta-data',
      'http://10.0.0.1/hook',
      'http://192.168.1.20/hook',
      'http://[fd00::5]/hook',
      'http://metadata.internal/hook',
      'ftp://hooks.example.com/x',
      'file:///etc/passwd',
      'not a url',
      'https://user:pw@hooks.example.com/x',
    ]) {
      const res = await post(url);
      expect(res.statusCode, url).toBe(400);
      expect(res.json().error.code, url).toBe('INVALID_WEBHOOK_URL');
    }
    expect((await post('https://hooks.example.com/x')).statusCode).toBe(201);
    // A scoped token names its site; an unknown event or a short secret is a 400 too.
    expect((await post('https://hooks.example.com/x', SITE5)).json().error.code).toBe('BAD_REQUEST');
    const bad = await app.inject({ method: 'POST', url: `${P}/webhooks`, headers: auth(ADMIN), payload: { url: 'https://hooks.example.com/x', events: ['run_exploded'], secret: SECRET } });
    expect(bad.statusCode).toBe(400);
    const short = await app.inject({ method: 'POST', url: `${P}/webhooks`, headers: auth(ADMIN), payload: { url: 'https://hooks.example.com/x', events: ['run_failed'], secret: 'short' } });
    expect(short.statusCode).toBe(400);
    const forbidden = await app.inject({ method: 'POST', url: `${P}/webhooks`, headers: auth(SITE5), payload: { site_id: 'site-9', url: 'https://hooks.example.com/x', events: ['run_failed'], secret: SECRET } });
    expect(forbidden.statusCode).toBe(403);
    await app.close();
    await store.close();
  });

  it('accepts private addresses when RUNSTATE_WEBHOOKS_ALLOW_PRIVATE is set', async () => {
    const { app, store } = await appWith(dir.path, true);
    const res = await app.inject({ method: 'POST', url: `${P}/webhooks`, headers: auth(ADMIN), payload: { url: 'http://127.0.0.1:9/hook', events: ['stage_complete'], secret: SECRET } });
    expect(res.statusCode).toBe(201);
    expect((await app.inject({ method: 'POST', url: `${P}/webhooks`, headers: auth(ADMIN), payload: { url: 'gopher://127.0.0.1/', events: ['stage_complete'], secret: SECRET } })).statusCode).toBe(400);
    await app.close();
    await store.close();
  });
});
