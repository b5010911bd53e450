import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { PipelineDefinition } from '../../../service/pipelines/types.js';
import { ADMIN, OTHER, SITE5, appOn, auth } from '../../helpers/app.js';
import { tempDir } from '../../helpers/engine.js';
import { gatedPipeline } from '../../helpers/gated.js';
import { wsClient, type Msg, type WsClient } from '../../helpers/ws-client.js';

/** A run that emits events steadily: items of about a millisecond, eight at a time. */
function pump(items: number): PipelineDefinition<Record<string, never>> {
  return {
    name: 'pump',
    parseOptions: () => ({}),
    concurrencyOf: () => 8,
    stages: [1, 2].map((n) => ({
      key: `s${n}`,
      name: `Stage ${n}`,
      loadItems: async () => Array.from({ length: items }, (_, i) => ({ id: i + 1, title: `item ${i + 1} ${'·'.repeat(40)}` })),
      processItem: async () => {
        await sleep(1);
        return { cost: 0.1 };
      },
    })),
  };
}

function seqs(msgs: Msg[]): number[] {
  return msgs.map((m) => m.seq!);
}

function expectContiguous(list: number[], from: number, to: number) {
  expect(list.length).toBe(to - from + 1);
  expect(list[0]).toBe(from);
  expect(list.at(-1)).toBe(to);
  expect(list.every((s, i) => i === 0 || s === list[i - 1]! + 1)).toBe(true);
}

