// Engine parts: runs of no-op items through a fresh engine and store (measureEngine) in the same rounds as their
// baseline: the bare durable loop (engine), the Stately inspector off (inspector), webhooks and OpenTelemetry off (integrations).
import { createInspectorServer } from '@statelyai/inspect/server';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import type { InspectionEvent } from 'xstate';
import { freePort } from '../test/helpers/net.js';
import { rateTable, ratio, report, type BenchPart, type PartReport } from './harness/report.js';
import { bareLoop, checkSeqs, createInspection, createTelemetry, Engine, noopPipeline, OWNER, silent, SqliteStore, TraceWriter, verifyRun, WEBHOOK_EVENTS, WebhookSender, webhookStoreFor, type Store } from './harness/service.js';
import { fmtInt, median, REPS, rounds, size, until } from './harness/stats.js';

/** What a variant adds to the measured run on its store: spans, an inspector, a listener, a check after the timed region, its teardown. */
interface Extras {
  telemetry?: Awaited<ReturnType<typeof createTelemetry>> | null;
  inspect?: (ev: InspectionEvent) => void;
  onEvents?: () => void;
  check?: () => Promise<void>;
  stop?: () => Promise<void>;
}

/** One run of `stages` × `items` no-op items through a fresh engine and SQLite store in `dir`, timed from startRun to retired (and traces flushed), then checked. */
async function measureEngine(dir: string, opts: { items: number; concurrency: number; stages?: number; trace?: boolean; extras?: (store: Store) => Promise<Extras> }) {
  const stages = opts.stages ?? 1;
  const store = new SqliteStore({ filename: join(dir, 'runstate.db') });
  const extras = (await opts.extras?.(store)) ?? {};
  const pipeline = noopPipeline(opts.items, opts.concurrency, { stages });
  const engine = new Engine({ store, pipelines: [pipeline], inspect: extras.inspect, telemetry: extras.telemetry });
  const traces = opts.trace ? new TraceWriter({ dataDir: dir, store, logger: silent }) : undefined;
  let batches = 0;
  let snapshot: Promise<number> | undefined;
  engine.onEvents((run, events) => {
    batches += 1;
    traces?.write(run, events);
    extras.onEvents?.();
    // The snapshot of a running stage (items in flight) is what most batches write; sample one.
    if (!snapshot && events.some((e) => e.event === 'stage_item_processed' && Number(e.processed) >= opts.items / 2)) {
      snapshot = store.getRun(run.runId).then((r) => Buffer.byteLength(JSON.stringify(r?.snapshot ?? null)));
    }
  });
  try {
    const t0 = performance.now();
    const run = await engine.startRun({ ...OWNER, pipeline: pipeline.name });
    await engine.whenRetired(run.run_id);
    await traces?.flush();
    const ms = performance.now() - t0;
    await verifyRun(store, run.run_id, opts.items * stages);
    if (traces) {
      const path = join(TraceWriter.runDir(dir, { ...OWNER, runId: run.run_id }), 'run_trace.jsonl');
      const lines = readFileSync(path, 'utf8').trim().split('\n');
      checkSeqs(lines.map((line) => (JSON.parse(line) as { seq: number }).seq), path, (await store.getRun(run.run_id))!.lastSeq);
    }
    await extras.check?.();
    if (!snapshot) throw new Error('bench: no stage_item_processed event reached the listener');
    return { perSec: ((opts.items * stages) / ms) * 1000, snapshotBytes: await snapshot, batches };
  } finally {
    await engine.stop();
    await extras.stop?.();
    await store.close();
  }
}

/** The rounds of `variants` (extras on the same measured run) and their table, each against `off` in the `vs` column. */
async function againstOff(variants: Record<string, ((store: Store) => Promise<Extras>) | undefined>, opts: { items: number; concurrency: number; stages?: number }, [first, vs]: [string, string]) {
  const measures = Object.fromEntries(Object.entries(variants).map(([v, extras]) => [v, (dir: string) => measureEngine(dir, { ...opts, extras })]));
  const samples = await rounds(measures);
  return rateTable(samples, [first, 'items/s'], (med) => [[vs, (v) => ratio(med(v), med('off'))]]);
}

/** The aim: the engine within 2× of the bare durable loop. */
const AIM = 0.5;
/** Group commit at about the engine's own batch size at concurrency 1: what batching alone buys. */
const GROUPED = 40;
const BARE = 'bare SQLite loop';
const BARE_GROUPED = `bare SQLite loop, ${GROUPED} items per txn`;

