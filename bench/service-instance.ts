// One `runstate serve` process for the service part: the user's command line (bin/runstate.mjs),
// on a fresh data dir (and database), JSON logs at info, and the calls the part makes over HTTP.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnService, type ServiceProcess } from '../test/helpers/service-process.js';

/** One service process: the user's command line, on its own data dir (and database). */
export interface Instance {
  proc: ServiceProcess;
  dir: string;
  /** The runs it has worked so far: each gets its own trigger, so ids never collide. */
  runs: number;
}

export async function startInstance(label: string, env: Record<string, string>, profileDir?: string): Promise<Instance> {
  const dir = mkdtempSync(join(tmpdir(), `runstate-bench-${label}-`));
  const prof = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const proc = await spawnService([...prof, 'bin/runstate.mjs', 'serve'], dir, { RUNSTATE_LOG_LEVEL: 'info', ...env });
  return { proc, dir, runs: 0 };
}

export async function stopInstance(inst: Instance): Promise<void> {
  await inst.proc.stop();
  rmSync(inst.dir, { recursive: true, force: true });
}

export async function api<T>(inst: Instance, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${inst.proc.base}/api/v1/automation${path}`, {
    method,
    headers: { authorization: `Token ${inst.proc.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`bench: ${method} ${path}: ${res.status} ${text}`);
  return (path.endsWith('/trace') ? text : JSON.parse(text)) as T;
}

/** `runstate_event_append_seconds` as cumulative bucket counts (upper bound in seconds → count). */
export async function appendBuckets(inst: Instance): Promise<Map<number, number>> {
  const text = await (await fetch(`${inst.proc.base}/metrics`, { headers: { authorization: `Token ${inst.proc.token}` } })).text();
  const out = new Map<number, number>();
  for (const m of text.matchAll(/^runstate_event_append_seconds_bucket\{le="([^"]+)"\} (\d+)/gm)) out.set(m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2]));
  if (out.size === 0) throw new Error('bench: /metrics has no runstate_event_append_seconds');
  return out;
}

/** The process's resident set size in bytes, as the kernel counts it. */
export function rssOf(inst: Instance): number {
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${inst.proc.child.pid}/status`, 'utf8'))?.[1];
  if (kb === undefined) throw new Error('bench: no VmRSS in /proc/<pid>/status');
  return Number(kb) * 1024;
}
