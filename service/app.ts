import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import fastifyStatic from '@fastify/static';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { TokenRegistry } from './auth/tokens.js';
import type { Config } from './config.js';
import type { Engine } from './engine/engine.js';
import type { Hub } from './hub/hub.js';
import { RunstateError } from './errors.js';
import type { Health } from './health.js';
import { sendError } from './http.js';
import type { Metrics } from './metrics.js';
import { currentProcessingRoutes } from './routes/current-processing.js';
import { ingestRoutes } from './routes/ingest.js';
import { itemsRoutes } from './routes/items.js';
import { runsRoutes } from './routes/runs.js';
import { scheduleRoutes, type ScheduleRoutesOptions } from './schedules/routes.js';
import { StoreUnavailableError, isTransient } from './store/faults.js';
import { webhooksRoutes, type WebhookRoutesOptions } from './routes/webhooks.js';
import type { Store } from './store/store.js';
import type { WorkerDoor } from './workers/door.js';
import type { Limits } from './limits/index.js';
import { limitsRoutes } from './limits/routes.js';
import { WORKERS_PREFIX, workerRoutes, workersOverviewRoute } from './workers/routes.js';

export interface AppDeps {
  engine: Engine;
  store: Store;
  tokens: TokenRegistry;
  metrics: Metrics;
  logger: Logger;
  /** The WebSocket hub, served at `/ws` on the same port. */
  hub?: Hub;
  /** The dashboard's static export (web/out), served at `/`; none: API only. */
  webRoot?: string | null;
  /** The workers' door, served at `/api/v1/workers` (docs/workers.md). */
  workers?: WorkerDoor;
  /** The service's health (database, disk): /healthz answers from it; the API answers 503 while the database is away. */
  health?: Health;
  /** The webhook subscriptions (`/webhooks`); none: those routes are not served. */
  webhooks?: WebhookRoutesOptions;
  /** The limits (`GET /limits`, items `waiting_limit`); none: that route is not served. */
  limits?: Limits;
  /** Schedules (`/schedules`); none: those routes are not served. */
  schedules?: ScheduleRoutesOptions;
}