async function engineRun(): Promise<PartReport> {
  const items = size('ITEMS', 20_000, 300);
  // The bare loop writes a snapshot of the engine's size, measured in the warm-up round.
  let snapshotBytes = 0;
  const engine = (concurrency: number, trace: boolean) => async (dir: string) => {
    const r = await measureEngine(dir, { items, concurrency, trace });
    snapshotBytes ||= r.snapshotBytes;
    return r;
  };
  const bare = (perTxn: number) => async (dir: string) => ({ perSec: await bareLoop(dir, items, { perTxn, snapshotBytes }), batches: items / perTxn });
  const samples = await rounds({
    [BARE]: bare(1),
    [BARE_GROUPED]: bare(GROUPED),
    'engine, concurrency 1': engine(1, false),
    'engine, concurrency 8': engine(8, false),
    'engine + trace, concurrency 1': engine(1, true),
    'engine + trace, concurrency 8': engine(8, true),
  });
  const rows = rateTable(samples, ['variant', 'items/s'], (med) => [
    ['items per txn', (v) => median(samples[v].map((s) => items / s.batches)).toFixed(1)],
    ['engine / bare', (v) => (v === BARE ? '1.00' : v === BARE_GROUPED ? `${ratio(med(v), med(BARE))} (a baseline)` : ratio(med(v), med(BARE), AIM))],
  ]);
  return report(
    `### Throughput: ${fmtInt(items)} no-op items through one stage`,
    { title: `Engine throughput (${fmtInt(items)} items)`, rows },
    `The bare loop wrote a ${snapshotBytes}-byte snapshot per transaction (the engine's, halfway through the stage); ${REPS} rounds after a warm-up.`,
    'Memory per run is measured in the service part (10,000 runs at once in `runstate serve`).',
  );
}

/** Concurrency 4, with the inspector's observer streaming to a local relay with a viewer, against it off. */
async function inspectorRun(): Promise<PartReport> {
  const items = size('ITEMS', 20_000, 300);
  const port = await freePort();
  const relay = createInspectorServer({ port, autoOpen: false });
  const viewer = new WebSocket(`ws://127.0.0.1:${port}`);
  await new Promise((r, j) => viewer.once('open', r).once('error', j));
  const counts = { received: 0, forwarded: 0, dropped: 0 };
  viewer.on('message', () => (counts.received += 1));
  const on = async (): Promise<Extras> => {
    const inspection = createInspection({ url: `ws://127.0.0.1:${port}`, logger: silent });
    const stop = async () => {
      counts.forwarded += inspection.forwarded;
      counts.dropped += inspection.dropped;
      inspection.stop();
    };
    return { inspect: (ev) => inspection.observe(ev), stop };
  };
  const rows = await againstOff({ off: undefined, 'on (relay + a viewer)': on }, { items, concurrency: 4 }, ['inspector', 'vs off']).finally(() => {
    viewer.terminate();
    relay.stop();
  });
  const note = `Over all runs with it on: ${fmtInt(counts.forwarded)} inspection events forwarded, ${fmtInt(counts.dropped)} dropped
by the rate bound (2,000 a second), ${fmtInt(counts.received)} received by the viewer; ${REPS} rounds.`;
  return report(`### Engine throughput, ${fmtInt(items)} no-op items at concurrency 4`, { title: 'Inspector', rows }, note);
}

const STAGES = 5;
const WEBHOOK_ID = 'wh_bench00000000000000000000';

/** A receiver on loopback that answers 200 to whatever it is sent (webhooks, OTLP), counting requests. */
async function receiver() {
  let requests = 0;
  const server = createServer((req, res) => {
    req.resume().on('end', () => {
      requests += 1;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
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
const integrations = (v: { webhooks: boolean; otel: boolean }) => async (store: Store): Promise<Extras> => {
  const sink = await receiver();
  const telemetry = v.otel ? await createTelemetry({ tracesUrl: `${sink.url}/v1/traces`, serviceName: 'runstate-bench' }) : null;
  const webhooks = webhookStoreFor(store);
  const sender = v.webhooks ? new WebhookSender({ store: webhooks, owner: 'bench', logger: silent, allowPrivate: true, pollMs: 100 }) : undefined;
  const webhook = { webhookId: WEBHOOK_ID, accountId: null, siteId: null, url: `${sink.url}/hook`, events: [...WEBHOOK_EVENTS], secret: 'bench-secret-0123456789', createdBy: 'bench' };
  if (sender) await webhooks.create({ ...webhook, createdAt: new Date().toISOString() });
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
};

/** 5 stages at concurrency 8 with webhooks and OpenTelemetry on, each to a loopback receiver, against both off. */
async function integrationsRun(): Promise<PartReport> {
  const items = Math.max(1, Math.floor(size('ITEMS', 20_000, 300) / STAGES));
  const variants = {
    off: integrations({ webhooks: false, otel: false }),
    webhooks: integrations({ webhooks: true, otel: false }),
    OpenTelemetry: integrations({ webhooks: false, otel: true }),
    'webhooks + OpenTelemetry': integrations({ webhooks: true, otel: true }),
  };
  const rows = await againstOff(variants, { items, stages: STAGES, concurrency: 8 }, ['integrations', 'against off']);
  return report(`### Engine items/s, ${STAGES} stages × ${fmtInt(items)} no-op items, concurrency 8`, { title: 'Integrations: webhooks and OpenTelemetry on against off', rows });
}

export const enginePart: BenchPart = { key: 'engine', title: 'Engine', source: 'bench/engine.ts', run: engineRun };
export const inspectPart: BenchPart = { key: 'inspector', title: 'Stately inspector', source: 'bench/engine.ts', run: inspectorRun };
export const integrationsPart: BenchPart = { key: 'integrations', title: 'Integrations', source: 'bench/engine.ts', run: integrationsRun };
