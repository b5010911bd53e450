import { isAbsolute, resolve } from 'node:path';

/** The service's settings, read once from the environment by server.ts (docs/operations.md, "Settings"). */
export interface Config {
  /** [PORT=3000] 0 picks a free port. */
  port: number;
  /** [HOST=127.0.0.1] */
  host: string;
  /** [RUNSTATE_DATA=./data] SQLite database, admin token, trace files. Absolute. */
  dataDir: string;
  /** [DATABASE_URL] Postgres; SQLite in `dataDir` when unset. */
  databaseUrl: string | null;
  /** [RUNSTATE_ADMIN_TOKEN] generated and kept in `dataDir` when unset. */
  adminToken: string | null;
  /** [RUNSTATE_TOKENS_FILE] JSON list of `{token, name, account_id, site_ids}`; ids may be JSON numbers (docs/api.md). */
  tokensFile: string | null;
  /** [RUNSTATE_LOG_LEVEL=info] */
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** [RUNSTATE_SHUTDOWN_TIMEOUT_MS=10000] how long SIGTERM may take before the process exits anyway. */
  shutdownTimeoutMs: number;
  /** [RUNSTATE_BODY_LIMIT=65536] largest request body, in bytes. */
  bodyLimit: number;
  /** [RUNSTATE_ALLOWED_ORIGINS] browser origins allowed on /ws besides the service's own, comma-separated. */
  allowedOrigins: readonly string[];
  /** [RUNSTATE_WS_QUEUE_BYTES=262144] what one WebSocket client may hold unread before it is evicted. */
  wsQueueBytes: number;
  /** [RUNSTATE_WS_SEND_TIMEOUT_MS=2000] a WebSocket whose writes do not drain this long is evicted. */
  wsSendTimeoutMs: number;
  /** [RUNSTATE_INGEST_SOCKET] Unix socket for external engines' events; off when unset. */
  ingestSocket: string | null;
  /** [RUNSTATE_DB_POOL=10] Postgres connections per instance. */
  dbPoolSize: number;
  /** [RUNSTATE_LEASE_MS=10000] how long a run stays with an instance that stopped renewing its lease. */
  leaseMs: number;
  /** [RUNSTATE_JOB_LEASE_MS=30000] a worker's lease of a job, for queue stages that name none (docs/workers.md). */
  jobLeaseMs: number;
  /** [RUNSTATE_INSTANCE_ID] this instance's name in leases; `<hostname>-<pid>-<random>` when unset. */
  instanceId: string | null;
  /** [RUNSTATE_INSPECT] a Stately inspector relay (ws://…) to stream run and stage actors to; off when unset. */
  inspectUrl: string | null;
  /** [RUNSTATE_PIPELINES] pipeline modules, `.json` declarations and directories of them, comma-separated; absolute. */
  pipelines: readonly string[];
  /** [RUNSTATE_WEBHOOKS_ALLOW_PRIVATE=0] 1: webhook URLs may reach loopback, link-local and private addresses. */
  webhooksAllowPrivate: boolean;
  /** [RUNSTATE_WEBHOOK_TIMEOUT_MS=10000] one delivery attempt, connection to the end of the answer. */
  webhookTimeoutMs: number;
  /** [RUNSTATE_WEBHOOK_BACKOFF_MS=1000] the wait before a failed delivery's first retry; it doubles, with jitter, for 24 h. */
  webhookBackoffMs: number;
  /** [RUNSTATE_RETENTION=30d] how long closed and finished runs are kept, in ms; 0 keeps them for ever. */
  retentionMs: number;
  /** [RUNSTATE_RETENTION_SWEEP_MS] how often the retention sweep looks; default half the retention, between 1 s and 1 min. */
  retentionSweepMs: number;
  /**
   * [OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT] where OpenTelemetry spans
   * go over OTLP/HTTP (the traces URL; `<endpoint>/v1/traces` from the base); off when unset.
   */
  otlpTracesUrl: string | null;
  /** [OTEL_SERVICE_NAME=runstate] */
  otelServiceName: string;
}

const DURATION_UNITS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `30d`, `12h`, `90m`, `45s`, or `0` (for ever) as milliseconds. */
export function parseDuration(name: string, raw: string): number {
  const m = /^(\d+)\s*([smhd])?$/.exec(raw.trim());
  if (!m || (m[2] === undefined && m[1] !== '0')) {
    throw new ConfigError(`Expected \`${name}\` to be a duration like 30d, 12h, 90m or 45s (or 0), got ${JSON.stringify(raw)}.`);
  }
  return Number(m[1]) * (m[2] === undefined ? 0 : DURATION_UNITS[m[2]]!);
}

function flag(env: NodeJS.ProcessEnv, name: string): boolean {
  const raw = text(env, name);
  if (raw === null || raw === '0' || raw === 'false') return false;
  if (raw === '1' || raw === 'true') return true;
  throw new ConfigError(`Expected \`${name}\` to be 1 or 0, got ${JSON.stringify(raw)}.`);
}