export const API_PREFIX = '/api/v1/automation';
const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** Drops `token=` from a URL before it reaches a log line. */
export function redactUrl(url: string): string {
  return url.replace(/([?&]token=)[^&#]*/gi, '$1[redacted]');
}

/**
 * The Fastify app with every route of docs/api.md. It never listens: `buildService` does
 * (service/service.ts), and tests use `app.inject` or the service on port 0.
 */
export async function buildApp(config: Pick<Config, 'bodyLimit'>, deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: config.bodyLimit,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    ajv: { customOptions: { coerceTypes: 'array', removeAdditional: false, allErrors: false } },
    // Errors the router raises before any route runs (a malformed URL): same shape as the rest.
    frameworkErrors: (err, _request, reply) => {
      sendError(reply, new RunstateError('BAD_REQUEST', err.code === 'FST_ERR_BAD_URL' ? 'The URL is not valid.' : 'The request is not valid.'));
    },
  });
  app.decorateRequest('principal', null);

  // JSON only: a text body is a 415, not a confusing validation error.
  app.removeContentTypeParser('text/plain');
  // A POST with `Content-Type: application/json` and no body is a command without a reason.
  const json = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') done(null, null);
    else void json(request, body as string, done);
  });

  app.setErrorHandler((err: FastifyError | RunstateError, request, reply) => {
    if (err instanceof RunstateError) return sendError(reply, err);
    if (err.validation) return sendError(reply, new RunstateError('BAD_REQUEST', `${err.message}.`));
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendError(reply, new RunstateError('PAYLOAD_TOO_LARGE', `The request body is over ${config.bodyLimit} bytes.`));
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return sendError(reply, new RunstateError('UNSUPPORTED_MEDIA_TYPE'));
    if (err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
      return sendError(reply, new RunstateError('BAD_REQUEST', 'The body is not valid JSON.'));
    }
    if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      return sendError(reply, new RunstateError('BAD_REQUEST', 'The request is not valid.'));
    }
    if (err instanceof StoreUnavailableError || isTransient(err)) {
      request.log.warn({ err }, 'request refused: the database is unavailable');
      return sendError(reply, new RunstateError('DATABASE_UNAVAILABLE'));
    }
    request.log.error({ err }, 'request failed');
    return sendError(reply, new RunstateError('INTERNAL'));
  });
  const webRoot = deps.webRoot ?? null;
  app.setNotFoundHandler((request, reply) => {
    // The dashboard addresses runs by query (/run/?id=…); any other page a browser asks for
    // gets the app shell rather than an error.
    const wantsPage = request.method === 'GET' && !request.url.startsWith('/api/') && (request.headers.accept ?? '').includes('text/html');
    if (webRoot !== null && wantsPage) {
      const [path = '/', query] = request.url.split('?');
      // A page is its directory's index.html: `/run/?id=…`; `/run?id=…` is sent there.
      const page = /^\/([a-z-]+)\/?$/.exec(path)?.[1];
      if (page !== undefined && existsSync(join(webRoot, page, 'index.html'))) {
        if (path.endsWith('/')) return reply.type('text/html').sendFile(join(page, 'index.html'), webRoot);
        return reply.redirect(`${path}/${query === undefined ? '' : `?${query}`}`);
      }
      return reply.type('text/html').sendFile('index.html', webRoot);
    }
    return sendError(reply, new RunstateError('NOT_FOUND', `No route for ${request.method} ${redactUrl(request.url).split('?')[0]}.`));
  });
  if (webRoot !== null) {
    await app.register(fastifyStatic, { root: webRoot, prefix: '/', wildcard: true, index: 'index.html' });
  }

  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  app.addHook('onResponse', async (request, reply) => {
    deps.metrics.httpDuration.observe(
      { method: request.method, route: request.routeOptions.url ?? 'unmatched', status_code: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  await app.register(swagger, {
    openapi: {
      info: { title: 'runstate', version: '1', description: 'Multi-stage batch pipelines as XState actors (docs/api.md).' },
      components: { securitySchemes: { token: { type: 'apiKey', in: 'header', name: 'Authorization', description: '`Token <token>`' } } },
      security: [{ token: [] }],
    },
  });

  const hub = deps.hub;
  if (hub) {
    // The upgrade is the hub's: token and origin are checked before a WebSocket opens.
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => hub.handleUpgrade(req, socket, head);
    app.server.on('upgrade', onUpgrade);
    app.addHook('preClose', async () => {
      app.server.off('upgrade', onUpgrade);
      await hub.close();
    });
  }

  app.get('/healthz', { schema: { hide: true } }, async (_, reply) => {
    const health = deps.health;
    if (!health) {
      await deps.store.countRunsByStatus();
      return { status: 'ok', store: deps.store.kind, runs_in_memory: deps.engine.hostedRuns };
    }
    const state = health.status();
    return reply.status(state.status === 'ok' ? 200 : 503).send({ ...state, store: deps.store.kind, runs_in_memory: deps.engine.hostedRuns });
  });
  app.get('/metrics', { schema: { hide: true } }, async (_, reply) => {
    return reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
  app.get('/api/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(
    async (api) => {
      api.addHook('onRequest', async (request) => {
        const token = TokenRegistry.fromHeader(request.headers.authorization);
        const principal = deps.tokens.authenticate(token);
        if (!principal) {
          if (deps.tokens.identify(token)?.worker) throw new RunstateError('FORBIDDEN', 'A worker token may only use /api/v1/workers.');
          throw new RunstateError('UNAUTHORIZED');
        }
        request.principal = principal;
        // Known to be away: answer at once rather than wait for a connection that will not come.
        if (deps.health && !deps.health.databaseUp) throw new RunstateError('DATABASE_UNAVAILABLE');
      });
      await api.register(runsRoutes, { engine: deps.engine, store: deps.store });
      await api.register(currentProcessingRoutes, { engine: deps.engine });
      await api.register(itemsRoutes, { engine: deps.engine, store: deps.store, ...(deps.limits ? { limiter: deps.limits.limiter } : {}) });
      if (deps.limits) await api.register(limitsRoutes, { declared: deps.limits.declared, limiter: deps.limits.limiter });
      if (deps.webhooks) await api.register(webhooksRoutes, deps.webhooks);
      if (deps.schedules) await api.register(scheduleRoutes, deps.schedules);
      if (deps.workers) await api.register(workersOverviewRoute, { door: deps.workers });
      // Batches of events are bigger than commands: 1,000 events of a few hundred bytes.
      await api.register(ingestRoutes, { engine: deps.engine, bodyLimit: Math.max(config.bodyLimit, 1024 * 1024) });
    },
    { prefix: API_PREFIX },
  );
  if (deps.workers) {
    await app.register(workerRoutes, { door: deps.workers, tokens: deps.tokens, bodyLimit: Math.max(config.bodyLimit, 1024 * 1024), prefix: WORKERS_PREFIX });
  }
  return app;
}
