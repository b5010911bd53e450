import { createHmac } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../helpers/engine.js';
import { freePort } from '../../helpers/net.js';
import { startReceiver, type Receiver } from '../../helpers/receiver.js';
import { startService, type ServiceProcess } from '../../helpers/service-process.js';

const P = '/api/v1/automation';
const SECRET = 'a-secret-of-sixteen-chars';
const ENV = { RUNSTATE_WEBHOOKS_ALLOW_PRIVATE: '1', RUNSTATE_WEBHOOK_BACKOFF_MS: '100' };

async function call(svc: ServiceProcess, method: string, path: string, body?: unknown) {
  const res = await fetch(`${svc.base}${P}${path}`, {
    method,
    headers: { authorization: `Token ${svc.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as { data: Record<string, unknown> } };
}

describe('webhooks across a crash', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('delivers an event committed just before SIGKILL once the service is back', { timeout: 60_000 }, async () => {
    const dir = tempDir();
    cleanup.push(() => dir.remove());
    // The receiver is not listening yet: nothing can be delivered before the kill.
    const port = await freePort();
    const first = await startService(dir.path, ENV);
    cleanup.push(() => first.stop());
    const hook = await call(first, 'POST', '/webhooks', { url: `http://127.0.0.1:${port}/hook`, events: ['run_completed'], secret: SECRET });
    expect(hook.status).toBe(201);
    const run = await call(first, 'POST', '/runs', { site_id: 'site-1', pipeline: 'face_processor', options: { delay_ms: 0, items_per_stage: 1 } });
    const runId = run.json.data.run_id as string;
    for (;;) {
      const r = await call(first, 'GET', `/runs/${runId}`);
      if (r.json.data.status === 'completed') break;
      await new Promise((res) => setTimeout(res, 10));
    }
    // The completed state is durable, with its outbox row: kill at once.
    first.child.kill('SIGKILL');
    await first.exited;

    const receiver: Receiver = await startReceiver(port);
    cleanup.push(() => receiver.close());
    const second = await startService(dir.path, ENV);
    cleanup.push(() => second.stop());
    await receiver.until((r) => r.some((x) => x.json.event === 'run_completed' && x.json.run.run_id === runId), 20_000);
    const got = receiver.received.filter((x) => x.json.run.run_id === runId);
    expect(got.length).toBeGreaterThanOrEqual(1);
    expect(new Set(got.map((x) => x.headers['x-runstate-delivery'])).size).toBe(1);
    for (const x of got) {
      expect(x.headers['x-runstate-signature']).toBe(`sha256=${createHmac('sha256', SECRET).update(x.body).digest('hex')}`);
    }
    const log = await call(second, 'GET', `/webhooks/${hook.json.data.webhook_id as string}/deliveries`);
    const list = log.json.data as unknown as { status: string; run_id: string }[];
    expect(list.filter((d) => d.run_id === runId)).toHaveLength(1);
  });

  it('sends again, with the same delivery id, a delivery cut off by SIGKILL mid-attempt', { timeout: 60_000 }, async () => {
    const dir = tempDir();
    cleanup.push(() => dir.remove());
    const receiver: Receiver = await startReceiver();
    cleanup.push(() => receiver.close());
    receiver.respond = (n) => (n === 0 ? null : 200); // the first attempt never gets an answer
    const first = await startService(dir.path, ENV);
    cleanup.push(() => first.stop());
    expect((await call(first, 'POST', '/webhooks', { url: receiver.url, events: ['run_completed'], secret: SECRET })).status).toBe(201);
    const run = await call(first, 'POST', '/runs', { site_id: 'site-1', pipeline: 'face_processor', options: { delay_ms: 0, items_per_stage: 1 } });
    await receiver.until((r) => r.length === 1, 20_000);
    first.child.kill('SIGKILL');
    await first.exited;

    const second = await startService(dir.path, ENV);
    cleanup.push(() => second.stop());
    // Sent again soon after the start, not only when the dead process's lease runs out (25 s).
    await receiver.until((r) => r.length >= 2, 10_000);
    const ids = receiver.received.map((x) => x.headers['x-runstate-delivery']);
    expect(new Set(ids).size).toBe(1);
    expect(receiver.received.every((x) => x.json.run.run_id === run.json.data.run_id)).toBe(true);
  });
});
