// Integrations part: the engine part's measured run, 5 stages at concurrency 8, with webhooks and
// OpenTelemetry on, each to a loopback receiver, against the same run with both off.
import { createServer } from 'node:http';
import { rateTable, ratio, report, type BenchPart, type PartReport } from './harness/report.js';
import { createTelemetry, measureEngine, silent, WEBHOOK_EVENTS, WebhookSender, webhookStoreFor, type EngineExtras, type Store } from './harness/service.js';
import { fmtInt, rounds, size, until } from './harness/stats.js';

const STAGES = 5;
const CONCURRENCY = 8;
const WEBHOOK_ID = 'wh_bench00000000000000000000';
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
async function integrations(store: Store, v: { webhooks: boolean; otel: boolean }): Promise<EngineExtras> {
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

async function run(): Promise<PartReport> {
  const perStage = Math.max(1, Math.floor(size('ITEMS', 20_000, 100) / STAGES));
  const run = (webhooks: boolean, otel: boolean) => (dir: string) =>
    measureEngine(dir, { items: perStage, stages: STAGES, concurrency: CONCURRENCY, extras: (store) => integrations(store, { webhooks, otel }) });
  const samples = await rounds({ off: run(false, false), webhooks: run(true, false), OpenTelemetry: run(false, true), 'webhooks + OpenTelemetry': run(true, true) });
  const rows = rateTable(samples, ['integrations', 'items/s'], (med) => [['against off', (v) => ratio(med(v), med('off'))]]);
  return report(`### Engine items/s, ${STAGES} stages × ${fmtInt(perStage)} no-op items, concurrency ${CONCURRENCY}`, {
    title: 'Integrations: webhooks and OpenTelemetry on against off',
    rows,
  });
}

export const integrationsPart: BenchPart = { key: 'integrations', title: 'Integrations', source: 'bench/integrations.ts', run };