function otlpTracesUrl(env: NodeJS.ProcessEnv): string | null {
  const traces = text(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  const base = text(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  const url = traces ?? (base === null ? null : `${base.replace(/\/+$/, '')}/v1/traces`);
  if (url !== null && !/^https?:\/\/[^\s]+$/.test(url)) {
    throw new ConfigError(`Expected \`OTEL_EXPORTER_OTLP_ENDPOINT\` to be an http(s) URL, got ${JSON.stringify(traces ?? base)}.`);
  }
  return url;
}

export class ConfigError extends Error {
  readonly code = 'INVALID_CONFIG';
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(`Expected \`${name}\` to be a whole number, got ${JSON.stringify(raw)}.`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(`Expected \`${name}\` to be between ${min} and ${max}, got ${n}.`);
  return n;
}

function text(env: NodeJS.ProcessEnv, name: string): string | null {
  const raw = env[name];
  return raw === undefined || raw.trim() === '' ? null : raw.trim();
}

function origins(env: NodeJS.ProcessEnv): string[] {
  const raw = text(env, 'RUNSTATE_ALLOWED_ORIGINS');
  if (raw === null) return [];
  return raw.split(',').map((o) => {
    const origin = o.trim();
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      throw new ConfigError(`Expected \`RUNSTATE_ALLOWED_ORIGINS\` to list origins like https://ops.example.com, got ${JSON.stringify(origin)}.`);
    }
    if (url.origin !== origin) throw new ConfigError(`Expected \`RUNSTATE_ALLOWED_ORIGINS\` entries to be bare origins (scheme://host[:port]), got ${JSON.stringify(origin)}.`);
    return origin;
  });
}

/** Reads and validates the settings; a bad one is a `ConfigError` that names it. */
export function loadConfig(env: NodeJS.ProcessEnv, cwd = process.cwd()): Readonly<Config> {
  const dataDir = text(env, 'RUNSTATE_DATA') ?? './data';
  const databaseUrl = text(env, 'DATABASE_URL');
  if (databaseUrl !== null && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('Expected `DATABASE_URL` to be a postgres:// or postgresql:// URL.');
  }
  const adminToken = text(env, 'RUNSTATE_ADMIN_TOKEN');
  if (adminToken !== null && adminToken.length < 16) {
    throw new ConfigError('Expected `RUNSTATE_ADMIN_TOKEN` to be at least 16 characters.');
  }
  const logLevel = text(env, 'RUNSTATE_LOG_LEVEL') ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError(`Expected \`RUNSTATE_LOG_LEVEL\` to be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}.`);
  }
  const host = text(env, 'HOST') ?? '127.0.0.1';
  if (/\s/.test(host)) throw new ConfigError(`Expected \`HOST\` to be a host name or address, got ${JSON.stringify(host)}.`);
  const tokensFile = text(env, 'RUNSTATE_TOKENS_FILE');
  const ingestSocket = text(env, 'RUNSTATE_INGEST_SOCKET');
  const inspectUrl = text(env, 'RUNSTATE_INSPECT');
  if (inspectUrl !== null && !/^wss?:\/\/[^\s]+$/.test(inspectUrl)) {
    throw new ConfigError(`Expected \`RUNSTATE_INSPECT\` to be a ws:// or wss:// URL (the relay of \`npm run inspect\`), got ${JSON.stringify(inspectUrl)}.`);
  }
  // sun_path is 108 bytes on Linux; a longer path fails at listen with a less helpful error.
  if (ingestSocket !== null && Buffer.byteLength(resolve(cwd, ingestSocket)) > 107) {
    throw new ConfigError('Expected `RUNSTATE_INGEST_SOCKET` to be a path of at most 107 bytes (a Unix socket limit).');
  }
  const retentionMs = parseDuration('RUNSTATE_RETENTION', text(env, 'RUNSTATE_RETENTION') ?? '30d');
  return Object.freeze({
    port: integer(env, 'PORT', 3000, 0, 65535),
    host,
    dataDir: isAbsolute(dataDir) ? dataDir : resolve(cwd, dataDir),
    databaseUrl,
    adminToken,
    tokensFile: tokensFile === null ? null : resolve(cwd, tokensFile),
    logLevel: logLevel as Config['logLevel'],
    shutdownTimeoutMs: integer(env, 'RUNSTATE_SHUTDOWN_TIMEOUT_MS', 10_000, 100, 600_000),
    bodyLimit: integer(env, 'RUNSTATE_BODY_LIMIT', 64 * 1024, 1024, 16 * 1024 * 1024),
    allowedOrigins: Object.freeze(origins(env)),
    wsQueueBytes: integer(env, 'RUNSTATE_WS_QUEUE_BYTES', 256 * 1024, 16 * 1024, 64 * 1024 * 1024),
    wsSendTimeoutMs: integer(env, 'RUNSTATE_WS_SEND_TIMEOUT_MS', 2000, 100, 60_000),
    ingestSocket: ingestSocket === null ? null : resolve(cwd, ingestSocket),
    dbPoolSize: integer(env, 'RUNSTATE_DB_POOL', 10, 1, 1000),
    leaseMs: integer(env, 'RUNSTATE_LEASE_MS', 10_000, 500, 3_600_000),
    jobLeaseMs: integer(env, 'RUNSTATE_JOB_LEASE_MS', 30_000, 100, 3_600_000),
    instanceId: text(env, 'RUNSTATE_INSTANCE_ID'),
    inspectUrl,
    pipelines: Object.freeze(
      (text(env, 'RUNSTATE_PIPELINES') ?? '')
        .split(',')
        .map((p) => p.trim())
        .filter((p) => p !== '')
        .map((p) => resolve(cwd, p)),
    ),
    webhooksAllowPrivate: flag(env, 'RUNSTATE_WEBHOOKS_ALLOW_PRIVATE'),
    webhookTimeoutMs: integer(env, 'RUNSTATE_WEBHOOK_TIMEOUT_MS', 10_000, 100, 300_000),
    webhookBackoffMs: integer(env, 'RUNSTATE_WEBHOOK_BACKOFF_MS', 1000, 10, 3_600_000),
    retentionMs,
    retentionSweepMs: integer(env, 'RUNSTATE_RETENTION_SWEEP_MS', Math.min(60_000, Math.max(1000, Math.floor(retentionMs / 2))), 100, 86_400_000),
    otlpTracesUrl: otlpTracesUrl(env),
    otelServiceName: text(env, 'OTEL_SERVICE_NAME') ?? 'runstate',
  });
}
