import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IngestClient } from '../../../service/ingest/client.js';
import { IngestSocket } from '../../../service/ingest/socket.js';
import { ADMIN, OTHER, SITE5, appOn, auth } from '../../helpers/app.js';
import { fieldOf, tempDir } from '../../helpers/engine.js';
import { gatedPipeline } from '../../helpers/gated.js';
import { wsClient, type WsClient } from '../../helpers/ws-client.js';

const API = '/api/v1/automation';
const FACE_STATES = ['cropping_faces', 'verifying_portraits', 'verifying_dimensions', 'detecting_faces', 'running_inpainting'];

/** The face_processor's own sequence: its state changes, with an item processed in each state. */
function faceProcessorEvents(runId: string, items = 3) {
  const events: Record<string, unknown>[] = [];
  let from: string | null = null;
  for (const to of FACE_STATES) {
    events.push({ run_id: runId, machine_name: 'face_processor', event_type: 'state_change', payload: { from_state: from, to_state: to, event_trigger: `${from ?? 'start'}_done`, timestamp: 1761339197.342 } });
    events.push({ run_id: runId, machine_name: 'face_processor', event_type: 'activity_log', payload: { message: `Entering ${to}` } });
    for (let i = 1; i <= items; i++) {
      events.push({ run_id: runId, machine_name: 'face_processor', event_type: 'item_processed', payload: { processed: i, total: items, item: { id: `img-${i}`, title: `portrait ${i}.jpg` } } });
    }
    from = to;
  }
  events.push({ run_id: runId, machine_name: 'run', event_type: 'state_change', payload: { from_state: 'running', to_state: 'completed' } });
  return events;
}

/** A raw connection to the socket: write lines, read reply lines in order. */
async function rawSocket(path: string) {
  const socket: Socket = connect(path);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const lines: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: socket }).on('line', (l) => {
    lines.push(JSON.parse(l) as Record<string, unknown>);
    waiters.splice(0).forEach((w) => w());
  });
  return {
    socket,
    lines,
    write: (...msgs: unknown[]) => socket.write(msgs.map((m) => `${typeof m === 'string' ? m : JSON.stringify(m)}\n`).join('')),
    async until(n: number) {
      while (lines.length < n) await new Promise<void>((r) => waiters.push(r));
      return lines;
    },
  };
}

