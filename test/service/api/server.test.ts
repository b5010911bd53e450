import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../helpers/engine.js';
import { callApi } from '../../helpers/service-process.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const API = '/api/v1/automation';

interface Service {
  child: ChildProcess;
  base: string;
  token: string;
  output: () => string;
  /** The exit code, or the signal npm passed on. */
  exited: Promise<number | string | null>;
}

/** Every `npm start` spawned, kept from the moment it is spawned: one that times out before printing its URL is still taken down. */
const spawned = new Set<{ child: ChildProcess; exited: Promise<unknown> }>();

/** `npm start`, as the README says, on a free port and the given data directory. */
async function npmStart(dataDir: string, env: Record<string, string> = {}): Promise<Service> {
  const child = spawn('npm', ['start'], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', RUNSTATE_DATA: dataDir, RUNSTATE_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so a failed test can take down npm and the service together.
    detached: true,
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  // 'close', not 'exit': npm may end before the service, which holds the same pipes until it is done.
  const exited = new Promise<number | string | null>((resolve) => child.on('close', (code, signal) => resolve(code ?? signal)));
  spawned.add({ child, exited });
  const url = await new Promise<URL>((resolve, reject) => {
    const onData = () => {
      const m = /Open (http:\/\/\S+)/.exec(out);
      if (m) resolve(new URL(m[1]!));
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((code) => reject(new Error(`npm start exited with ${code}:\n${out}`)));
  });
  return { child, base: url.origin, token: url.searchParams.get('token')!, output: () => out, exited };
}

const api = (svc: Service, path: string, init: { method?: string; body?: unknown } = {}) => callApi<{ data: Record<string, unknown> }>(svc, path, init);

/** Polls the run until `done` says so, for at most `ms`: the service runs on real time. */
async function waitForRun(svc: Service, runId: string, done: (run: Record<string, unknown>) => boolean, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const { body } = await api(svc, `/runs/${runId}`);
    if (done(body.data)) return body.data;
    if (Date.now() > deadline) throw new Error(`run ${runId} did not get there: ${JSON.stringify(body.data).slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('npm start (a real server over real HTTP)', () => {
  const dirs: ReturnType<typeof tempDir>[] = [];
  afterEach(async () => {
    for (const svc of [...spawned]) {
      spawned.delete(svc);
      try {
        process.kill(-svc.child.pid!, 'SIGKILL');
      } catch {
        // Already gone.
      }
      await svc.exited;
    }
    dirs.splice(0).forEach((d) => d.remove());
  });

  it('serves a run to completion, stops on SIGTERM, and comes back on the same data', async () => {
    const dir = tempDir('runstate-server-');
    dirs.push(dir);
    const svc = await npmStart(dir.path);
    // First start: a new admin token, kept (0600) in the data directory, printed with the URL.
    expect(svc.output()).toContain('A new admin token was created');
    expect(readFileSync(join(dir.path, 'admin-token'), 'utf8').trim()).toBe(svc.token);
    expect(statSync(join(dir.path, 'admin-token')).mode & 0o777).toBe(0o600);
    expect(new URL(svc.base).hostname).toBe('127.0.0.1');

    const health = await fetch(`${svc.base}/healthz`);
    expect(await health.json()).toMatchObject({ status: 'ok', store: 'sqlite' });
    const started = await api(svc, '/runs', {
      method: 'POST',
      body: { site_id: 'site-5', pipeline: 'face_processor', options: { delay_ms: 2, items_per_stage: 3 } },
    });
    expect(started.status).toBe(201);
    const runId = started.body.data.run_id as string;
    const done = await waitForRun(svc, runId, (r) => r.status === 'completed');
    expect((done.stages as { state: string; processed_items: number }[]).map((s) => [s.state, s.processed_items])).toEqual(
      Array(5).fill(['completed', 3]),
    );
    const trace = await fetch(`${svc.base}${API}/runs/${runId}/trace`, { headers: { authorization: `Token ${svc.token}` } });
    const lines = (await trace.text()).trimEnd().split('\n');
    expect(lines.map((l) => JSON.parse(l).seq)).toEqual(lines.map((_, i) => i + 1));

    // A second run, stopped mid-way by SIGTERM.
    const second = await api(svc, '/runs', {
      method: 'POST',
      body: { site_id: 'site-5', pipeline: 'content', options: { delay_ms: 30, items_per_stage: 4, concurrency: 1 } },
    });
    const secondId = second.body.data.run_id as string;
    await waitForRun(svc, secondId, (r) => ((r.stages as { processed_items: number }[])[0]?.processed_items ?? 0) >= 1);
    svc.child.kill('SIGTERM');
    // npm passes SIGTERM on and ends by it once the service has exited.
    expect([0, 'SIGTERM']).toContain(await svc.exited);
    expect(svc.output()).toContain('"msg":"shutting down"');
    expect(svc.output()).toContain('"msg":"stopped"');
    // Traces were flushed before exit.
    const traceFile = join(dir.path, 'logs', 'default', 'site-5', runId, 'run_trace.jsonl');
    expect(readFileSync(traceFile, 'utf8').trimEnd().split('\n')).toHaveLength(lines.length);

    const again = await npmStart(dir.path);
    expect(again.token).toBe(svc.token);
    expect(again.output()).not.toContain('A new admin token was created');
    expect((await api(again, `/runs/${runId}`)).body.data.status).toBe('completed');
    const resumed = await waitForRun(again, secondId, (r) => r.status === 'completed', 30_000);
    expect((resumed.stages as { processed_items: number; total_items: number }[]).every((s) => s.processed_items === s.total_items)).toBe(true);
    again.child.kill('SIGTERM');
    await again.exited;
    expect(again.output()).toContain('"msg":"stopped"');
  });

  it('refuses a bad setting at start with a message that names it', async () => {
    const dir = tempDir('runstate-server-');
    dirs.push(dir);
    const child = spawn('npm', ['start'], { cwd: ROOT, env: { ...process.env, PORT: 'eighty', RUNSTATE_DATA: dir.path }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).not.toBe(0);
    expect(out).toContain('Expected `PORT` to be a whole number, got "eighty".');
  });
});
