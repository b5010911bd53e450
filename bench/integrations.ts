// `npm run bench` part: engine items/s with webhooks and OpenTelemetry on, against off, in the
// same run of the bench (BENCH_PARTS=integrations runs it alone).
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { pino } from 'pino';
import { Engine } from '../service/engine/engine.js';
import type { PipelineDefinition } from '../service/pipelines/types.js';
import { SqliteStore } from '../service/store/sqlite.js';
import { createTelemetry } from '../service/telemetry/otel.js';
import { WEBHOOK_EVENTS } from '../service/store/outbox.js';
import { webhookStoreFor } from '../service/webhooks/index.js';
import { WebhookSender } from '../service/webhooks/sender.js';
import { markdownTable, type BenchPart, type PartReport, type Table } from './harness/report.js';
import { fmtInt, inTempDir, interleaved, median, progress, QUICK, size } from './harness/stats.js';

const REPETITIONS = QUICK ? 1 : 3;
const STAGES = 5;
const CONCURRENCY = 8;
const VARIANTS = [
  { label: 'off', webhooks: false, otel: false },
  { label: 'webhooks', webhooks: true, otel: false },
  { label: 'OpenTelemetry', webhooks: false, otel: true },
  { label: 'webhooks + OpenTelemetry', webhooks: true, otel: true },
] as const;
type Variant = (typeof VARIANTS)[number];

/** STAGES stages of no-op items: a stage_complete webhook per stage, a span per item. */
function pipeline(itemsPerStage: number): PipelineDefinition<object> {
  return {
    name: 'bench-integrations',
    parseOptions: () => ({}),
    concurrencyOf: () => CONCURRENCY,
    stages: Array.from({ length: STAGES }, (_, s) => ({
      key: `s${s + 1}`,
      name: `Stage ${s + 1}`,
      loadItems: async () => Array.from({ length: itemsPerStage }, (_, i) => ({ id: i + 1, title: `item ${i + 1}` })),
      processItem: async () => {},
    })),
  };
}

/** A sink on loopback that answers 200 to whatever it is sent (webhooks, OTLP), counting requests. */
async function sink(): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
  let n = 0;
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      n += 1;
      res.setHeader('content-type', 'application/json');
      res.end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => n,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** One run through a fresh engine on a fresh database; timed from startRun to whenRetired. */
async function measure(dir: string, v: Variant, itemsPerStage: number): Promise<{ itemsPerSec: number; deliveries: number }> {
  const silent = pino({ level: 'silent' });
  const receiver = await sink();
  const store = new SqliteStore({ filename: join(dir, 'runstate.db') });
  const telemetry = v.otel ? await createTelemetry({ tracesUrl: `${receiver.url}/v1/traces`, serviceName: 'runstate-bench' }) : null;
  const webhooks = webhookStoreFor(store);
  const sender = v.webhooks ? new WebhookSender({ store: webhooks, owner: 'bench', logger: silent, allowPrivate: true, pollMs: 100 }) : undefined;
  if (v.webhooks) {
    await webhooks.create({
      webhookId: 'wh_bench00000000000000000000',
      accountId: null,
      siteId: null,
      url: `${receiver.url}/hook`,
      events: [...WEBHOOK_EVENTS],
      secret: 'bench-secret-0123456789',
      createdBy: 'bench',
      createdAt: new Date().toISOString(),
    });
  }
  const engine = new Engine({ store, pipelines: [pipeline(itemsPerStage)], telemetry });
  engine.onEvents(() => sender?.nudge());
  sender?.start();
  try {
    const t0 = performance.now();
    const run = await engine.startRun({ accountId: 'bench', siteId: 'bench', pipeline: 'bench-integrations' });
    await engine.whenRetired(run.run_id);
    const ms = performance.now() - t0;
    const record = await store.getRun(run.run_id);
    if (record?.status !== 'completed') throw new Error(`bench: run ${run.run_id} ended ${record?.status}`);
    // Outside the timed region: every delivery made (STAGES stage_complete + run_completed).
    if (sender) {
      const deadline = Date.now() + 30_000;
      while ((await webhooks.deliveries('wh_bench00000000000000000000', 100)).some((d) => d.status !== 'delivered') || receiver.requests() < STAGES + 1) {
        if (Date.now() > deadline) throw new Error('bench: webhook deliveries did not all arrive');
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    return { itemsPerSec: ((itemsPerStage * STAGES) / ms) * 1000, deliveries: v.webhooks ? STAGES + 1 : 0 };
  } finally {
    await sender?.stop();
    await engine.stop();
    await telemetry?.shutdown();
    await store.close();
    await receiver.close();
  }
}

async function run(): Promise<PartReport> {
  const items = size('ITEMS', 20_000, 100);
  const perStage = Math.max(1, Math.floor(items / STAGES));
  const byLabel = new Map<string, Variant>(VARIANTS.map((v) => [v.label, v]));
  const runs = await interleaved(
    VARIANTS.map((v) => v.label),
    REPETITIONS,
    async (label, tag) => {
      const m = await inTempDir((dir) => measure(dir, byLabel.get(label)!, perStage));
      progress(`${tag} ${label}: ${fmtInt(m.itemsPerSec)} items/s`);
      return m.itemsPerSec;
    },
  );
  const samples = new Map<string, number[]>(Object.entries(runs));
  const off = median(samples.get('off')!);
  const rows: Table = [['integrations', 'items/s (median)', 'min – max', 'against off']];
  for (const v of VARIANTS) {
    const s = samples.get(v.label)!;
    rows.push([v.label, fmtInt(median(s)), `${fmtInt(Math.min(...s))} – ${fmtInt(Math.max(...s))}`, (median(s) / off).toFixed(2)]);
  }
  const markdown = [
    `### Engine items/s, ${STAGES} stages × ${fmtInt(perStage)} no-op items, concurrency ${CONCURRENCY}`,
    markdownTable(rows),
    `### Method

- One run per measurement through a fresh \`Engine\` on a fresh \`SqliteStore\`, timed from
  \`startRun\` to \`whenRetired\`; \`BENCH_ITEMS\` items in all (${fmtInt(items)}).
- **webhooks**: one subscription to every event kind, a \`WebhookSender\` in the same process
  posting to a loopback receiver that answers 200: the outbox rows the commits write, the
  fan-out and the deliveries (${STAGES + 1} per run) all run during the timed region; that they
  all arrive is checked after it.
- **OpenTelemetry**: \`createTelemetry\` with an OTLP/HTTP endpoint on loopback that answers
  200: a span per run, stage and item, batched and exported during the run.
- One warm-up round, then ${REPETITIONS} rounds, every variant once per round in a rotating
  order; \`against off\` divides medians from the same run of the bench.`,
  ].join('\n\n');
  return { tables: [{ title: 'Integrations: webhooks and OpenTelemetry on against off', rows }], markdown };
}

export const integrationsPart: BenchPart = { key: 'integrations', title: 'Integrations', source: 'bench/integrations.ts', run };
