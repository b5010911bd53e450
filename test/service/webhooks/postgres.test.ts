import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Engine } from '../../../service/engine/engine.js';
import { faceProcessorPipeline } from '../../../service/pipelines/index.js';
import { PostgresStore } from '../../../service/store/postgres.js';
import { webhookStoreFor } from '../../../service/webhooks/index.js';
import { WebhookSender } from '../../../service/webhooks/sender.js';
import { usePostgres } from '../../helpers/postgres.js';
import { startReceiver } from '../../helpers/receiver.js';

const pg = usePostgres();
const silent = pino({ level: 'silent' });

describe('webhooks on Postgres', () => {
  const cleanup: (() => Promise<unknown> | unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('sends each delivery once across three instances, in seq order per run', { timeout: 60_000 }, async () => {
    const db = await pg.createDatabase();
    cleanup.push(() => db.drop());
    const stores = await Promise.all([0, 1, 2].map(() => PostgresStore.connect(db.url, { poolSize: 4 })));
    cleanup.push(() => Promise.all(stores.map((s) => s.close())));
    const receiver = await startReceiver();
    cleanup.push(() => receiver.close());
    const webhooks = stores.map(webhookStoreFor);
    await webhooks[0]!.create({
      webhookId: 'wh_000000000000000000000001',
      accountId: null,
      siteId: null,
      url: receiver.url,
      events: ['stage_complete', 'run_completed'],
      secret: 'a-secret-of-sixteen-chars',
      createdBy: 'test',
      createdAt: new Date().toISOString(),
    });
    const senders = webhooks.map(
      (store, i) => new WebhookSender({ store, owner: `instance-${i}`, logger: silent, allowPrivate: true, pollMs: 10, batch: 4 }),
    );
    for (const s of senders) s.start();
    cleanup.push(() => Promise.all(senders.map((s) => s.stop())));

    const engine = new Engine({ store: stores[0]!, pipelines: [faceProcessorPipeline] });
    cleanup.push(() => engine.stop());
    const runs = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        engine.startRun({ accountId: 'acme', siteId: `site-${i}`, pipeline: 'face_processor', options: { delay_ms: 0, items_per_stage: 1 } }),
      ),
    );
    await Promise.all(runs.map((r) => engine.whenRetired(r.run_id)));
    const expected = runs.length * 6;
    await receiver.until((r) => r.length >= expected, 30_000);
    await new Promise((r) => setTimeout(r, 300));

    const ids = receiver.received.map((r) => r.json.delivery_id);
    expect(ids).toHaveLength(expected);
    expect(new Set(ids).size).toBe(expected);
    for (const run of runs) {
      const seqs = receiver.received.filter((r) => r.json.run.run_id === run.run_id).map((r) => r.json.seq);
      expect(seqs).toHaveLength(6);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    }
    const log = await webhooks[1]!.deliveries('wh_000000000000000000000001', 500);
    expect(log.every((d) => d.status === 'delivered' && d.attempts === 1 && d.log.length === 1)).toBe(true);
  });
});