describe('ingest: engines outside the service', () => {
  let dir: ReturnType<typeof tempDir>;
  let h: Awaited<ReturnType<typeof appOn>>;
  let door: IngestSocket;
  let socketPath: string;
  let wsUrl: string;
  const closers: (() => unknown)[] = [];

  beforeEach(async () => {
    dir = tempDir('rs-ingest-');
    h = await appOn(dir.path, [gatedPipeline('gated', [1]).pipeline], { pingIntervalMs: 250, pongTimeoutMs: 2000 });
    await h.app.listen({ port: 0, host: '127.0.0.1' });
    wsUrl = `ws://127.0.0.1:${(h.app.server.address() as { port: number }).port}/ws`;
    socketPath = join(dir.path, 'ingest.sock');
    door = new IngestSocket({ path: socketPath, engine: h.engine, tokens: h.tokens, logger: pino({ level: 'silent' }) });
    await door.start();
  });
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
    await door.stop();
    // The service's own ordered stop: traces flushed and the store closed before the files go.
    await h.stop();
    dir.remove();
  });

  async function externalRun(site = 'site-5', token = SITE5) {
    const res = await h.app.inject({ method: 'POST', url: `${API}/runs`, headers: auth(token), payload: { site_id: site, pipeline: 'external', machine_name: 'face_processor' } });
    expect(res.statusCode, res.body).toBe(201);
    return res.json().data.run_id as string;
  }

  async function watcher(runId: string): Promise<WsClient> {
    const c = await wsClient(`${wsUrl}?token=${ADMIN}`);
    closers.push(() => c.close());
    c.send({ type: 'subscribe', topic: `run:${runId}`, after_seq: 0 });
    return c;
  }

  it('takes a face_processor run from the socket to a WebSocket subscriber, in order, with its seqs', async () => {
    const runId = await externalRun();
    const ws = await watcher(runId);
    const client = new IngestClient({ socketPath });
    closers.push(() => client.close());
    const sent = faceProcessorEvents(runId);
    const seqs = await Promise.all(sent.map((e) => client.send(e as never)));
    expect(seqs).toEqual(sent.map((_, i) => i + 2)); // seq 1 is run_started
    await ws.until((m) => m.at(-1)?.seq === sent.length + 1);
    const events = ws.events().map((m) => m.event!);
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: sent.length + 1 }, (_, i) => i + 1));
    expect(events[0]).toMatchObject({ event: 'run_started', machine_name: 'face_processor' });
    expect(events[1]).toMatchObject({
      event: 'state_change',
      machine_name: 'face_processor',
      event_type: 'state_change',
      payload: { from_state: null, to_state: 'cropping_faces', event_trigger: 'start_done', timestamp: 1761339197.342 },
    });
    expect(events.filter((e) => e.event === 'stage_item_processed').map((e) => e.stage)).toEqual(FACE_STATES.flatMap((_, i) => [i + 1, i + 1, i + 1]));

    const run = (await h.app.inject({ url: `${API}/runs/${runId}`, headers: auth(SITE5) })).json().data;
    expect(run).toMatchObject({ status: 'completed', state: 'running_inpainting', machine_name: 'face_processor', pipeline: 'external' });
    expect(run.stages.map((s: { name: string; state: string; processed_items: number }) => [s.name, s.state, s.processed_items])).toEqual(
      FACE_STATES.map((s) => [s, 'completed', 3]),
    );
    const card = (await h.app.inject({ url: `${API}/current_processing/?run_id=${runId}`, headers: auth(SITE5) })).json().data;
    expect(card).toMatchObject({ stage_number: 5, stage_name: 'running_inpainting', total_items: 3, processed_items: 3, percentage: 100, status: 'completed' });
    // Finished: a late event is refused, a close is accepted.
    await expect(client.send({ run_id: runId, machine_name: 'face_processor', event_type: 'activity_log', payload: { message: 'late' } })).rejects.toMatchObject({ code: 'COMMAND_NOT_ALLOWED' });
    expect((await h.app.inject({ method: 'POST', url: `${API}/runs/${runId}/close`, headers: auth(SITE5) })).json().accepted).toBe(true);
  });

  it('appends 10,000 events from 4 engines at once, acked in each connection’s order, with a stalled watcher attached', async () => {
    const runs = [await externalRun(), await externalRun()];
    const stalled = await watcher(runs[0]!);
    await stalled.until((m) => m.length >= 1);
    stalled.stall();
    const healthy = await watcher(runs[1]!);
    const engines = [0, 1, 2, 3].map(() => {
      const c = new IngestClient({ socketPath });
      closers.push(() => c.close());
      return c;
    });
    const perEngine = 2500;
    const acks = await Promise.all(
      engines.map((c, k) =>
        Promise.all(
          Array.from({ length: perEngine }, (_, i) =>
            c.send({ run_id: runs[k % 2]!, event_id: `e${k}-${i}`, machine_name: 'face_processor', event_type: 'activity_log', payload: { message: `engine ${k} event ${i}` } }),
          ),
        ),
      ),
    );
    for (const seqs of acks) expect(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!)).toBe(true);
    for (const runId of runs) {
      const log = await h.store.readEvents(runId, 0, 100_000);
      expect(log.map((e) => e.seq)).toEqual(log.map((_, i) => i + 1));
      expect(log.length).toBe(1 + 2 * perEngine);
    }
    const last = (await h.store.getRun(runs[1]!))!.lastSeq;
    await healthy.until((m) => m.at(-1)?.seq === last);
    expect(healthy.events().map((m) => m.seq)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
  });

  it('answers bad lines with error lines and keeps the connection working', async () => {
    const runId = await externalRun();
    const internal = (await h.engine.startRun({ accountId: 'acme', siteId: 'site-5', pipeline: 'gated' })).run_id;
    const otherSite = await externalRun('site-9', OTHER);
    const good = (msg: string) => ({ run_id: runId, machine_name: 'face_processor', event_type: 'activity_log', payload: { message: msg } });
    const s = await rawSocket(socketPath);
    closers.push(() => s.socket.destroy());
    s.write(
      '{not json',
      good('first'),
      { run_id: 'run_20200101_000000_manual', machine_name: 'm', event_type: 'activity_log', payload: { message: 'x' } },
      { run_id: runId, machine_name: 'm', event_type: 'teleport', payload: {} },
      { run_id: runId, machine_name: 'm', event_type: 'item_processed', payload: { processed: 5, total: 2, item: { id: 1, title: 't' } } },
      { run_id: runId, event_type: 'activity_log', payload: { message: 'no machine' } },
      { run_id: internal, machine_name: 'm', event_type: 'activity_log', payload: { message: 'x' } },
      good('x'.repeat(70 * 1024)),
      { hello: { token: SITE5 } },
      { run_id: otherSite, machine_name: 'm', event_type: 'activity_log', payload: { message: 'x' } },
      { hello: { token: 'nope' } },
      good('last'),
    );
    const lines = await s.until(12);
    expect(lines.map((l) => (l.ok ? 'ok' : (l.error as { code: string }).code))).toEqual([
      'BAD_REQUEST',
      'ok',
      'RUN_NOT_FOUND',
      'BAD_REQUEST',
      'BAD_REQUEST',
      'BAD_REQUEST',
      'COMMAND_NOT_ALLOWED',
      'PAYLOAD_TOO_LARGE',
      'ok',
      'FORBIDDEN',
      'UNAUTHORIZED',
      'ok',
    ]);
    expect(lines[1]).toEqual({ ok: true, seq: 2 });
    expect(lines[11]).toEqual({ ok: true, seq: 3 });
    for (const l of lines.filter((x) => !x.ok)) expect(l.error).toEqual({ code: expect.any(String), message: expect.any(String) });
    expect((await h.store.readEvents(runId, 0)).map((e) => (e.event === 'activity_log' ? e.message : e.event))).toEqual(['run_started', 'first', 'last']);
  });

  it('acknowledges a resent event with its first seq and never appends it twice', async () => {
    const runId = await externalRun();
    const events = faceProcessorEvents(runId, 2).map((e, i) => ({ ...e, event_id: `fp-${i}` }));
    const first = await rawSocket(socketPath);
    first.write(...events.slice(0, 10));
    const acked = (await first.until(10)).map((l) => l.seq);
    first.socket.destroy();
    // A new connection sends everything again, as an engine does after a drop.
    const second = await rawSocket(socketPath);
    closers.push(() => second.socket.destroy());
    second.write(...events, events[3]);
    const again = await second.until(events.length + 1);
    expect(again.slice(0, 10).map((l) => l.seq)).toEqual(acked);
    expect(again.every((l) => l.ok)).toBe(true);
    expect(again.at(-1)!.seq).toBe(again[3]!.seq);
    const log = await h.store.readEvents(runId, 0);
    expect(log).toHaveLength(events.length + 1);
    expect(log.map((e) => e.seq)).toEqual(log.map((_, i) => i + 1));
    expect(new Set(log.slice(1).map((e) => fieldOf(e, 'event_id'))).size).toBe(events.length);
  });

  it('writes commands for a connection’s runs back to it', async () => {
    const runId = await externalRun();
    const commands: { command: string; run_id: string }[] = [];
    const client = new IngestClient({ socketPath, token: SITE5, onCommand: (c) => commands.push(c) });
    closers.push(() => client.close());
    await client.send({ run_id: runId, machine_name: 'face_processor', event_type: 'state_change', payload: { to_state: 'cropping_faces' } });
    for (const cmd of ['pause', 'resume', 'cancel']) {
      const res = await h.app.inject({ method: 'POST', url: `${API}/runs/${runId}/${cmd}`, headers: auth(SITE5), payload: { reason: 'test' } });
      expect(res.json().accepted).toBe(true);
      // A pause under way is resumed, not paused again, as with the service's own runs.
      if (cmd === 'pause') expect(res.json().data.allowed_commands).toEqual(['resume', 'cancel']);
    }
    await client.send({ run_id: runId, machine_name: 'run', event_type: 'state_change', payload: { to_state: 'cancelled' } });
    expect(commands).toEqual(['pause', 'resume', 'cancel'].map((command) => ({ command, run_id: runId })));
    const log = await h.store.readEvents(runId, 0);
    expect(log.filter((e) => e.event === 'command').map((e) => [e.command, e.by])).toEqual([['pause', 'ops-site-5'], ['resume', 'ops-site-5'], ['cancel', 'ops-site-5']]);
    expect((await h.engine.getRun(runId))!.status).toBe('cancelled');
    const refused = await h.app.inject({ method: 'POST', url: `${API}/runs/${runId}/pause`, headers: auth(SITE5) });
    expect(refused.statusCode).toBe(409);
    // The same rules as the service's own runs: a cancelled run only closes.
    expect((await h.engine.getRun(runId))!.allowed_commands).toEqual(['close']);
  });

  it('keeps its socket file private, and removes it at stop and a stale one at start', async () => {
    expect(statSync(socketPath).mode & 0o777).toBe(0o600);
    expect(statSync(socketPath).isSocket()).toBe(true);
    await door.stop();
    expect(existsSync(socketPath)).toBe(false);
    // A socket file left by a crash is replaced; a regular file is not ours to delete.
    const { createServer } = await import('node:net');
    const stale = createServer();
    await new Promise<void>((r) => stale.listen(socketPath, r));
    (stale as unknown as { _handle: { close(): void } })._handle.close();
    door = new IngestSocket({ path: socketPath, engine: h.engine, tokens: h.tokens, logger: pino({ level: 'silent' }) });
    await door.start();
    expect(statSync(socketPath).mode & 0o777).toBe(0o600);
    await door.stop();
    writeFileSync(socketPath, 'precious');
    const refused = new IngestSocket({ path: socketPath, engine: h.engine, tokens: h.tokens, logger: pino({ level: 'silent' }) });
    await expect(refused.start()).rejects.toThrow(/exists and is not a socket/);
    door = new IngestSocket({ path: join(dir.path, 'ingest2.sock'), engine: h.engine, tokens: h.tokens, logger: pino({ level: 'silent' }) });
    await door.start();
  });

  it('takes the same events over HTTP, token-scoped, with the same answers', async () => {
    const runId = await externalRun();
    const url = `${API}/runs/${runId}/events`;
    const batch = [
      { event_id: 'a', machine_name: 'face_processor', event_type: 'state_change', payload: { to_state: 'cropping_faces' } },
      { event_id: 'b', machine_name: 'face_processor', event_type: 'nope', payload: {} },
      { run_id: 'run_20200101_000000_manual', machine_name: 'face_processor', event_type: 'activity_log', payload: { message: 'x' } },
      { event_id: 'c', run_id: runId, machine_name: 'face_processor', event_type: 'activity_log', payload: { message: 'hi' } },
    ];
    const res = await h.app.inject({ method: 'POST', url, headers: auth(SITE5), payload: batch });
    expect(res.statusCode).toBe(200);
    expect(res.json().data.map((r: { ok: boolean; seq?: number; error?: { code: string } }) => (r.ok ? r.seq : r.error!.code))).toEqual([2, 'BAD_REQUEST', 'BAD_REQUEST', 3]);
    const again = await h.app.inject({ method: 'POST', url, headers: auth(SITE5), payload: [batch[0], batch[3]] });
    expect(again.json().data).toEqual([{ ok: true, seq: 2 }, { ok: true, seq: 3 }]);
    expect((await h.store.getRun(runId))!.lastSeq).toBe(3);
    expect((await h.app.inject({ method: 'POST', url, headers: auth(OTHER), payload: batch })).statusCode).toBe(403);
    expect((await h.app.inject({ method: 'POST', url, payload: batch })).statusCode).toBe(401);
    expect((await h.app.inject({ method: 'POST', url: `${API}/runs/run_20200101_000000_manual/events`, headers: auth(SITE5), payload: batch })).statusCode).toBe(404);
    expect((await h.app.inject({ method: 'POST', url, headers: auth(SITE5), payload: [] })).statusCode).toBe(400);
    expect((await h.app.inject({ method: 'POST', url, headers: auth(SITE5), payload: { not: 'an array' } })).statusCode).toBe(400);
    const internal = (await h.engine.startRun({ accountId: 'acme', siteId: 'site-5', pipeline: 'gated' })).run_id;
    expect((await h.app.inject({ method: 'POST', url: `${API}/runs/${internal}/events`, headers: auth(SITE5), payload: batch })).statusCode).toBe(409);
    expect((await h.store.getRun(runId))!.lastSeq).toBe(3);
  });

  it('runs the Python example of docs/ingest.md as written', async () => {
    const runId = await externalRun();
    const doc = readFileSync(join(import.meta.dirname, '../../../docs/ingest.md'), 'utf8');
    const code = /```python\n([\s\S]*?)```/.exec(doc)![1]!
      .replace('/run/runstate/ingest.sock', socketPath)
      .replace('run_20251204_190332_manual', runId);
    const out = await new Promise<string>((resolve, reject) => {
      const py = spawn('python3', ['-c', code], { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      py.stdout.on('data', (d: Buffer) => (text += d.toString()));
      py.stderr.on('data', (d: Buffer) => (text += d.toString()));
      py.on('exit', (c) => (c === 0 ? resolve(text) : reject(new Error(`python3 exited with ${c}: ${text}`))));
    });
    expect(out).toBe('');
    const log = await h.store.readEvents(runId, 0);
    expect(log[1]).toMatchObject({ event: 'state_change', machine_name: 'face_processor', payload: { from_state: 'verifying_dimensions', to_state: 'detecting_faces' } });
  });

  it('refuses an external run without a machine name, and a machine name on an internal run', async () => {
    const noName = await h.app.inject({ method: 'POST', url: `${API}/runs`, headers: auth(SITE5), payload: { site_id: 'site-5', pipeline: 'external' } });
    expect(noName.json().error.code).toBe('BAD_REQUEST');
    const internal = await h.app.inject({ method: 'POST', url: `${API}/runs`, headers: auth(SITE5), payload: { site_id: 'site-5', pipeline: 'gated', machine_name: 'x' } });
    expect(internal.json().error.code).toBe('BAD_REQUEST');
    expect(await h.store.listRuns({})).toEqual([]);
  });
});
