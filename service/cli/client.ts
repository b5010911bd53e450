// The CLI's way to the service: where it is and which token to use (flags, then the
// environment, then the data directory of a local service), and HTTP calls that turn the
// service's error answers into the message the service gave.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Bad arguments or a missing setting: the CLI says so and exits 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
}

/** The service refused, or could not be reached: its message, exit 1. */
export class ServiceError extends Error {
  readonly exitCode = 1;
  constructor(
    message: string,
    readonly code: string | null = null,
    readonly status: number | null = null,
  ) {
    super(message);
  }
}

export interface TargetFlags {
  url?: string;
  token?: string;
  data?: string;
}

export interface Target {
  /** `http://host:port`, no trailing slash. */
  url: string;
  token: string;
}

/** `--url`, `RUNSTATE_URL`, or the local service `HOST`/`PORT` describe (127.0.0.1:3000). */
function urlOf(flags: TargetFlags, env: NodeJS.ProcessEnv): string {
  let raw = flags.url ?? env.RUNSTATE_URL;
  if (raw === undefined || raw.trim() === '') {
    const host = env.HOST && !['0.0.0.0', '::'].includes(env.HOST) ? env.HOST : '127.0.0.1';
    raw = `http://${host.includes(':') ? `[${host}]` : host}:${env.PORT || '3000'}`;
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`Expected \`--url\` (or RUNSTATE_URL) to be a URL like http://127.0.0.1:3000, got ${JSON.stringify(raw)}.`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`Expected an http:// or https:// URL, got ${JSON.stringify(raw)}.`);
  return url.origin + url.pathname.replace(/\/+$/, '');
}

/** `--token`, `RUNSTATE_TOKEN`, `RUNSTATE_ADMIN_TOKEN`, or `<data>/admin-token` of a local service. */
function tokenOf(flags: TargetFlags, env: NodeJS.ProcessEnv, cwd: string): string {
  const given = flags.token ?? env.RUNSTATE_TOKEN ?? env.RUNSTATE_ADMIN_TOKEN;
  if (given !== undefined && given.trim() !== '') return given.trim();
  const dataDir = resolve(cwd, flags.data ?? env.RUNSTATE_DATA ?? './data');
  const file = join(dataDir, 'admin-token');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  throw new UsageError(
    `No token: pass \`--token\`, set RUNSTATE_TOKEN, or run where the service keeps its data (${file} does not exist; \`--data\` or RUNSTATE_DATA name another directory).`,
  );
}

export function resolveTarget(flags: TargetFlags, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Target {
  return { url: urlOf(flags, env), token: tokenOf(flags, env, cwd) };
}

/** Calls `/api/v1/automation<path>`; answers `data` (and the rest of the body). */
export async function call<T = unknown>(target: Target, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ data: T } & Record<string, unknown>> {
  let res: Response;
  try {
    res = await fetch(`${target.url}/api/v1/automation${path}`, {
      method,
      headers: { authorization: `Token ${target.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new ServiceError(`Cannot reach runstate at ${target.url}: ${cause?.code ?? cause?.message ?? (err as Error).message}.`);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ServiceError(`${target.url} answered ${res.status} with something that is not runstate's JSON.`, null, res.status);
  }
  if (!res.ok) {
    const error = (json as { error?: { code?: string; message?: string } }).error;
    throw new ServiceError(error?.message ?? `The service answered ${res.status}.`, error?.code ?? null, res.status);
  }
  return json as { data: T } & Record<string, unknown>;
}
