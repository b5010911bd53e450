// Integrations part. Method: the engine part's measured run, 5 stages at concurrency 8, with
// webhooks and OpenTelemetry on, each to a loopback receiver. Baseline: the same run with both
// off, interleaved in the same rounds. Full method: docs/benchmarks.md.
import { createServer } from 'node:http';
import { ratio, report, type BenchPart, type Table } from './harness/report.js';
import { createTelemetry, measureEngine, silent, WEBHOOK_EVENTS, WebhookSender, webhookStoreFor, type EngineExtras, type Store } from './harness/service.js';
import { fmtInt, inTempDir, interleaved, median, progress, range, REPS, size, until } from './harness/stats.js';

const STAGES = 5;
const CONCURRENCY = 8;
const WEBHOOK_ID = 'wh_bench00000000000000000000';
const VARIANTS = {
  off: { webhooks: false, otel: false },
  webhooks: { webhooks: true, otel: false },
  OpenTelemetry: { webhooks: false, otel: true },
  'webhooks + OpenTelemetry': { webhooks: true, otel: true },
} as const;
type Variant = keyof typeof VARIANTS;

/** A receiver on loopback that answers 200 to whatever it is sent (webhooks, OTLP), counting requests. */
async function receiver() {
  let requests = 0;
  const server = createServer((req, res) => {
    req.resume().on('end', () => {
      requests += 1;
      res.setHeader('content-type', 'application/json');
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    requests: () => requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The variant's integrations on `store`: a webhook for every event kind and its sender, spans exported over OTLP. */
async function integrations(store: Store, v: (typeof VARIANTS)[Variant]): Promise<EngineExtras> {
  const sink = await receiver();
  const telemetry = v.otel ? await createTelemetry({ tracesUrl: `${sink.url}/v1/traces`, serviceName: 'runstate-bench' }) : null;
  const webhooks = webhookStoreFor(store);
  const sender = v.webhooks ? new WebhookSender({ store: webhooks, owner: 'bench', logger: silent, allowPrivate: true, pollMs: 100 }) : undefined;
  if (sender) {
    const createdAt = new Date().toISOString();
    await webhooks.create({ webhookId: WEBHOOK_ID, accountId: null, siteId: null, url: `${sink.url}/hook`, events: [...WEBHOOK_EVENTS], secret: 'bench-secret-0123456789', createdBy: 'bench', createdAt });
  }
  sender?.start();
  return {
    telemetry,
    onEvents: () => sender?.nudge(),
    // Outside the timed region: every delivery made (STAGES stage_complete + run_completed).
    check: async () => {
      if (!sender) return;
      const delivered = async () => !(await webhooks.deliveries(WEBHOOK_ID, 100)).some((d) => d.status !== 'delivered') && sink.requests() >= STAGES + 1;
      await until(delivered, 30_000, 'webhook deliveries did not all arrive');
    },
    stop: async () => {
      await sender?.stop();
      await telemetry?.shutdown();
      await sink.close();
    },
  };
}

export const integrationsPart: BenchPart = {
  key: 'integrations',
  title: 'Integrations',
  source: 'bench/integrations.ts',
  async run() {
    const perStage = Math.max(1, Math.floor(size('ITEMS', 20_000, 100) / STAGES));
    const samples = await interleaved(Object.keys(VARIANTS) as Variant[], REPS, async (v, tag) => {
      const m = await inTempDir((dir) => measureEngine(dir, { items: perStage, stages: STAGES, concurrency: CONCURRENCY, extras: (store) => integrations(store, VARIANTS[v]) }));
      progress(`${tag} ${v}: ${fmtInt(m.itemsPerSec)} items/s`);
      return m.itemsPerSec;
    });
    const off = median(samples.off);
    const rows: Table = [['integrations', 'items/s (median)', 'min – max', 'against off']];
    for (const [v, s] of Object.entries(samples)) rows.push([v, fmtInt(median(s)), range(s), ratio(median(s), off)]);
    return report(`### Engine items/s, ${STAGES} stages × ${fmtInt(perStage)} no-op items, concurrency ${CONCURRENCY}`, {
      title: 'Integrations: webhooks and OpenTelemetry on against off',
      rows,
    });
  },
};
