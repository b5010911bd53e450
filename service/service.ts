// The whole service wired together: store, engine, hub, traces, metrics, tokens, webhooks,
// schedules, retention, telemetry, the app and the ingest socket. server.ts and the tests build it here, so both run the same wiring.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { buildApp } from './app.js';
import { ADMIN_NAME, TokenRegistry, adminToken, readTokensFile, type Principal } from './auth/tokens.js';
import type { Config } from './config.js';
import { Engine, newInstanceId } from './engine/engine.js';
import { Health, registerHealthMetrics } from './health.js';
import { Hub, type HubOptions } from './hub/hub.js';
import { IngestSocket } from './ingest/socket.js';
import { createInspection } from './inspect.js';
import { Metrics } from './metrics.js';
import { demoPipelines } from './pipelines/index.js';
import type { AnyPipeline } from './pipelines/types.js';
import { PostgresStore } from './store/postgres.js';
import { SqliteStore } from './store/sqlite.js';
import type { Store } from './store/store.js';
import { retentionStoreFor } from './retention/index.js';
import { createSchedules } from './schedules/index.js';
import { RetentionSweeper } from './retention/sweeper.js';
import { createTelemetry } from './telemetry/otel.js';
import { TraceWriter } from './trace/trace-writer.js';
import { webhookEventOf } from './store/outbox.js';
import { webhookStoreFor } from './webhooks/index.js';
import { WebhookSender } from './webhooks/sender.js';
import { createWorkers, type Workers } from './workers/index.js';
import { createLimits, type Limits } from './limits/index.js';

/** What the environment does not say: the logger, and what tests replace. Every field is optional. */
export interface ServiceOverrides {
  /** [a silent logger] server.ts passes the process's JSON logger. */
  logger?: Logger;
  /** [the demo pipelines] */
  pipelines?: readonly AnyPipeline[];
  /** [Date.now] The engine's clock, epoch ms. */
  now?: () => number;
  /** [none] Hub timings and bounds, over what the config says (tests shorten the heartbeat). */
  hub?: Partial<Omit<HubOptions, 'engine' | 'tokens' | 'logger' | 'registry' | 'isLocal'>>;
  /** [web/out when it is built] The dashboard's static export; null serves the API only. */
  webRoot?: string | null;
}

/** Where `start()` listens. */
export interface Listening {
  /** As Fastify reports it: `http://127.0.0.1:3000`. */
  address: string;
  /** The URL to open in a browser: a wildcard host is shown as 127.0.0.1. */
  url: string;
  port: number;
}

export interface Service {
  /** The Fastify app: `app.inject` works before `start()`. */
  readonly app: FastifyInstance;
  readonly engine: Engine;
  readonly store: Store;
  readonly hub: Hub;
  readonly metrics: Metrics;
  readonly tokens: TokenRegistry;
  readonly traces: TraceWriter;
  /** Worker jobs: the owner's queue and the `/api/v1/workers` door (docs/workers.md). */
  readonly workers: Workers;
  /** Rate and concurrency limits shared by the stages naming one key (docs/pipelines.md, "Limits"). */
  readonly limits: Limits;
  /** The database's and the disk's state: /healthz, runstate_database_up, DATABASE_UNAVAILABLE. */
  readonly health: Health;
  /** The ingest socket door, when `RUNSTATE_INGEST_SOCKET` is set. */
  readonly ingestSocket: IngestSocket | null;
  /** The admin token; `created` when this start made it (the URL to open is printed with it). */
  readonly admin: { token: string; created: boolean };
  /**
   * Repairs traces, recovers runs, starts the engine's ownership timers and the store's
   * cross-instance hints, opens the ingest socket, then listens on `config.host:config.port`.
   */
  start(): Promise<Listening>;
  /**
   * The ordered graceful shutdown (docs/operations.md, "Stopping"): the ingest socket, then
   * HTTP and WebSockets (requests in flight finish), the store's hints, the engine (everything
   * recorded made durable, leases released), the trace files, the store. Safe to call twice,
   * and before `start()`.
   */
  stop(): Promise<void>;
}

const WEB_ROOT = join(import.meta.dirname, '..', 'web', 'out');

