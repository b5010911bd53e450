// Real worker processes for tests: Python workers of sdk/python (through test/helpers/py_worker.py),
// each a child process whose JSON lines the test reads, and a small HTTP client for the door.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { NewJob } from '../../service/store/jobs.js';

const ROOT = join(import.meta.dirname, '..', '..');

export interface WorkerLine {
  event: string;
  job_id?: string;
  key?: string;
  attempt?: number;
  worker?: string;
  [k: string]: unknown;
}

export interface WorkerProcess {
  id: string;
  child: ChildProcess;
  lines: WorkerLine[];
  exited: Promise<void>;
  /** Resolves with the first line (seen or to come) that passes the test. */
  until(test: (l: WorkerLine) => boolean, ms?: number): Promise<WorkerLine>;
}

export function pythonWorker(base: string, token: string, id: string, env: Record<string, string> = {}): WorkerProcess {
  const child = spawn('python3', [join(ROOT, 'test', 'helpers', 'py_worker.py')], {
    env: { ...process.env, RUNSTATE_URL: base, RUNSTATE_TOKEN: token, WORKER_ID: id, PYTHONUNBUFFERED: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: WorkerLine[] = [];
  const waiters: { test: (l: WorkerLine) => boolean; resolve: (l: WorkerLine) => void }[] = [];
  let buf = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const text = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!text.trim()) continue;
      const line = JSON.parse(text) as WorkerLine;
      lines.push(line);
      for (const w of [...waiters]) {
        if (w.test(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    id,
    child,
    lines,
    exited,
    until(test, ms = 30_000) {
      const seen = lines.find(test);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`worker ${id}: no such line within ${ms} ms; stderr: ${err}`)), ms);
        waiters.push({ test, resolve: (l) => (clearTimeout(timer), resolve(l)) });
      });
    },
  };
}

export async function kill(w: WorkerProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill(signal);
  await w.exited;
}

export interface Answer {
  status: number;
  body: Record<string, unknown> & { error?: { code: string; message: string } };
}

/** One HTTP call with a token; `raw` sends the body as it is. */
export async function call(base: string, token: string, method: string, path: string, body?: unknown, raw?: string): Promise<Answer> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Token ${token}`, ...(body === undefined && raw === undefined ? {} : { 'content-type': 'application/json' }) },
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Answer['body']) : {} };
}

/** A job of item 1, stage 1 of `runId`, as a queue stage would enqueue it. */
export function jobOf(runId: string, over: Partial<NewJob> = {}): NewJob {
  return {
    runId,
    stage: 1,
    stageKey: 'crop',
    kind: 'item',
    itemId: '1',
    item: { id: 1, title: 'item 1' },
    attempt: 1,
    queue: 'faces',
    siteId: 'site-5',
    pipeline: 'face_processor',
    options: {},
    idempotencyKey: `${runId}:1:1`,
    leaseMs: 30_000,
    ...over,
  };
}
