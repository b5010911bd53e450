import { spawn, spawnSync } from 'node:child_process';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../helpers/engine.js';
import { spawnService, type ServiceProcess } from '../../helpers/service-process.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const API = '/api/v1/automation';
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`, 'g');

/** `runstate serve`, on a free port and the given data directory. */
function serve(dataDir: string): Promise<ServiceProcess> {
  return spawnService(['bin/runstate.mjs', '--data', dataDir, 'serve', '--port', '0'], dataDir);
}

interface Ran {
  code: number | null;
  out: string;
  err: string;
}

describe('the runstate command, against a real service (`runstate serve`)', () => {
  const dir = tempDir('runstate-cli-');
  const dataDir = join(dir.path, 'data');
  let svc: ServiceProcess;

  /** `runstate …` as a user runs it; the token comes from the service's data directory. */
  function spawnRunstate(args: string[], env: Record<string, string> = {}): { result: Promise<Ran>; out: () => string } {
    const child = spawn(process.execPath, ['bin/runstate.mjs', ...args], {
      cwd: ROOT,
      env: { ...process.env, RUNSTATE_URL: svc.base, RUNSTATE_DATA: dataDir, RUNSTATE_TOKEN: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    return { result: new Promise((resolve) => child.on('close', (code) => resolve({ code, out, err }))), out: () => out };
  }

  function runstate(args: string[], env: Record<string, string> = {}): Promise<Ran> {
    return spawnRunstate(args, env).result;
  }

  async function status(runId: string): Promise<string> {
    const res = await fetch(`${svc.base}${API}/runs/${runId}`, { headers: { authorization: `Token ${svc.token}` } });
    return ((await res.json()) as { data: { status: string } }).data.status;
  }

  async function until(runId: string, want: string): Promise<void> {
    for (let i = 0; i < 400 && (await status(runId)) !== want; i++) await sleep(50);
    expect(await status(runId)).toBe(want);
  }

  beforeAll(async () => {
    svc = await serve(dataDir);
  }, 30_000);

  afterAll(async () => {
    await svc?.stop();
    dir.remove();
  });

  it('starts a run with typed options, prints its id, and lists it', async () => {
    const started = await runstate(['start', 'face_processor', '--site', 'site-cli', '--option', 'delay_ms=0', '--option', 'items_per_stage=[1,0,1,1,1]', '--option', 'seed=9']);
    expect(started.err).toBe('');
    expect(started.code).toBe(0);
    const runId = started.out.trim();
    expect(runId).toMatch(/^run_\d{8}_\d{6}_manual(_\d+)?$/);
    await until(runId, 'completed');

    const listed = await runstate(['runs', '--site', 'site-cli', '--status', 'completed']);
    expect(listed.code).toBe(0);
    expect(listed.out).toMatch(new RegExp(`^RUN +SITE +PIPELINE +STATUS`));
    expect(listed.out).toMatch(new RegExp(`${runId} +site-cli +face_processor +completed`));
    const json = JSON.parse((await runstate(['runs', '--site', 'site-cli', '--json'])).out) as { run_id: string; options: unknown }[];
    expect(json.find((r) => r.run_id === runId)?.options).toMatchObject({ delay_ms: 0, items_per_stage: [1, 0, 1, 1, 1], seed: 9 });
  });

  it('lists the pipelines with their options', async () => {
    const { code, out } = await runstate(['pipelines']);
    expect(code).toBe(0);
    expect(out).toContain('content  AI content automation');
    expect(out).toContain('  7. Review → Publish (review_to_publish)');
    expect(out).toContain('    review: boolean = false');
  });

  it('tails a run until it completes, every stage reaching 100%', async () => {
    const runId = (await runstate(['start', 'content', '--site', 'site-cli', '--option', 'delay_ms=60', '--option', 'items_per_stage=[3,2,2,2,2,0,2]'])).out.trim();
    const { code, out } = await runstate(['tail', runId]);
    expect(code).toBe(0);
    const names = ['Keywords → Clusters', 'Clusters → Ideas', 'Ideas → Tasks', 'Tasks → Content', 'Content → Image Prompts', 'Image Prompts → Images', 'Review → Publish'];
    names.forEach((name, i) => expect(out, name).toMatch(new RegExp(`^stage ${i + 1} ${name}: .*\\(100%\\)`, 'm')));
    expect(out).toMatch(/^stage 6 Image Prompts → Images: (empty|completed).* 0\/0 \(100%\)/m);
    expect(out.trim().split('\n').at(-1)).toBe(`run ${runId}: completed`);
  });

  it.skipIf(spawnSync('script', ['--version']).status !== 0)('tails on a terminal as a bar per stage, redrawn in place', async () => {
    const runId = (await runstate(['start', 'content', '--site', 'site-cli', '--option', 'delay_ms=40', '--option', 'items_per_stage=2'])).out.trim();
    // util-linux `script` gives the command a pseudo-terminal, as a person's shell would.
    const ran = await new Promise<string>((resolve) => {
      const child = spawn('script', ['-qec', `${process.execPath} bin/runstate.mjs tail ${runId}`, '/dev/null'], {
        cwd: ROOT,
        env: { ...process.env, RUNSTATE_URL: svc.base, RUNSTATE_DATA: dataDir, RUNSTATE_TOKEN: '', COLUMNS: '100' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.on('close', () => resolve(out));
    });
    expect(ran).toContain('\x1b[2K');
    // The last drawing: every stage's bar full, at 100%.
    const last = ran.slice(ran.lastIndexOf(`${runId} · content · site-cli ·`)).split(/\r?\n/).map((l) => l.replace(ANSI, ''));
    expect(last[0]).toBe(`${runId} · content · site-cli · completed`);
    for (let n = 1; n <= 7; n++) expect(last[n], `stage ${n}`).toMatch(new RegExp(`^ ${n} .* █+ 100% `));
  });

  it('pauses and resumes a run, with the reason recorded', async () => {
    const runId = (await runstate(['start', 'content', '--site', 'site-cli', '--option', 'delay_ms=1000'])).out.trim();
    await until(runId, 'running');
    const paused = await runstate(['pause', runId, '--reason', 'provider outage']);
    expect(paused.code).toBe(0);
    expect(paused.out).toMatch(new RegExp(`^${runId}: (running|paused)\\n$`));
    await until(runId, 'paused');
    expect((await runstate(['pause', runId])).out).toBe(`${runId}: paused (pause: nothing to do)\n`);
    const resumed = await runstate(['resume', runId]);
    expect(resumed.out).toBe(`${runId}: running\n`);
    const trace = await (await fetch(`${svc.base}${API}/runs/${runId}/trace`, { headers: { authorization: `Token ${svc.token}` } })).text();
    expect(trace).toContain('"command":"pause","by":"admin","reason":"provider outage"');
    expect((await runstate(['cancel', runId])).out).toBe(`${runId}: cancelled\n`);
  });

  it('approves and rejects runs that await approval, with the reason recorded', async () => {
    const options = ['--option', 'review=true', '--option', 'delay_ms=1', '--option', 'items_per_stage=[1,0,0,0,0,0,1]'];
    const approved = (await runstate(['start', 'content', '--site', 'site-cli', ...options])).out.trim();
    const rejected = (await runstate(['start', 'content', '--site', 'site-cli', ...options])).out.trim();
    await until(approved, 'awaiting_approval');
    await until(rejected, 'awaiting_approval');
    const ok = await runstate(['approve', approved, '--reason', 'copy checked']);
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toMatch(new RegExp(`^${approved}: (running|completed)\n$`));
    await until(approved, 'completed');
    const no = await runstate(['reject', rejected, '--reason', 'off brand']);
    expect(no.out).toBe(`${rejected}: cancelled\n`);
    for (const [runId, command, reason] of [[approved, 'approve', 'copy checked'], [rejected, 'reject', 'off brand']] as const) {
      const trace = await (await fetch(`${svc.base}${API}/runs/${runId}/trace`, { headers: { authorization: `Token ${svc.token}` } })).text();
      expect(trace).toContain(`"command":"${command}","by":"admin","reason":"${reason}"`);
    }
    // Approving a run that waits for nothing is the service's refusal.
    const again = await runstate(['approve', approved]);
    expect(again.code).toBe(1);
    expect(again.err).toBe('runstate: Cannot approve a run that is completed. (COMMAND_NOT_ALLOWED)\n');
  });

  it('retries the failed items of a completed run', async () => {
    const options = ['--option', 'delay_ms=0', '--option', 'items_per_stage=[6,0,0,0,0,0,0]', '--option', 'fail_rate=1', '--option', 'max_attempts=1'];
    const runId = (await runstate(['start', 'content', '--site', 'site-cli', ...options])).out.trim();
    await until(runId, 'completed');
    const retried = await runstate(['retry-failed', runId]);
    expect(retried.code, retried.err).toBe(0);
    expect(retried.out).toMatch(new RegExp(`^${runId}: (running|completed)\n$`));
    await until(runId, 'completed');
    const trace = await (await fetch(`${svc.base}${API}/runs/${runId}/trace`, { headers: { authorization: `Token ${svc.token}` } })).text();
    expect(trace).toContain('"command":"retry_failed","by":"admin"');
    // Every attempt fails (fail_rate 1): each item failed twice now, and may be retried again.
    const failed = trace.split('\n').filter((l) => l.includes('"event":"stage_item_failed"'));
    expect(failed).toHaveLength(12);
    const clean = (await runstate(['start', 'content', '--site', 'site-cli', '--option', 'delay_ms=0', '--option', 'items_per_stage=[1,0,0,0,0,0,0]'])).out.trim();
    await until(clean, 'completed');
    const none = await runstate(['retry-failed', clean]);
    expect(none.code).toBe(1);
    expect(none.err).toBe('runstate: The run has no failed items to retry. (COMMAND_NOT_ALLOWED)\n');
  });

  it('refuses bad arguments with a clear message and exit 2, calling nothing', async () => {
    for (const [args, message] of [
      [['start', 'content'], "error: required option '--site <site_id>' not specified"],
      [['start', 'content', '--site', 's', '--option', 'delay_ms'], 'runstate: Expected `--option` as key=value, got "delay_ms".'],
      [['runs', '--status', 'sleeping'], "error: option '--status <status>' argument 'sleeping' is invalid."],
      [['frobnicate'], "error: unknown command 'frobnicate'"],
      [['runs', '--url', 'ftp://x'], 'runstate: Expected an http:// or https:// URL, got "ftp://x".'],
    ] as const) {
      const ran = await runstate([...args]);
      expect(ran.code, args.join(' ')).toBe(2);
      expect(ran.err, args.join(' ')).toContain(message);
    }
    const noToken = await runstate(['runs'], { RUNSTATE_DATA: join(dir.path, 'nowhere') });
    expect(noToken.code).toBe(2);
    expect(noToken.err).toMatch(/^runstate: No token: pass `--token`, set RUNSTATE_TOKEN/);
  });

  it("exits 1 with the service's message when the service refuses", async () => {
    const wrong = await runstate(['runs', '--token', 'not-a-token-anyone-has']);
    expect(wrong.code).toBe(1);
    expect(wrong.err).toBe('runstate: A valid `Authorization: Token …` header is required. (UNAUTHORIZED)\n');
    const badOptions = await runstate(['start', 'content', '--site', 's', '--option', 'fail_rate=2']);
    expect(badOptions.code).toBe(1);
    expect(badOptions.err).toBe('runstate: Invalid options for content: `fail_rate` must be <= 1 (rule `maximum`). (INVALID_OPTIONS)\n');
    const unknown = await runstate(['resume', 'run_20200101_000000_manual']);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('(RUN_NOT_FOUND)');
  });

  it('tail picks up after a dropped connection with after_seq: every item once, in order', async () => {
    // A TCP relay the test can cut, between the CLI and the service.
    const sockets = new Set<Socket>();
    const upstream = new URL(svc.base);
    const relay: Server = createServer((client) => {
      const server = connect(Number(upstream.port), upstream.hostname);
      client.pipe(server).pipe(client);
      for (const s of [client, server]) {
        sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => sockets.delete(s));
      }
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    const relayUrl = `http://127.0.0.1:${(relay.address() as { port: number }).port}`;
    try {
      const runId = (await runstate(['start', 'face_processor', '--site', 'site-cli', '--option', 'delay_ms=100', '--option', 'items_per_stage=[8,8,0,0,0]', '--option', 'concurrency=1'])).out.trim();
      // Held until the tail follows it, however slowly the machine starts processes.
      const command = (name: string) => fetch(`${svc.base}${API}/runs/${runId}/${name}`, { method: 'POST', headers: { authorization: `Token ${svc.token}` } });
      await command('pause');
      const tailing = spawnRunstate(['tail', runId], { RUNSTATE_URL: relayUrl });
      for (let i = 0; i < 800 && !tailing.out().includes(`run ${runId} (`); i++) await sleep(25);
      await until(runId, 'paused');
      await command('resume');
      // Cut once the tail has shown a live item, then again after the next one.
      for (const shown of [1, 2]) {
        for (let i = 0; i < 400 && [...tailing.out().matchAll(/^stage \d \S+: \d\/8 \(/gm)].length < shown; i++) await sleep(25);
        for (const s of sockets) s.destroy();
      }
      const { code, out, err } = await tailing.result;
      expect(err).toMatch(/connection lost .*; reconnecting in \d+ ms, from seq \d+/);
      expect(code).toBe(0);
      for (const stage of [1, 2]) {
        const seen = [...out.matchAll(new RegExp(`^stage ${stage} \\S+: (\\d+)/8 \\(`, 'gm'))].map((m) => Number(m[1]));
        // After the snapshot's count, each count once, up to 8: no gap, no duplicate.
        const from = seen[0] ?? 9;
        expect(seen, out).toEqual(Array.from({ length: 9 - from }, (_, k) => from + k));
      }
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => relay.close(r));
    }
  });
});