describe('WebSocket hub (real sockets)', () => {
  let dir: ReturnType<typeof tempDir>;
  let h: Awaited<ReturnType<typeof appOn>>;
  let url: string;
  const clients: WsClient[] = [];

  async function setup(items = 1500, hub = {}, more: PipelineDefinition<Record<string, never>>[] = []) {
    // Short enough to keep tests quick, long enough that a busy test process never misses a pong.
    h = await appOn(dir.path, [pump(items), ...more], { pingIntervalMs: 250, pongTimeoutMs: 2000, sendTimeoutMs: 1500, queueBytes: 64 * 1024, ...hub });
    await h.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = h.app.server.address() as { port: number };
    url = `ws://127.0.0.1:${port}/ws`;
  }

  async function client(token = SITE5, headers: Record<string, string> = {}) {
    const c = await wsClient(`${url}?token=${token}`, headers);
    clients.push(c);
    return c;
  }

  async function startRun(site = 'site-5', pipeline = 'pump') {
    return (await h.engine.startRun({ accountId: 'acme', siteId: site, pipeline })).run_id;
  }

  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(async () => {
    clients.splice(0).forEach((c) => c.close());
    // The service's own ordered stop: traces flushed and the store closed before the files go.
    await h.stop();
    dir.remove();
  });

  it('keeps every healthy client in order while one stops reading, evicts that one, and its reconnect loses nothing', async () => {
    await setup(2000);
    const healthy = [await client(), await client()];
    const stalled = await client();
    const runId = await startRun();
    const topic = `run:${runId}`;
    for (const c of [...healthy, stalled]) c.send({ type: 'subscribe', topic, after_seq: 0 });
    await stalled.until((m) => m.length >= 20);
    stalled.stall();
    const lastSeen = Math.max(...seqs(stalled.events(topic)));

    await h.engine.whenRetired(runId);
    const last = (await h.store.getRun(runId))!.lastSeq;
    await Promise.all(healthy.map((c) => c.until((m) => m.at(-1)?.seq === last)));
    for (const c of healthy) {
      expectContiguous(seqs(c.events(topic)), 1, last);
      // Heartbeats kept reaching them: pinged every 250 ms for the whole run.
      expect(c.pings).toBeGreaterThan(0);
    }
    // The stalled one is evicted (a missed pong, a send that never drained, or its bound),
    // and only it.
    await vi.waitFor(() => expect(h.hub.clients).toBe(2), { timeout: 10_000, interval: 50 });
    const metrics = await h.metrics.registry.getSingleMetricAsString('runstate_ws_evictions_total');
    const evicted = [...metrics.matchAll(/reason="(\w+)"} (\d+)/g)].reduce((n, m) => n + Number(m[2]), 0);
    expect(evicted).toBe(1);
    expect(await h.metrics.registry.getSingleMetricAsString('runstate_ws_queued_bytes')).toMatch(/runstate_ws_queued_bytes \d+/);
    // What the server held for it stayed within its bound (plus the frame that crossed it).
    expect(h.hub.peakPendingBytes).toBeLessThanOrEqual(64 * 1024 + 4096);
    stalled.unstall();
    const { code } = await stalled.closed;
    expect([4008, 1006]).toContain(code);

    // Reconnect from the last seq it saw: exactly the events it missed.
    const back = await client();
    back.send({ type: 'subscribe', topic, after_seq: lastSeen });
    await back.until((m) => m.at(-1)?.seq === last);
    expectContiguous(seqs(back.events(topic)), lastSeen + 1, last);
    const log = await h.store.readEvents(runId, lastSeen);
    expect(back.events(topic).map((m) => m.event)).toEqual(log);
  });

  it('evicts a client that stops reading when no events flow at all', async () => {
    await setup(5);
    const runId = await startRun();
    await h.engine.whenRetired(runId);
    const quiet = await client();
    const fine = await client();
    quiet.send({ type: 'subscribe', topic: `run:${runId}` });
    await quiet.until((m) => m.length === 1);
    quiet.stall();
    // Nothing is sent but pings: only the missed pongs can tell, and they do.
    await vi.waitFor(() => expect(h.hub.clients).toBe(1), { timeout: 10_000, interval: 50 });
    expect(await h.metrics.registry.getSingleMetricAsString('runstate_ws_evictions_total')).toContain('reason="pong_missed"} 1');
    expect(fine.pings).toBeGreaterThan(0);
  });

  it('does not blame healthy clients for its own stall: a busy event loop evicts nobody', async () => {
    await setup(5);
    const cs = [await client(), await client(), await client()];
    await Promise.all(cs.map((c) => new Promise<void>((r) => c.ws.once('ping', () => r()))));
    // This process (server and clients alike) does not read the network for longer than the
    // pong timeout: pongs arrive but sit unread.
    const until = Date.now() + 2600;
    while (Date.now() < until) {
      // busy
    }
    // Two more pings each: the heartbeat has run well after the stall.
    for (let round = 0; round < 2; round++) await Promise.all(cs.map((c) => new Promise<void>((r) => c.ws.once('ping', () => r()))));
    expect(h.hub.clients).toBe(3);
    expect(await h.metrics.registry.getSingleMetricAsString('runstate_ws_evictions_total')).not.toMatch(/} [1-9]/);
  });

  it('hands a subscriber over from snapshot or replay to live with no gap and no duplicate, under load', async () => {
    await setup(1500);
    const runId = await startRun();
    const topic = `run:${runId}`;
    const late: { c: WsClient; after?: number }[] = [];
    // Subscribe at several points of the run, while events stream.
    const thresholds = [50, 400, 900, 1600, 2400];
    const joined = new Promise<void>((resolve) => {
      const off = h.engine.onEvents((_, events) => {
        const seq = events.at(-1)!.seq;
        while (thresholds.length && seq >= thresholds[0]!) {
          const at = thresholds.shift()!;
          void client().then((c) => {
            const after = late.length % 2 === 0 ? undefined : at - 30;
            late.push({ c, after });
            c.send({ type: 'subscribe', topic, ...(after === undefined ? {} : { after_seq: after }) });
          });
        }
        if (thresholds.length === 0) {
          off();
          resolve();
        }
      });
    });
    await joined;
    await h.engine.whenRetired(runId);
    const last = (await h.store.getRun(runId))!.lastSeq;
    await vi.waitFor(() => expect(late).toHaveLength(5));
    for (const { c, after } of late) {
      await c.until((m) => m.at(-1)?.seq === last);
      if (after === undefined) {
        const snap = c.messages[0]!;
        expect(snap).toMatchObject({ type: 'snapshot', topic });
        expect((snap.run as { last_seq: number }).last_seq).toBe(snap.seq);
        expect(snap.run).toHaveProperty('processing');
        expectContiguous(seqs(c.events(topic)), snap.seq! + 1, last);
      } else {
        expectContiguous(seqs(c.events(topic)), after + 1, last);
      }
    }
  });

  it('serves many clients on many runs, each exactly its run', async () => {
    await setup(200);
    const runs = [await startRun(), await startRun(), await startRun()];
    const byRun = await Promise.all(runs.map(async (runId) => {
      const cs = await Promise.all([client(), client(), client(ADMIN)]);
      for (const c of cs) c.send({ type: 'subscribe', topic: `run:${runId}`, after_seq: 0 });
      return { runId, cs };
    }));
    for (const { runId, cs } of byRun) {
      await h.engine.whenRetired(runId);
      const last = (await h.store.getRun(runId))!.lastSeq;
      for (const c of cs) {
        await c.until((m) => m.at(-1)?.seq === last);
        expect(c.messages.every((m) => m.topic === `run:${runId}`)).toBe(true);
        expectContiguous(seqs(c.events()), 1, last);
      }
    }
  });

  it('stops a topic on unsubscribe, and sends a site its runs and their changes', async () => {
    await setup(300);
    const c = await client();
    const runId = await startRun();
    c.send({ type: 'subscribe', topic: `run:${runId}` });
    await c.until((m) => m.filter((x) => x.type === 'event').length >= 5);
    c.send({ type: 'unsubscribe', topic: `run:${runId}` });
    c.send({ type: 'subscribe', topic: 'site:site-5' });
    await c.until((m) => m.some((x) => x.type === 'snapshot' && x.topic === 'site:site-5'));
    const marker = c.messages.findIndex((x) => x.topic === 'site:site-5');
    expect((c.messages[marker]!.runs as { run_id: string }[]).map((r) => r.run_id)).toEqual([runId]);
    await h.engine.whenRetired(runId);
    await c.until((m) => m.some((x) => x.type === 'run' && (x.run as { status: string }).status === 'completed'));
    expect(c.messages.slice(marker).filter((x) => x.topic === `run:${runId}`)).toEqual([]);
    const update = c.messages.findLast((x) => x.type === 'run')!;
    expect(update).toMatchObject({ topic: 'site:site-5', run: { run_id: runId, status: 'completed' } });
  });

  it('answers bad frames with an error and stays usable; closes an oversized frame with 1009', async () => {
    await setup(10, { maxPayload: 1024 });
    const runId = await startRun();
    const c = await client();
    const bad: [unknown, string][] = [
      ['{nope', 'BAD_REQUEST'],
      ['[1,2]', 'BAD_REQUEST'],
      [{ type: 'dance' }, 'BAD_REQUEST'],
      [{ type: 'subscribe', topic: 'user:1' }, 'INVALID_TOPIC'],
      [{ type: 'subscribe', topic: `run:${runId}`, after_seq: -1 }, 'BAD_REQUEST'],
      [{ type: 'subscribe', topic: 'run:../../etc' }, 'INVALID_RUN_ID'],
      [{ type: 'subscribe', topic: 'run:run_20200101_000000_manual' }, 'RUN_NOT_FOUND'],
      [{ type: 'subscribe', topic: 'site:site-9' }, 'FORBIDDEN'],
    ];
    for (const [msg] of bad) c.send(msg);
    c.ws.send(Buffer.from('binary'), { binary: true });
    await c.until((m) => m.filter((x) => x.type === 'error').length === bad.length + 1);
    expect(c.messages.filter((x) => x.type === 'error').map((x) => x.code).sort()).toEqual([...bad.map(([, code]) => code), 'BAD_REQUEST'].sort());
    for (const m of c.messages) expect(m).toEqual({ type: 'error', code: expect.any(String), message: expect.any(String) });
    c.send({ type: 'subscribe', topic: `run:${runId}` });
    await c.until((m) => m.some((x) => x.type === 'snapshot'));

    const big = await client();
    big.send({ type: 'subscribe', topic: 'x'.repeat(2000) });
    expect((await big.closed).code).toBe(1009);
  });

  it('refuses a bad token, a foreign origin and a wrong path at the upgrade; keeps a token to its sites', async () => {
    await setup(10);
    const runId = await startRun();
    await expect(wsClient(url)).rejects.toMatchObject({ status: 401 });
    await expect(wsClient(`${url}?token=nope`)).rejects.toMatchObject({ status: 401 });
    await expect(wsClient(url, { authorization: 'Token nope' })).rejects.toMatchObject({ status: 401 });
    await expect(wsClient(`${url}?token=${SITE5}`, { origin: 'https://evil.example' })).rejects.toMatchObject({ status: 403 });
    await expect(wsClient(`${url.replace('/ws', '/wsx')}?token=${SITE5}`)).rejects.toMatchObject({ status: 404 });
    const sameOrigin = await client(SITE5, { origin: url.replace('ws://', 'http://').replace('/ws', '') });
    sameOrigin.send({ type: 'subscribe', topic: `run:${runId}` });
    await sameOrigin.until((m) => m[0]?.type === 'snapshot');
    const viaHeader = await wsClient(url, { authorization: `Token ${SITE5}` });
    clients.push(viaHeader);
    const other = await client(OTHER);
    other.send({ type: 'subscribe', topic: `run:${runId}` });
    other.send({ type: 'subscribe', topic: 'site:site-5' });
    await other.until((m) => m.length === 2);
    expect(other.messages.map((m) => m.code)).toEqual(['FORBIDDEN', 'FORBIDDEN']);
  });

  it('rate-limits client messages and says so', async () => {
    await setup(10, { messagesPerSecond: 5 });
    const c = await client();
    // A burst of 30 against a bucket of 10 (twice the rate): about 20 are refused, each said so.
    for (let i = 0; i < 30; i++) c.send({ type: 'unsubscribe', topic: 'site:site-5' });
    await c.until((m) => m.length >= 19);
    expect(c.messages.length).toBeLessThanOrEqual(20);
    expect(c.messages.every((x) => x.type === 'error' && x.code === 'RATE_LIMITED')).toBe(true);
  });

  it('says reset, with a fresh snapshot, when after_seq is past the run’s log', async () => {
    await setup(5);
    const runId = await startRun();
    await h.engine.whenRetired(runId);
    const last = (await h.store.getRun(runId))!.lastSeq;
    const c = await client();
    c.send({ type: 'subscribe', topic: `run:${runId}`, after_seq: last + 100 });
    await c.until((m) => m.length === 1);
    expect(c.messages[0]).toMatchObject({ type: 'reset', topic: `run:${runId}`, seq: last, run: { run_id: runId, status: 'completed' } });
  });

  describe('view mode', () => {
    const views = (c: WsClient) => c.messages.flatMap((m, i) => (m.type === 'view' ? [{ ...m, at: c.receivedAt[i]! }] : []));

    it('sends views at most max_hz over a fast run, one more per new state; the last equals GET /runs/:id and current_processing', async () => {
      await setup(1500, {}, [steady(700)]);
      const c = await client();
      const runId = await startRun('site-5', 'steady');
      const topic = `run:${runId}`;
      c.send({ type: 'subscribe', topic, mode: 'view', max_hz: 5 });
      await c.until((m) => m.some((x) => x.type === 'view'));
      const started = performance.now();
      await h.engine.whenRetired(runId);
      const last = (await h.store.getRun(runId))!.lastSeq;
      await c.until((m) => m.some((x) => x.type === 'view' && x.seq === last));
      const seconds = (performance.now() - started) / 1000;
      const log = await h.store.readEvents(runId, 0);
      const stateChanges = log.filter((e) => e.event === 'state_change').length;
      const got = views(c);
      expect(c.messages.every((m) => m.type === 'view' && m.topic === topic)).toBe(true);
      // Many events, few views: a view is the newest, not one per event.
      expect(log.length).toBeGreaterThan(10 * got.length);
      // Two views closer than half the 200 ms interval: only the ones a new state sends at once.
      const quick = got.filter((v, i) => i > 0 && v.at - got[i - 1]!.at < 100).length;
      expect(quick).toBeLessThanOrEqual(stateChanges);
      expect(got.length).toBeLessThanOrEqual(Math.ceil(seconds * 5) + stateChanges + 1);
      expect(got.map((v) => v.seq)).toEqual([...got.map((v) => v.seq!)].sort((a, b) => a - b));

      const final = got.at(-1)!;
      expect(final).toEqual({ type: 'view', topic, seq: last, run: expect.any(Object), processing: expect.any(Object), at: final.at });
      const run = await h.app.inject({ method: 'GET', url: `/api/v1/automation/runs/${runId}`, headers: auth(SITE5) });
      expect(final.run).toEqual(run.json<{ data: unknown }>().data);
      expect(final.run).toMatchObject({ status: 'completed', last_seq: last });
      const card = await h.app.inject({ method: 'GET', url: `/api/v1/automation/current_processing/?run_id=${runId}`, headers: auth(SITE5) });
      expect(final.processing).toEqual(card.json<{ data: unknown }>().data);
    });

    it('sends a view at once when the run reaches a new state, however low max_hz is', async () => {
      const gate = gatedPipeline('gated', [3], { concurrency: 1 });
      await setup(5, {}, [gate.pipeline as PipelineDefinition<Record<string, never>>]);
      const runId = await startRun('site-5', 'gated');
      await gate.inFlight(1);
      const c = await client();
      c.send({ type: 'subscribe', topic: `run:${runId}`, mode: 'view', max_hz: 0.5 });
      await c.until((m) => m.length === 1);
      const first = performance.now();
      expect(views(c)[0]!.run).toMatchObject({ status: 'running' });
      await h.engine.command(runId, 'pause', { by: 'test' });
      await c.until((m) => m.length === 2);
      // Well inside the 2 s a view of an item would wait for.
      expect(performance.now() - first).toBeLessThan(1000);
      const paused = views(c)[1]!;
      expect((paused.run!.stages as { state: string }[])[0]!.state).toBe('pausing');
      await gate.finish();
      await c.until((m) => m.some((x) => x.type === 'view' && x.run!.status === 'paused'));
      expect(performance.now() - first).toBeLessThan(1900);
    });

    it('evicts a view-mode client that stops reading, like any other', async () => {
      await setup(2000);
      const runId = await startRun();
      const topic = `run:${runId}`;
      const fine = await client();
      const stalled = await client();
      for (const c of [fine, stalled]) c.send({ type: 'subscribe', topic, mode: 'view', max_hz: 60 });
      await stalled.until((m) => m.length >= 1);
      stalled.stall();
      await vi.waitFor(() => expect(h.hub.clients).toBe(1), { timeout: 10_000, interval: 50 });
      const metrics = await h.metrics.registry.getSingleMetricAsString('runstate_ws_evictions_total');
      expect([...metrics.matchAll(/reason="(\w+)"} (\d+)/g)].reduce((n, m) => n + Number(m[2]), 0)).toBe(1);
      stalled.unstall();
      expect([4008, 1006]).toContain((await stalled.closed).code);
      await h.engine.whenRetired(runId);
      const last = (await h.store.getRun(runId))!.lastSeq;
      await fine.until((m) => m.at(-1)?.seq === last);
      expect(views(fine).at(-1)!.run).toMatchObject({ status: 'completed' });
    });

    it('answers a bad mode or max_hz with an error frame', async () => {
      await setup(5);
      const runId = await startRun();
      const topic = `run:${runId}`;
      const c = await client();
      const bad: [unknown, string][] = [
        [{ type: 'subscribe', topic, mode: 'movie' }, 'BAD_REQUEST'],
        [{ type: 'subscribe', topic, mode: 'view', max_hz: 0 }, 'BAD_REQUEST'],
        [{ type: 'subscribe', topic, mode: 'view', max_hz: -1 }, 'BAD_REQUEST'],
        [{ type: 'subscribe', topic, mode: 'view', max_hz: 61 }, 'BAD_REQUEST'],
        [{ type: 'subscribe', topic, mode: 'view', max_hz: 'fast' }, 'BAD_REQUEST'],
        [{ type: 'subscribe', topic, mode: 'view', after_seq: 3 }, 'BAD_REQUEST'],
        [{ type: 'subscribe', topic, max_hz: 5 }, 'BAD_REQUEST'],
        [{ type: 'subscribe', topic: 'site:site-5', mode: 'view' }, 'BAD_REQUEST'],
        [{ type: 'subscribe', topic: 'site:../x' }, 'INVALID_TOPIC'],
        [{ type: 'subscribe', topic: 'run:nope', mode: 'view' }, 'INVALID_RUN_ID'],
        [{ type: 'subscribe', topic: 'run:run_20200101_000000_manual', mode: 'view' }, 'RUN_NOT_FOUND'],
      ];
      for (const [msg] of bad) c.send(msg);
      await c.until((m) => m.length === bad.length);
      expect(c.messages.map((m) => m.code).sort()).toEqual(bad.map(([, code]) => code).sort());
      for (const m of c.messages) expect(m).toEqual({ type: 'error', code: expect.any(String), message: expect.any(String) });
      const other = await client(OTHER);
      other.send({ type: 'subscribe', topic, mode: 'view' });
      await other.until((m) => m.length === 1);
      expect(other.messages[0]).toMatchObject({ type: 'error', code: 'FORBIDDEN' });
      // A view and the events of one run, side by side on one connection.
      c.send({ type: 'subscribe', topic, mode: 'view', max_hz: 60 });
      c.send({ type: 'subscribe', topic });
      await c.until((m) => m.some((x) => x.type === 'view') && m.some((x) => x.type === 'snapshot'));
      c.send({ type: 'unsubscribe', topic, mode: 'view' });
      c.send({ type: 'unsubscribe', topic });
    });
  });

  it('sends site:* the runs of every site the token may see: the admin all, a scoped token its own', async () => {
    await setup(40);
    const early = [await startRun('site-5'), await startRun('site-9')];
    const admin = await client(ADMIN);
    const scoped = await client(SITE5);
    for (const c of [admin, scoped]) c.send({ type: 'subscribe', topic: 'site:*' });
    await Promise.all([admin, scoped].map((c) => c.until((m) => m.some((x) => x.type === 'snapshot'))));
    const snapshot = (c: WsClient) => (c.messages.find((x) => x.type === 'snapshot')!.runs as { run_id: string }[]).map((r) => r.run_id).sort();
    expect(snapshot(admin)).toEqual([...early].sort());
    expect(snapshot(scoped)).toEqual([early[0]]);
    const late = [await startRun('site-9'), await startRun('site-5')];
    for (const runId of [...early, ...late]) await h.engine.whenRetired(runId);
    const done = (c: WsClient, runId: string) => c.messages.some((x) => x.type === 'run' && x.run!.run_id === runId && x.run!.status === 'completed');
    await admin.until(() => [...early, ...late].every((r) => done(admin, r)));
    await scoped.until(() => done(scoped, early[0]!) && done(scoped, late[1]!));
    for (const c of [admin, scoped]) expect(c.messages.every((x) => x.topic === 'site:*')).toBe(true);
    const sites = (c: WsClient) => new Set(c.messages.filter((x) => x.type === 'run').map((x) => x.run!.site_id));
    expect(sites(admin)).toEqual(new Set(['site-5', 'site-9']));
    // Anything the hub sent the scoped client before the admin saw site-9 finish is in its
    // queue ahead of the answer to this.
    scoped.send({ type: 'dance' });
    await scoped.until((m) => m.some((x) => x.type === 'error'));
    expect(sites(scoped)).toEqual(new Set(['site-5']));
  });
});

/** A run of two stages that lasts a second or two, many events a second. */
function steady(items: number): PipelineDefinition<Record<string, never>> {
  return {
    ...pump(items),
    name: 'steady',
    concurrencyOf: () => 4,
    stages: [1, 2].map((n) => ({
      key: `s${n}`,
      name: `Stage ${n}`,
      loadItems: async () => Array.from({ length: items }, (_, i) => ({ id: i + 1, title: `item ${i + 1}` })),
      processItem: async () => {
        await sleep(2);
        return { cost: 0.1 };
      },
    })),
  };
}
