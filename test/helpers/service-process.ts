import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');

export interface ServiceProcess {
  child: ChildProcess;
  base: string;
  token: string;
  /** Resolves when the process has exited, however it ended. */
  exited: Promise<void>;
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  stop(): Promise<void>;
}

/** The service as `npm start` runs it (node service/server.ts), on a free port and the given data dir. */
export function startService(dataDir: string, env: Record<string, string> = {}): Promise<ServiceProcess> {
  return spawnService(['--import', 'tsx', 'service/server.ts'], dataDir, env);
}

/**
 * A service process started by `args` (node's arguments), on a free port and the given data
 * dir; ready once it prints the URL to open, whose token it keeps.
 */
export async function spawnService(args: readonly string[], dataDir: string, env: Record<string, string> = {}): Promise<ServiceProcess> {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', RUNSTATE_DATA: dataDir, RUNSTATE_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = await new Promise<URL>((resolve, reject) => {
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /Open (http:\/\/\S+)/.exec(out);
      if (m) resolve(new URL(m[1]!));
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then(() => reject(new Error(`the service exited: ${out}`)));
  });
  return {
    child,
    base: url.origin,
    token: url.searchParams.get('token')!,
    exited,
    output: () => out,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * One call under /api/v1/automation with the service's admin token: `GET` unless a body or a
 * method is given (a body alone makes it a `POST`); the status and the parsed JSON answer.
 */
export async function callApi<T = any>( // eslint-disable-line @typescript-eslint/no-explicit-any
  svc: Pick<ServiceProcess, 'base' | 'token'>,
  path: string,
  init: { method?: string; body?: unknown } = {},
): Promise<{ status: number; body: T }> {
  const res = await fetch(`${svc.base}/api/v1/automation${path}`, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: { authorization: `Token ${svc.token}`, ...(init.body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  return { status: res.status, body: (await res.json()) as T };
}

/** Polls `GET /runs/:id` until the run's status is `status`, and returns its view; fails after `ms` saying where it was. */
export async function runReaches<T extends { status: string }>(svc: Pick<ServiceProcess, 'base' | 'token'>, runId: string, status: string, ms = 30_000): Promise<T> {
  let last: T | undefined;
  const deadline = performance.now() + ms;
  for (;;) {
    last = (await callApi<{ data: T }>(svc, `/runs/${runId}`)).body.data;
    if (last.status === status) return last;
    if (performance.now() > deadline) throw new Error(`run ${runId} is ${String(last.status)}, not ${status}, after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
