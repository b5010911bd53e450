// The process: the one module that reads process.env; it makes the logger, builds the service,
// prints the URL to open and turns SIGTERM and SIGINT into a graceful stop (docs/operations.md).
import { pino, type Logger } from 'pino';
import { redactUrl } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { buildService } from './service.js';

function makeLogger(config: Readonly<Config>): Logger {
  return pino({
    level: config.logLevel,
    serializers: {
      // Never the Authorization header, never a `token=` in a URL.
      req: (req: { method: string; url: string; id: string }) => ({ method: req.method, url: redactUrl(req.url), id: req.id }),
    },
  });
}

export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const config = loadConfig(env);
  const log = makeLogger(config);
  const service = await buildService(config, { logger: log });
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
