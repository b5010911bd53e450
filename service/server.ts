// The process: the one module that reads process.env; it makes the logger, builds the service,
// prints the URL to open and turns SIGTERM and SIGINT into a graceful stop (docs/operations.md).
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import { redactUrl } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { logSerializers } from './log.js';
import { demoPipelines } from './pipelines/index.js';
import { PipelineLoadError, loadPipelines } from './pipelines/loader.js';
import { registerRunstateResolver } from './pipelines/resolve.js';
import type { AnyPipeline } from './pipelines/types.js';
import { buildService } from './service.js';

function makeLogger(config: Readonly<Config>): Logger {
  const options = {
    level: config.logLevel,
    serializers: {
      // An error as message, code and stack: never a pg client, never a connection string's password.
      ...logSerializers,
      // Never the Authorization header, never a `token=` in a URL.
      req: (req: { method: string; url: string; id: string }) => ({ method: req.method, url: redactUrl(req.url), id: req.id }),
    },
  };
  // People at a terminal read lines; anything else (a file, a log shipper) gets JSON.
  if (process.stdout.isTTY) return pino(options, pretty({ sync: true, translateTime: 'SYS:HH:MM:ss.l' }));
  // JSON lines go out in 2 KiB writes (or every 250 ms, whichever comes first), not one write
  // per line on the request path; what is buffered is written when the process exits, however.
  const dest = pino.destination({ dest: 1, sync: true, minLength: LOG_BUFFER_BYTES, periodicFlush: LOG_FLUSH_MS });
  process.once('exit', () => dest.flushSync());
  return pino(options, dest);
}

// Under PIPE_BUF (4 KiB) with the line that fills it, as a rule: a reader of a pipe gets whole writes.
const LOG_BUFFER_BYTES = 2048;
const LOG_FLUSH_MS = 250;

/**
 * The demo pipelines and those of RUNSTATE_PIPELINES (docs/pipelines.md). A fault in any file
 * stops the start with exit 2, before the data directory or the store is touched.
 */
async function pipelinesOf(config: Readonly<Config>): Promise<AnyPipeline[]> {
  if (config.pipelines.length === 0) return [...demoPipelines];
  registerRunstateResolver();
  try {
    const loaded = await loadPipelines(config.pipelines, demoPipelines);
    return [...demoPipelines, ...loaded.map((l) => l.pipeline)];
  } catch (err) {
    if (!(err instanceof PipelineLoadError)) throw err;
    process.stderr.write(`runstate: cannot start: RUNSTATE_PIPELINES has ${err.faults.length === 1 ? 'a fault' : `${err.faults.length} faults`}:\n`);
    for (const f of err.faults) process.stderr.write(`  ${f.file}: ${f.message}\n`);
    process.exit(2);
  }
}

export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const config = loadConfig(env);
  const log = makeLogger(config);
  const pipelines = await pipelinesOf(config);
  const service = await buildService(config, { logger: log, pipelines });
  const { address, url } = await service.start();
  // As Jupyter does: the URL to open, with the admin token, on the console (not in the log).
  process.stderr.write(
    `\nrunstate is listening on ${address}\n` +
      `${service.admin.created ? 'A new admin token was created and kept in the data directory.\n' : ''}` +
      `Open ${url}/?token=${service.admin.token}\n\n`,
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
    service.stop().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

if (process.argv[1] === import.meta.filename) {
  main().catch((err: unknown) => {
    // A bad setting (or a bad tokens file) names itself and exits 2.
    if (err instanceof ConfigError) {
      process.stderr.write(`runstate: ${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`runstate: failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