async function openStore(config: Readonly<Config>, onConnectionError: (err: Error) => void): Promise<Store> {
  if (config.databaseUrl !== null) {
    return PostgresStore.connect(config.databaseUrl, { poolSize: config.dbPoolSize, onIdleError: onConnectionError });
  }
  return new SqliteStore({ filename: join(config.dataDir, 'runstate.db') });
}

/** Builds the service from its settings; nothing listens and no run moves until `start()`. */
export async function buildService(config: Readonly<Config>, overrides: ServiceOverrides = {}): Promise<Service> {
  const log = overrides.logger ?? pino({ level: 'silent' });
  // The tokens file is read before anything is written or opened: a bad entry leaves the data dir as it was.
  const scoped = config.tokensFile !== null ? readTokensFile(config.tokensFile) : [];
  const admin = adminToken(config.dataDir, config.adminToken);
  const principals: { token: string; principal: Principal }[] = [
    { token: admin.token, principal: { name: ADMIN_NAME, admin: true, accountId: null, siteIds: null } },
    ...scoped,
  ];
  const tokens = new TokenRegistry(principals);
  // A connection dropped under no call (the server restarted): the health state says so, once.
  const healthRef: { current?: Health } = {};
  const store = await openStore(config, (err) => healthRef.current?.fault('connections', err));
  const health = (healthRef.current = new Health({ store, logger: log.child({ component: 'health' }) }));
  const shared = store.kind === 'postgres';
  const metrics = new Metrics(store);
  const traces = new TraceWriter({ dataDir: config.dataDir, store, logger: log.child({ component: 'traces' }), faults: health });
  registerHealthMetrics(metrics.registry, health, () => traces.lagEvents());
  const inspection = config.inspectUrl === null ? null : createInspection({ url: config.inspectUrl, logger: log.child({ component: 'inspect' }) });
  // Off (null, no OpenTelemetry module loaded) unless OTEL_EXPORTER_OTLP_ENDPOINT is set.
  const telemetry = await createTelemetry({ tracesUrl: config.otlpTracesUrl, serviceName: config.otelServiceName });
  const workers = await createWorkers({
    store,
    registry: metrics.registry,
    logger: log.child({ component: 'workers' }),
    defaultLeaseMs: config.jobLeaseMs,
    isCancelled: async (runId) => (await engine.getRun(runId))?.status === 'cancelled',
    stageState: async (runId, stage) => engine.stageState(runId, stage),
  });
  const pipelines = overrides.pipelines ?? demoPipelines;
  // One name for this instance in run leases and in limit slots.
  const instanceId = config.instanceId ?? newInstanceId();
  const limits = await createLimits({
    store,
    pipelines,
    registry: metrics.registry,
    logger: log.child({ component: 'limits' }),
    instance: instanceId,
    stageState: (runId, stage) => engine.stageState(runId, stage),
  });
  // Stages on a worker queue get their loads and items from the job queue; a stage with a
  // limit waits for it first, before its job is queued.
  const engine: Engine = new Engine({
    store,
    telemetry,
    pipelines: limits.bind(workers.bind(pipelines)),
    waitingOnLimit: (runId, stage) => limits.waitingOn(runId, stage),
    logger: log.child({ component: 'engine' }),
    onWritten: (seconds) => metrics.appendSeconds.observe(seconds),
    leaseMs: config.leaseMs,
    instanceId,
    ...(overrides.now === undefined ? {} : { now: overrides.now }),
    // A run taken over from another instance gets its trace file here brought up to the log
    // before it appends to it. (With SQLite every untraced run is repaired at start.)
    beforeResume: shared ? async (runs) => void (await traces.repair(runs)) : undefined,
    inspect: inspection ? (ev) => inspection.observe(ev) : undefined,
    faults: health,
  });
  const hub = new Hub({
    engine,
    tokens,
    logger: log.child({ component: 'hub' }),
    registry: metrics.registry,
    allowedOrigins: config.allowedOrigins,
    queueBytes: config.wsQueueBytes,
    sendTimeoutMs: config.wsSendTimeoutMs,
    ...overrides.hub,
    isLocal: (runId) => engine.isHosted(runId),
  });
  const webhooks = webhookStoreFor(store);
  const sender = new WebhookSender({
    store: webhooks,
    owner: engine.instanceId,
    logger: log.child({ component: 'webhooks' }),
    allowPrivate: config.webhooksAllowPrivate,
    timeoutMs: config.webhookTimeoutMs,
    backoffMs: config.webhookBackoffMs,
    registry: metrics.registry,
  });
  const retention = new RetentionSweeper({
    store: retentionStoreFor(store, log.child({ component: 'retention' })),
    dataDir: config.dataDir,
    retentionMs: config.retentionMs,
    intervalMs: config.retentionSweepMs,
    logger: log.child({ component: 'retention' }),
    registry: metrics.registry,
  });
  const schedules = await createSchedules({ store, engine, logger: log.child({ component: 'schedules' }), registry: metrics.registry, ...(overrides.now ? { now: overrides.now } : {}) });
  engine.onEvents((run, events) => {
    hub.publish(run, events);
    traces.write(run, events);
    metrics.observeEvents(events);
    // The outbox row is already committed with the event; this only saves waiting for the poll.
    if (events.some((e) => webhookEventOf(e) !== null)) sender.nudge();
    workers.queue.observe(run, events);
    limits.observe(run, events);
  });

  let webRoot = overrides.webRoot;
  if (webRoot === undefined) {
    webRoot = existsSync(join(WEB_ROOT, 'index.html')) ? WEB_ROOT : null;
    if (webRoot === null) log.warn({ webRoot: WEB_ROOT }, 'the dashboard is not built (npm run build:web): serving the API only');
  }
  const app = await buildApp(config, {
    engine,
    store,
    tokens,
    metrics,
    logger: log,
    hub,
    webRoot,
    health,
    webhooks: { webhooks, allowPrivate: config.webhooksAllowPrivate },
    schedules: schedules.routes,
    workers: workers.door,
    limits,
  });
  const ingestSocket =
    config.ingestSocket === null ? null : new IngestSocket({ path: config.ingestSocket, engine, tokens, logger: log.child({ component: 'ingest' }) });

  let ingestOpen = false;
  let stopListening: (() => Promise<void>) | undefined;
  let stopping: Promise<void> | null = null;

  async function start(): Promise<Listening> {
    await health.start();
    const repaired = shared ? 0 : await traces.repair();
    await workers.start();
    limits.start();
    const recovered = await engine.recover();
    engine.start();
    sender.start();
    retention.start();
    schedules.start();
    // Other instances' events reach this instance's WebSocket clients through the store.
    stopListening = await store.listen?.(
      (runId, lastSeq) => {
        if (!engine.isHosted(runId)) hub.remoteAppended(runId, lastSeq);
      },
      () => hub.resyncRemote(),
    );
    log.info(
      { repairedTraces: repaired, recoveredRuns: recovered.length, dataDir: config.dataDir, store: store.kind, instance: engine.instanceId },
      'state recovered',
    );
    if (ingestSocket) {
      await ingestSocket.start();
      ingestOpen = true;
    }
    const address = await app.listen({ port: config.port, host: config.host });
    const { port } = app.server.address() as { port: number };
    const shown = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
    return { address, port, url: `http://${shown.includes(':') ? `[${shown}]` : shown}:${port}` };
  }

  async function shutdown(): Promise<void> {
    if (ingestOpen) await ingestSocket!.stop(); // engines reconnect and resend what was not acknowledged
    workers.door.close(); // long-poll claims answer at once with no job
    await app.close(); // no new requests; in-flight ones finish; WebSockets are closed
    await stopListening?.();
    await sender.stop(); // attempts in flight are recorded; the rest wait in the tables
    await retention.stop();
    await schedules.stop(); // a tick in progress finishes its run starts; due fires wait for the next start
    health.stop(); // its probe would only see the store closing
    await engine.stop(); // everything recorded is durable; leases released; items in flight run again
    await workers.stop(); // the jobs stay in the database: workers' answers wait for the next owner
    await limits.stop(); // slots still leased in the database free themselves when their leases run out
    await traces.flush();
    await telemetry?.shutdown(); // the spans still buffered are exported
    await store.close();
    inspection?.stop();
  }

  return {
    app,
    engine,
    store,
    hub,
    metrics,
    tokens,
    traces,
    workers,
    limits,
    health,
    ingestSocket,
    admin,
    start,
    stop: () => (stopping ??= shutdown()),
  };
}
