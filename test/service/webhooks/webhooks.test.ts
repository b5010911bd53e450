import { createHmac } from 'node:crypto';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { faceProcessorPipeline } from '../../../service/pipelines/index.js';
import { webhookStoreFor } from '../../../service/webhooks/index.js';
import { WebhookSender, backoffDelay, signature } from '../../../service/webhooks/sender.js';
import type { WebhookStore } from '../../../service/webhooks/types.js';
import { isPrivateAddress } from '../../../service/webhooks/url-guard.js';
import { engineOn, tempDir } from '../../helpers/engine.js';
import { startReceiver, type Receiver } from '../../helpers/receiver.js';

const SECRET = 'a-secret-of-sixteen-chars';
const silent = pino({ level: 'silent' });

function verify(secret: string, body: string, header: unknown): boolean {
  return header === `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

async function subscribe(webhooks: WebhookStore, url: string, events: string[], siteId: string | null = 'site-5') {
  const id = `wh_${Math.random().toString(16).slice(2).padEnd(24, '0').slice(0, 24)}`;
  await webhooks.create({
    webhookId: id,
    accountId: null,
    siteId,
    url,
    events: events as never,
    secret: SECRET,
    createdBy: 'test',
    createdAt: new Date().toISOString(),
  });
  return id;
}

describe('webhooks', () => {
  let dir: ReturnType<typeof tempDir>;
  let receiver: Receiver;
  let sender: WebhookSender | undefined;
  beforeEach(async () => {
    dir = tempDir();
    receiver = await startReceiver();
  });
  afterEach(async () => {
    await sender?.stop();
    sender = undefined;
    await receiver.close();
    dir.remove();
  });

  it('delivers each subscribed event of a run once, signed, in seq order', async () => {
    const { engine, store, events } = engineOn(dir.path, [faceProcessorPipeline]);
    const webhooks = webhookStoreFor(store);
    await subscribe(webhooks, receiver.url, ['run_completed', 'stage_complete']);
    await subscribe(webhooks, receiver.url, ['run_failed'], 'other-site');
    sender = new WebhookSender({ store: webhooks, owner: 'test', logger: silent, allowPrivate: true, pollMs: 50 });
    sender.start();
    const run = await engine.startRun({ accountId: 'acme', siteId: 'site-5', pipeline: 'face_processor', options: { delay_ms: 0, items_per_stage: 2 } });
    await engine.whenRetired(run.run_id);

    const expected = events.filter(
      (e) => e.event === 'stage_complete' || (e.event === 'state_change' && e.machine_name === 'run' && (e.payload as { to_state: string }).to_state === 'completed'),
    );
    expect(expected).toHaveLength(6); // five stages and the run
    await receiver.until((r) => r.length >= expected.length);
    await new Promise((r) => setTimeout(r, 200)); // and nothing more arrives
    expect(receiver.received.map((r) => r.json.seq)).toEqual(expected.map((e) => e.seq));
    expect(receiver.received.map((r) => r.json.event)).toEqual([...Array(5).fill('stage_complete'), 'run_completed']);
    for (const r of receiver.received) {
      expect(verify(SECRET, r.body, r.headers['x-runstate-signature'])).toBe(true);
      expect(r.headers['x-runstate-delivery']).toBe(r.json.delivery_id);
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.json.run).toMatchObject({ run_id: run.run_id, site_id: 'site-5' });
      expect(r.json.data).toEqual(expected.find((e) => e.seq === r.json.seq));
    }
    expect(new Set(receiver.received.map((r) => r.json.delivery_id)).size).toBe(6);
    await store.close();
  });

  it('retries a failing receiver with the same delivery id until it answers 2xx, and logs each attempt', async () => {
    const { engine, store } = engineOn(dir.path, [faceProcessorPipeline]);
    const webhooks = webhookStoreFor(store);
    const hook = await subscribe(webhooks, receiver.url, ['run_completed']);
    receiver.respond = (n) => (n < 2 ? 503 : 204);
    sender = new WebhookSender({ store: webhooks, owner: 'test', logger: silent, allowPrivate: true, pollMs: 20, backoffMs: 50 });
    sender.start();
    const run = await engine.startRun({ accountId: 'acme', siteId: 'site-5', pipeline: 'face_processor', options: { delay_ms: 0, items_per_stage: 1 } });
    await engine.whenRetired(run.run_id);
    await receiver.until((r) => r.length >= 3);
    await new Promise((r) => setTimeout(r, 300));
    expect(receiver.received).toHaveLength(3);
    const ids = new Set(receiver.received.map((r) => r.headers['x-runstate-delivery']));
    expect(ids.size).toBe(1);
    expect(new Set(receiver.received.map((r) => r.body)).size).toBe(1);
    const [d] = await webhooks.deliveries(hook, 10);
    expect(d).toMatchObject({ status: 'delivered', attempts: 3, lastError: null, runId: run.run_id });
    expect(d!.log.map((a) => a.statusCode)).toEqual([503, 503, 204]);
    expect(d!.log.map((a) => a.attempt)).toEqual([1, 2, 3]);
    await store.close();
  });

  it('gives up after the retry window and says so in the log', async () => {
    const { engine, store } = engineOn(dir.path, [faceProcessorPipeline]);
    const webhooks = webhookStoreFor(store);
    const hook = await subscribe(webhooks, receiver.url, ['run_completed']);
    receiver.respond = () => 500;
    sender = new WebhookSender({ store: webhooks, owner: 'test', logger: silent, allowPrivate: true, pollMs: 20, backoffMs: 20, giveUpAfterMs: 150 });
    sender.start();
    const run = await engine.startRun({ accountId: 'acme', siteId: 'site-5', pipeline: 'face_processor', options: { delay_ms: 0, items_per_stage: 1 } });
    await engine.whenRetired(run.run_id);
    const deadline = Date.now() + 5000;
    for (;;) {
      const [d] = await webhooks.deliveries(hook, 1);
      if (d?.status === 'failed') {
        expect(d.attempts).toBeGreaterThanOrEqual(2);
        expect(d.lastError).toBe('HTTP 500');
        break;
      }
      if (Date.now() > deadline) throw new Error('never given up');
      await new Promise((r) => setTimeout(r, 20));
    }
    await store.close();
  });

  it('does not connect to a private address unless allowed, even for a subscription already stored', async () => {
    const { engine, store } = engineOn(dir.path, [faceProcessorPipeline]);
    const webhooks = webhookStoreFor(store);
    const hook = await subscribe(webhooks, receiver.url.replace('127.0.0.1', 'localhost'), ['run_completed']);
    sender = new WebhookSender({ store: webhooks, owner: 'test', logger: silent, pollMs: 20, backoffMs: 10_000 });
    sender.start();
    const run = await engine.startRun({ accountId: 'acme', siteId: 'site-5', pipeline: 'face_processor', options: { delay_ms: 0, items_per_stage: 1 } });
    await engine.whenRetired(run.run_id);
    const deadline = Date.now() + 5000;
    while (((await webhooks.deliveries(hook, 1))[0]?.attempts ?? 0) === 0) {
      if (Date.now() > deadline) throw new Error('never attempted');
      await new Promise((r) => setTimeout(r, 20));
    }
    const [d] = await webhooks.deliveries(hook, 1);
    expect(d!.status).toBe('pending');
    expect(d!.lastError).toMatch(/private address/);
    expect(receiver.received).toHaveLength(0);
    await store.close();
  });

  it('judges addresses and backoff as documented', () => {
    for (const a of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '::1', 'fe80::1', 'fd00::1', '::ffff:127.0.0.1', '0.0.0.0', '100.64.0.1']) {
      expect(isPrivateAddress(a), a).toBe(true);
    }
    for (const a of ['93.184.216.34', '8.8.8.8', '2606:4700::1111', '::ffff:8.8.8.8']) expect(isPrivateAddress(a), a).toBe(false);
    expect(signature('k', 'body')).toBe(`sha256=${createHmac('sha256', 'k').update('body').digest('hex')}`);
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, 1000, 5000, () => 1))).toEqual([1000, 2000, 4000, 5000]);
    expect(backoffDelay(3, 1000, 60_000, () => 0)).toBe(2000);
  });
});
