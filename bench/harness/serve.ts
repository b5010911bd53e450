// The service in a process of its own as users start it (`runstate serve`, through
// test/helpers/service-process.ts) on a fresh data dir, and its HTTP API, with the token it printed.
import { spawnService, type ServiceProcess } from '../../test/helpers/service-process.js';
import { removeDir, tempDir } from './stats.js';

type Service = Pick<ServiceProcess, 'base' | 'token'>;
export type Served = ServiceProcess;

/** `node [nodeArgs] bin/runstate.mjs serve` (or `entry`) on a fresh data dir, which goes when it stops; JSON logs at info unless `env` says otherwise. */
export async function launch(label: string, env: Record<string, string> = {}, { nodeArgs = [], entry = ['bin/runstate.mjs', 'serve'] }: { nodeArgs?: string[]; entry?: string[] } = {}): Promise<Served> {
  const dir = tempDir(label);
  const proc = await spawnService([...nodeArgs, ...entry], dir, { RUNSTATE_LOG_LEVEL: 'info', ...env });
  const stop = async () => {
    await proc.stop();
    removeDir(dir);
  };
  return { ...proc, stop };
}

/** A line of a run's trace (`GET /runs/:id/trace`). */
export type TraceLine = { seq: number; timestamp: string; event?: string; stage?: number; machine_name?: string; payload?: { to_state?: string } };

/** The text `path` answers (a JSON body with `body`); fails on an error status. */
export async function read(svc: Service, method: string, path: string, body?: unknown): Promise<string> {
  const res = await fetch(`${svc.base}${path}`, {
    method,
    headers: { authorization: `Token ${svc.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`bench: ${method} ${path}: ${res.status} ${text}`);
  return text;
}

/** `GET` (or, with a body, `POST`) under /api/v1/automation: its `data`. */
export async function api<T = Record<string, unknown>>(svc: Service, path: string, body?: unknown): Promise<T> {
  return (JSON.parse(await read(svc, body === undefined ? 'GET' : 'POST', `/api/v1/automation${path}`, body)) as { data: T }).data;
}

/** Starts a run of `pipeline` for site `bench`; its id. */
export async function startRun(svc: Service, pipeline: string, fields: Record<string, unknown>): Promise<string> {
  return (await api<{ run_id: string }>(svc, '/runs', { site_id: 'bench', pipeline, ...fields })).run_id;
}

export async function trace(svc: Service, runId: string): Promise<TraceLine[]> {
  return (await read(svc, 'GET', `/api/v1/automation/runs/${runId}/trace`)).trim().split('\n').map((line) => JSON.parse(line) as TraceLine);
}
