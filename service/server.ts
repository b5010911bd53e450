// The service: the one module that reads process.env, listens, and handles signals.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { buildApp, redactUrl } from './app.js';
import { ADMIN_NAME, TokenRegistry, adminToken, readTokensFile, type Principal } from './auth/tokens.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { Engine } from './engine/engine.js';
import { Hub } from './hub/hub.js';
import { IngestSocket } from './ingest/socket.js';
import { createInspection } from './inspect.js';
import { Metrics } from './metrics.js';
import { demoPipelines } from './pipelines/index.js';
import { PostgresStore } from './store/postgres.js';
import { SqliteStore } from './store/sqlite.js';
import type { Store } from './store/store.js';
import { retentionStoreFor } from './retention/index.js';
import { createTelemetry } from './telemetry/otel.js';
import { RetentionSweeper } from './retention/sweeper.js';
import { TraceWriter } from './trace/trace-writer.js';
import { webhookEventOf } from './webhooks/events.js';
import { webhookStoreFor } from './webhooks/index.js';
import { WebhookSender } from './webhooks/sender.js';

function makeLogger(config: Config): Logger {
  return pino({
    level: config.logLevel,
    serializers: {
      // Never the Authorization header, never a `token=` in a URL.
      req: (req: { method: string; url: string; id: string }) => ({ method: req.method, url: redactUrl(req.url), id: req.id }),
    },
  });
}

async function openStore(config: Config, log: Logger): Promise<Store> {
  if (config.databaseUrl !== null) {
    return PostgresStore.connect(config.databaseUrl, {
      poolSize: config.dbPoolSize,
      onIdleError: (err) => log.warn({ err }, 'an idle database connection failed; it is replaced on next use'),
    });
  }
  return new SqliteStore({ filename: join(config.dataDir, 'runstate.db') });
}

export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  let config: Readonly<Config>;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`runstate: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = makeLogger(config);
  const admin = adminToken(config.dataDir, config.adminToken);
  const principals: { token: string; principal: Principal }[] = [
    { token: admin.token, principal: { name: ADMIN_NAME, admin: true, accountId: null, siteIds: null } },
    ...(config.tokensFile !== null ? readTokensFile(config.tokensFile) : []),
  ];
  const store = await openStore(config, log);
  const shared = store.kind === 'postgres';
  const metrics = new Metrics(store);
  const traces = new TraceWriter({ dataDir: config.dataDir, store, logger: log.child({ component: 'traces' }) });
  const inspection = config.inspectUrl === null ? null : createInspection({ url: config.inspectUrl, logger: log.child({ component: 'inspect' }) });
  // Off (null, no SDK loaded) unless OTEL_EXPORTER_OTLP_ENDPOINT is set.
  const telemetry = await createTelemetry({ tracesUrl: config.otlpTracesUrl, serviceName: config.otelServiceName });
  const engine = new Engine({
    telemetry,
    store,
    pipelines: demoPipelines,
    logger: log.child({ component: 'engine' }),
    onWritten: (seconds) => metrics.appendSeconds.observe(seconds),
    leaseMs: config.leaseMs,
    ...(config.instanceId === null ? {} : { instanceId: config.instanceId }),
    // A run taken over from another instance gets its trace file here brought up to the log
    // before it appends to it. (With SQLite every untraced run is repaired at start, below.)
    beforeResume: shared ? async (runs) => void (await traces.repair(runs)) : undefined,
    inspect: inspection ? (ev) => inspection.observe(ev) : undefined,
  });
  const tokens = new TokenRegistry(principals);
  const hub = new Hub({
    engine,
    tokens,
    logger: log.child({ component: 'hub' }),
    registry: metrics.registry,
    allowedOrigins: config.allowedOrigins,
    queueBytes: config.wsQueueBytes,
    sendTimeoutMs: config.wsSendTimeoutMs,
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
  engine.onEvents((run, events) => {
    hub.publish(run, events);
    traces.write(run, events);
    metrics.observeEvents(events);
    // The outbox row is already committed with the event; this only saves waiting for the poll.
    if (events.some((e) => webhookEventOf(e) !== null)) sender.nudge();
  });

  const repaired = shared ? 0 : await traces.repair();
  const recovered = await engine.recover();
  engine.start();
  sender.start();
  const retention = new RetentionSweeper({
    store: retentionStoreFor(store, log.child({ component: 'retention' })),
    dataDir: config.dataDir,
    retentionMs: config.retentionMs,
    intervalMs: config.retentionSweepMs,
    logger: log.child({ component: 'retention' }),
    registry: metrics.registry,
  });
  retention.start();
  // Other instances' events reach this instance's WebSocket clients through the store.
  const stopListening = await store.listen?.(
    (runId, lastSeq) => {
      if (!engine.isHosted(runId)) hub.remoteAppended(runId, lastSeq);
    },
    () => hub.resyncRemote(),
  );
  log.info(
    { repairedTraces: repaired, recoveredRuns: recovered.length, dataDir: config.dataDir, store: store.kind, instance: engine.instanceId },
    'state recovered',
  );

  const webRoot = join(import.meta.dirname, '..', 'web', 'out');
  const hasWeb = existsSync(join(webRoot, 'index.html'));
  if (!hasWeb) log.warn({ webRoot }, 'the dashboard is not built (npm run build:web): serving the API only');
  const app = await buildApp(config, {
    engine,
    store,
    tokens,
    metrics,
    logger: log,
    hub,
    webRoot: hasWeb ? webRoot : null,
    webhooks: { webhooks, allowPrivate: config.webhooksAllowPrivate },
  });
  const ingestSocket =
    config.ingestSocket === null
      ? null
      : new IngestSocket({ path: config.ingestSocket, engine, tokens, logger: log.child({ component: 'ingest' }) });
  await ingestSocket?.start();
  const address = await app.listen({ port: config.port, host: config.host });
  const { port } = app.server.address() as { port: number };
  const shown = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  const base = `http://${shown.includes(':') ? `[${shown}]` : shown}:${port}`;
  // As Jupyter does: the URL to open, with the admin token, on the console (not in the log).
  process.stderr.write(
    `\nrunstate is listening on ${address}\n` +
      `${admin.created ? 'A new admin token was created and kept in the data directory.\n' : ''}` +
      `Open ${base}/?token=${admin.token}\n\n`,
  );

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      log.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown took too long; exiting anyway');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    force.unref();
    (async () => {
      await ingestSocket?.stop(); // engines reconnect and resend what was not acknowledged
      await app.close(); // no new requests; in-flight ones finish
      await stopListening?.();
      await sender.stop(); // attempts in flight are recorded; the rest wait in the tables
      await retention.stop();
      await engine.stop(); // everything recorded is durable; leases released; items in flight run again
      await traces.flush();
      await telemetry?.shutdown(); // the spans still buffered are exported
      await store.close();
      inspection?.stop();
      log.info('stopped');
      process.exit(0);
    })().catch((err: unknown) => {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

if (process.argv[1] === import.meta.filename) {
  main().catch((err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`runstate: ${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`runstate: failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
