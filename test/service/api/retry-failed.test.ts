// Retry failed items (docs/api.md, "Retry failed items"): POST /runs/:id/retry_failed gives the
// items recorded as failed new attempts, numbered on, takes the run and the stages concerned back
// to running, then lets the run finish again; anything else is refused and changes nothing.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AnyPipeline } from '../../../service/pipelines/types.js';
import { PostgresStore } from '../../../service/store/postgres.js';
import { SqliteStore } from '../../../service/store/sqlite.js';
import type { StoredEvent } from '../../../service/store/store.js';
import { TraceWriter } from '../../../service/trace/trace-writer.js';
import { ADMIN, SITE5, appOn, auth } from '../../helpers/app.js';
import { isTransition, tempDir } from '../../helpers/engine.js';
import { usePostgres } from '../../helpers/postgres.js';
import { callApi, runReaches, startService, type ServiceProcess } from '../../helpers/service-process.js';

const API = '/api/v1/automation';

/** Attempts that throw, by `<stage>:<item id>:<attempt>`; a test sets them before it starts a run. */
const failing = new Set<string>();
/** Attempts that wait for the test to let them go, by `<stage>:<item id>:<attempt>`: told to `onBlocked`. */
const blocking = new Set<string>();
let onBlocked: (key: string, release: () => void) => void = () => {};
/** Stage 2 of `shaky_load` cannot load while this is set. */
let loadDown = false;

const items = (n: number) => Array.from({ length: n }, (_, i) => ({ id: i + 1, title: `item ${i + 1}` }));

function stage(key: string, n: number, load?: () => void): AnyPipeline['stages'][number] {
  return {
    key,
    name: key,
    concurrency: 2,
    async loadItems() {
      load?.();
      return items(n);
    },
    async processItem(item, ctx) {
      const key = `${ctx.stage}:${item.id}:${ctx.attempt}`;
      if (blocking.has(key)) await new Promise<void>((resolve) => onBlocked(key, resolve));
      if (failing.has(`${ctx.stage}:${item.id}:${ctx.attempt}`)) throw new Error(`${item.title} failed attempt ${ctx.attempt}`);
      return { cost: 1 };
    },
  };
}

const flaky: AnyPipeline = { name: 'flaky', stages: [stage('sort', 4), stage('pack', 3)], retry: { attempts: 2, backoffMs: 1 } };
const shakyLoad: AnyPipeline = {
  name: 'shaky_load',
  stages: [
    stage('sort', 3),
    stage('pack', 2, () => {
      if (loadDown) throw new Error('pack source unavailable');
    }),
  ],
  retry: { attempts: 1, backoffMs: 1 },
};
/** One item that waits until the test lets it go: `held` tells the test it started, with the release. */
let onHeld: (release: () => void) => void = () => {};
const held: AnyPipeline = {
  name: 'held',
  stages: [
    {
      key: 'wait',
      name: 'wait',
      loadItems: async () => items(1),
      processItem: (_, ctx) =>
        new Promise<void>((resolve, reject) => {
          onHeld(resolve);
          ctx.signal.addEventListener('abort', () => reject(new Error('aborted')));
        }),
    },
  ],
};

type View = {
  status: string;
  last_seq: number;
  failed_items: number;
  allowed_commands: string[];
  stages: { state: string; processed_items: number; failed_items: number; total_items: number }[];
};

const pg = usePostgres();

for (const store of ['sqlite', 'postgres'] as const) describe(`POST /runs/:id/retry_failed (${store})`, () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    failing.clear();
    blocking.clear();
    loadDown = false;
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function app() {
    const dir = tempDir();
    let env: Record<string, string> = {};
    if (store === 'postgres') {
      const db = await pg.createDatabase();
      cleanup.push(() => db.drop());
      env = { DATABASE_URL: db.url };
    }
    const h = await appOn(dir.path, [flaky, shakyLoad, held], {}, { env });
    cleanup.push(async () => {
      await h.stop();
      dir.remove();
    });
    const get = async (runId: string): Promise<View> => (await h.app.inject({ url: `${API}/runs/${runId}`, headers: auth(SITE5) })).json().data;
    const command = (runId: string, name: string, payload?: object) =>
      h.app.inject({ method: 'POST', url: `${API}/runs/${runId}/${name}`, headers: auth(SITE5), ...(payload ? { payload } : {}) });
    const start = async (pipeline: string) => {
      const res = await h.app.inject({ method: 'POST', url: `${API}/runs`, headers: auth(SITE5), payload: { site_id: 'site-5', pipeline } });
      expect(res.statusCode, res.body).toBe(201);
      return res.json().data.run_id as string;
    };
    return { ...h, get, command, start };
  }

  it('retries the failed items with their attempts numbered on, recording each once more, and completes again', async () => {
    const h = await app();
    // Item 2 of stage 1 fails its two attempts and its two retried ones; item 3 of stage 2 fails twice, then succeeds.
    for (const k of ['1:2:1', '1:2:2', '1:2:3', '1:2:4', '2:3:1', '2:3:2']) failing.add(k);
    const runId = await h.start('flaky');
    await h.engine.whenRetired(runId);
    const before = await h.get(runId);
    expect(before).toMatchObject({ status: 'completed', failed_items: 2 });
    expect(before.allowed_commands.sort()).toEqual(['close', 'retry_failed']);
    const seqBefore = before.last_seq;

    const res = await h.command(runId, 'retry_failed', { reason: 'provider back' });
    expect(res.statusCode, res.body).toBe(200);
    // The answer comes once the command is durable; instant items may have finished the retry by then (the events show it ran).
    expect(res.json()).toMatchObject({ accepted: true });
    expect(['running', 'completed']).toContain(res.json().data.status);
    await h.next((e) => e.run_id === runId && e.seq > seqBefore && isTransition('run', 'completed')(e));
    await h.engine.whenRetired(runId);

    const after = await h.get(runId);
    expect(after).toMatchObject({ status: 'completed', failed_items: 1 });
    expect(after.stages.map((s) => [s.state, s.processed_items, s.failed_items])).toEqual([
      ['completed', 4, 1],
      ['completed', 3, 0],
    ]);
    expect(after.allowed_commands.sort()).toEqual(['close', 'retry_failed']);

    // The ledger: one row per item, the retried ones replaced, attempts going on from the last.
    const ledger = await h.engine.store.ledger(runId);
    expect(ledger).toHaveLength(7);
    const row = (stage: number, id: number) => ledger.find((l) => l.stage === stage && l.itemId === id);
    expect(row(1, 2)).toMatchObject({ status: 'failed', attempts: 4, error: 'item 2 failed attempt 4' });
    expect(row(2, 3)).toMatchObject({ status: 'done', attempts: 3, cost: 1, error: null });

    // The events say so: who asked, every transition, the items again, each stage completing again.
    const log = h.events.filter((e) => e.run_id === runId && e.seq > seqBefore);
    expect(log.map((e) => e.seq)).toEqual(Array.from({ length: log.length }, (_, i) => seqBefore + 1 + i));
    expect(log[0]).toMatchObject({ event: 'command', command: 'retry_failed', by: 'ops-site-5', reason: 'provider back' });
    const changes = log.flatMap((e) => (e.event === 'state_change' ? [[e.machine_name, e.payload.from_state, e.payload.to_state, e.payload.event_trigger]] : []));
    expect(changes).toEqual([
      ['run', 'completed', 'running', 'retry_failed_requested'],
      ['stage_1', 'completed', 'running', 'retry_failed_requested'],
      ['stage_1', 'running', 'completed', 'item_finished'],
      ['stage_2', 'completed', 'running', 'retry_failed_requested'],
      ['stage_2', 'running', 'completed', 'item_finished'],
      ['run', 'running', 'completed', 'stage_finished'],
    ]);
    const itemEvents = log.filter((e) => e.event === 'stage_item_processed' || e.event === 'stage_item_failed');
    expect(itemEvents.map((e) => [e.event, fieldOf(e, 'stage'), (e as { item: { id: number } }).item.id, fieldOf(e, 'attempts') ?? null])).toEqual([
      ['stage_item_failed', 1, 2, 4],
      ['stage_item_processed', 2, 3, null],
    ]);
    expect(log.filter((e) => e.event === 'stage_complete').map((e) => [fieldOf(e, 'stage'), fieldOf(e, 'processed_count'), fieldOf(e, 'failed_count')])).toEqual([
      [1, 4, 1],
      [2, 3, 0],
    ]);

    // The items page agrees with the ledger.
    const page = (await h.app.inject({ url: `${API}/runs/${runId}/items?stage=1&status=failed`, headers: auth(SITE5) })).json();
    expect(page.data).toEqual([expect.objectContaining({ id: 2, status: 'failed', attempts: 4 })]);
  });

  it('gives a failed run’s completed stages their failed items again, then leaves it failed where it stopped', async () => {
    const h = await app();
    failing.add('1:1:1');
    loadDown = true;
    const runId = await h.start('shaky_load');
    await h.next((e) => e.run_id === runId && isTransition('run', 'failed')(e));
    await h.engine.settle();
    const failed = await h.get(runId);
    expect(failed).toMatchObject({ status: 'failed', failed_items: 1 });
    expect(failed.allowed_commands.sort()).toEqual(['cancel', 'retry', 'retry_failed']);

    const res = await h.command(runId, 'retry_failed');
    expect(res.statusCode, res.body).toBe(200);
    await h.next((e) => e.run_id === runId && e.seq > failed.last_seq && isTransition('run', 'failed')(e));
    await h.engine.settle();
    const again = await h.get(runId);
    expect(again).toMatchObject({ status: 'failed', failed_items: 0, error: 'pack source unavailable' });
    expect(again.stages.map((s) => s.state)).toEqual(['completed', 'failed']);
    expect(again.allowed_commands.sort()).toEqual(['cancel', 'retry']);

    // `retry` then resumes the stage that failed, as before.
    loadDown = false;
    expect((await h.command(runId, 'retry')).statusCode).toBe(200);
    await h.engine.whenRetired(runId);
    expect(await h.get(runId)).toMatchObject({ status: 'completed', failed_items: 0 });
  });

  it('takes a retry_failed that comes the moment the run completes, while it is leaving memory', async () => {
    const h = await app();
    failing.add('1:1:1').add('1:1:2');
    let answer: Promise<unknown> | undefined;
    // Sent from the listener of the batch that completes the run: its host is about to retire.
    h.engine.onEvents((_, batch) => {
      if (!answer && batch.some(isTransition('run', 'completed'))) answer = h.engine.command(batch[0]!.run_id, 'retry_failed', { by: 'racer' });
    });
    const runId = await h.start('flaky');
    await h.next((e) => e.run_id === runId && e.event === 'command');
    expect(await answer).toMatchObject({ accepted: true });
    await h.engine.whenRetired(runId);
    await h.engine.settle();
    const after = await h.get(runId);
    expect(after).toMatchObject({ status: 'completed', failed_items: 0 });
    const runChanges = h.events.filter((e) => e.run_id === runId && isTransition('run', 'completed')(e));
    expect(runChanges).toHaveLength(2);
  });

  it('pauses, resumes and cancels during a retry as at any time', async () => {
    const h = await app();
    // Items 1, 2 and 3 of stage 1 fail both attempts; the first retried attempts of 1 and 2 (two
    // at a time) wait for the test, and 3 waits its turn.
    for (const k of ['1:1:1', '1:1:2', '1:2:1', '1:2:2', '1:3:1', '1:3:2']) failing.add(k);
    blocking.add('1:1:3').add('1:2:3');
    const runId = await h.start('flaky');
    await h.engine.whenRetired(runId);
    const released = new Map<string, () => void>();
    let bothBlocked!: () => void;
    const blocked = new Promise<void>((resolve) => (bothBlocked = resolve));
    onBlocked = (key, release) => {
      released.set(key, release);
      if (released.size === 2) bothBlocked();
    };
    expect((await h.command(runId, 'retry_failed')).statusCode).toBe(200);
    await blocked;
    expect(await h.get(runId)).toMatchObject({ status: 'running', failed_items: 0, stages: [{ state: 'running', processed_items: 1 }, { state: 'completed' }] });
    // Pause: the two retried attempts in flight finish and are recorded, then the run is paused; item 3 has not started.
    expect((await h.command(runId, 'pause', { reason: 'hold on' })).json()).toMatchObject({ accepted: true });
    released.get('1:1:3')!();
    released.get('1:2:3')!();
    await h.next((e) => e.run_id === runId && isTransition('run', 'paused')(e));
    await h.engine.settle();
    expect(await h.get(runId)).toMatchObject({ status: 'paused', failed_items: 0, stages: [{ state: 'paused', processed_items: 3 }, { state: 'completed' }] });
    const items = (await h.app.inject({ url: `${API}/runs/${runId}/items?stage=1`, headers: auth(SITE5) })).json();
    expect(items.data.map((i: { id: number; status: string; attempts: number }) => [i.id, i.status, i.attempts])).toEqual([
      [1, 'processed', 3],
      [2, 'processed', 3],
      [3, 'pending', 2],
      [4, 'processed', 1],
    ]);
    expect((await h.command(runId, 'resume')).statusCode).toBe(200);
    await h.engine.whenRetired(runId);
    expect(await h.get(runId)).toMatchObject({ status: 'completed', failed_items: 0 });

    // Cancel mid-retry: the items not finished again stay recorded as failed, and count so.
    failing.clear();
    for (const k of ['1:3:1', '1:3:2']) failing.add(k);
    blocking.clear();
    blocking.add('1:3:3');
    released.clear();
    let held!: () => void;
    const inFlight = new Promise<void>((resolve) => (held = resolve));
    onBlocked = (key, release) => {
      released.set(key, release);
      held();
    };
    const other = await h.start('flaky');
    await h.engine.whenRetired(other);
    expect((await h.command(other, 'retry_failed')).statusCode).toBe(200);
    await inFlight;
    expect((await h.command(other, 'cancel')).statusCode).toBe(200);
    await h.engine.whenRetired(other);
    const cancelled = await h.get(other);
    expect(cancelled).toMatchObject({ status: 'cancelled', failed_items: 1, stages: [{ state: 'cancelled', processed_items: 4, failed_items: 1 }, { state: 'completed' }] });
    expect((await h.engine.store.ledger(other)).filter((l) => l.status === 'failed').map((l) => [l.itemId, l.attempts])).toEqual([[3, 2]]);
    released.get('1:3:3')!();
  });

  it('refuses with 409 and changes nothing when there is nothing to retry or the state does not allow it; 404 for an unknown run', async () => {
    const h = await app();
    const clean = await h.start('flaky');
    await h.engine.whenRetired(clean);
    const view = await h.get(clean);
    expect(view.allowed_commands).toEqual(['close']);
    const refused = await h.command(clean, 'retry_failed');
    expect(refused.statusCode).toBe(409);
    expect(refused.json()).toEqual({ error: { code: 'COMMAND_NOT_ALLOWED', message: 'The run has no failed items to retry.' } });
    expect((await h.get(clean)).last_seq).toBe(view.last_seq);

    // A closed run keeps its failed items as they are.
    failing.add('1:1:1').add('1:1:2');
    const closed = await h.start('flaky');
    await h.engine.whenRetired(closed);
    expect((await h.command(closed, 'close')).statusCode).toBe(200);
    const closedView = await h.get(closed);
    const res = await h.command(closed, 'retry_failed');
    expect(res.statusCode).toBe(409);
    expect(res.json().error.code).toBe('COMMAND_NOT_ALLOWED');
    expect(await h.get(closed)).toEqual(closedView);

    // While the run is at work.
    const release = new Promise<() => void>((resolve) => (onHeld = resolve));
    const busy = await h.start('held');
    const letGo = await release;
    const running = await h.command(busy, 'retry_failed');
    expect(running.statusCode).toBe(409);
    expect(running.json().error).toEqual({ code: 'COMMAND_NOT_ALLOWED', message: 'Cannot retry the failed items of a run that is running: only completed or failed runs.' });
    letGo();
    await h.engine.whenRetired(busy);

    const unknown = await h.app.inject({ method: 'POST', url: `${API}/runs/run_20250101_000000_manual/retry_failed`, headers: auth(ADMIN) });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('RUN_NOT_FOUND');
  });

  it('is taken by the bulk endpoint, each run as if commanded alone', async () => {
    const h = await app();
    failing.add('1:1:1').add('1:1:2');
    const withFailures = await h.start('flaky');
    await h.engine.whenRetired(withFailures);
    failing.clear();
    const clean = await h.start('flaky');
    await h.engine.whenRetired(clean);
    const res = await h.app.inject({
      method: 'POST',
      url: `${API}/runs/bulk/retry_failed`,
      headers: auth(SITE5),
      payload: { run_ids: [withFailures, clean] },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().results).toEqual([
      { run_id: withFailures, status: 200, accepted: true, run_status: expect.stringMatching(/^(running|completed)$/) },
      { run_id: clean, status: 409, code: 'COMMAND_NOT_ALLOWED', message: 'The run has no failed items to retry.' },
    ]);
    await h.engine.whenRetired(withFailures);
    expect(await h.get(withFailures)).toMatchObject({ status: 'completed', failed_items: 0 });
  });
});

describe('retry_failed across a SIGKILL', () => {
  const procs: ServiceProcess[] = [];
  const dirs: ReturnType<typeof tempDir>[] = [];
  afterEach(async () => {
    for (const p of procs.splice(0)) {
      p.child.kill('SIGKILL');
      await p.exited;
    }
    dirs.splice(0).forEach((d) => d.remove());
  });

  const api = (svc: ServiceProcess, path: string, init: { method?: string; body?: unknown } = {}) => callApi<{ data: View & Record<string, unknown> }>(svc, path, init);

  const waitFor = (svc: ServiceProcess, runId: string, status: string) => runReaches<View & Record<string, unknown>>(svc, runId, status, 30_000);

  it('goes on with the retry after a SIGKILL mid-retry and records each retried item exactly once', async () => {
    const dir = tempDir('runstate-retry-');
    dirs.push(dir);
    const first = await startService(dir.path);
    procs.push(first);
    // One attempt per item, so each retried item gets exactly one new attempt (attempt 2).
    const options = { seed: 11, delay_ms: 120, items_per_stage: [8, 0, 0, 0, 0, 0, 0], fail_rate: 0.5, max_attempts: 1, concurrency: 1 };
    const started = await api(first, '/runs', { method: 'POST', body: { site_id: 'site-5', pipeline: 'content', options } });
    expect(started.status).toBe(201);
    const runId = started.body.data.run_id as string;
    const done = await waitFor(first, runId, 'completed');
    expect(done.failed_items).toBeGreaterThanOrEqual(2);
    const failedBefore = done.failed_items;

    const retried = await api(first, `/runs/${runId}/retry_failed`, { method: 'POST', body: { reason: 'before the crash' } });
    expect(retried.status).toBe(200);
    expect(retried.body.data.status).toBe('running');
    first.child.kill('SIGKILL');
    await first.exited;
    procs.splice(procs.indexOf(first), 1);

    // Killed mid-retry: the store has the run back at work, its failed rows not all replaced yet.
    const store = new SqliteStore({ filename: join(dir.path, 'runstate.db') });
    try {
      expect((await store.getRun(runId))!.status).toBe('running');
    } finally {
      await store.close();
    }

    const second = await startService(dir.path);
    procs.push(second);
    const after = await waitFor(second, runId, 'completed');
    const trace = await fetch(`${second.base}${API}/runs/${runId}/trace`, { headers: { authorization: `Token ${second.token}` } });
    const log = (await trace.text()).trimEnd().split('\n').map((l) => JSON.parse(l) as StoredEvent);
    expect(log.map((e) => e.seq)).toEqual(log.map((_, i) => i + 1));
    const commands = log.filter((e) => e.event === 'command');
    expect(commands).toEqual([expect.objectContaining({ command: 'retry_failed', reason: 'before the crash' })]);
    // After the command, each item that had failed is recorded once more, with attempt 2; nothing else is.
    const since = log.filter((e) => e.seq > commands[0]!.seq);
    const recorded = since.filter((e) => e.event === 'stage_item_processed' || e.event === 'stage_item_failed');
    expect(recorded).toHaveLength(failedBefore);
    expect(new Set(recorded.map((e) => (e as { item: { id: number } }).item.id)).size).toBe(failedBefore);
    expect(since.filter((e) => e.event === 'state_change' && e.machine_name === 'run').map((e) => e.event === 'state_change' && e.payload.to_state)).toEqual(['running', 'completed']);

    await second.stop();
    procs.splice(procs.indexOf(second), 1);
    const s = new SqliteStore({ filename: join(dir.path, 'runstate.db') });
    const [ledger, record] = await Promise.all([s.ledger(runId), s.getRun(runId)]).finally(() => s.close());
    // The trace file is the log, line for line, the retry included; the diagnostic log has a line per finish.
    const file = readFileSync(join(TraceWriter.runDir(dir.path, record!), 'run_trace.jsonl'), 'utf8');
    expect(file).toBe(log.map((e) => `${JSON.stringify(e)}\n`).join(''));
    expect(readFileSync(join(dir.path, 'logs', 'automation_diagnostic.log'), 'utf8').split(`${runId} completed`)).toHaveLength(3);
    expect(ledger).toHaveLength(8);
    expect(new Set(ledger.map((l) => String(l.itemId))).size).toBe(8);
    const again = new Set(recorded.map((e) => (e as { item: { id: number } }).item.id));
    for (const l of ledger) expect(l.attempts, String(l.itemId)).toBe(again.has(l.itemId as number) ? 2 : 1);
    expect(ledger.filter((l) => l.status === 'failed')).toHaveLength(after.failed_items);
  });
});

describe('retry_failed on two instances sharing one Postgres', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('revives a run another instance completed, once, however many instances are asked at once', async () => {
    const db = await pg.createDatabase();
    cleanup.push(() => db.drop());
    const dir = tempDir('runstate-retry-pg-');
    cleanup.push(() => dir.remove());
    const admin = 'shared-admin-token-0123456789';
    const env = (name: string) => ({ DATABASE_URL: db.url, RUNSTATE_ADMIN_TOKEN: admin, RUNSTATE_INSTANCE_ID: name, RUNSTATE_LEASE_MS: '2000' });
    const [i1, i2] = await Promise.all(['i1', 'i2'].map((n) => startService(join(dir.path, n), env(n))));
    cleanup.push(async () => {
      for (const i of [i1!, i2!]) i.child.kill('SIGKILL');
      await Promise.all([i1!.exited, i2!.exited]);
    });
    const call = async (svc: ServiceProcess, method: string, path: string, body?: unknown) => {
      const res = await fetch(`${svc.base}${API}${path}`, {
        method,
        headers: { authorization: `Token ${admin}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      return { status: res.status, body: (await res.json()) as { data: View & { run_id: string }; error?: { code: string } } };
    };
    // Items of a second or so: the retry is still under way when the instance that lost the race
    // forwards its request to the winner (commands are polled every 20 ms), which refuses it. With
    // items of 20 ms the retry could finish first, and the forwarded request rightly start a second.
    const options = { seed: 3, delay_ms: 1000, items_per_stage: [6, 0, 0, 0, 0, 0, 0], fail_rate: 1, max_attempts: 1 };
    const runId = (await call(i1!, 'POST', '/runs', { site_id: 'site-5', pipeline: 'content', options })).body.data.run_id;
    const deadline = Date.now() + 30_000;
    const completed = async (after: number) => {
      for (;;) {
        const { body } = await call(i2!, 'GET', `/runs/${runId}`);
        if (body.data.status === 'completed' && body.data.last_seq > after) return body.data;
        if (Date.now() > deadline) throw new Error(`run ${runId} is ${body.data.status}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const done = await completed(0);
    expect(done.failed_items).toBe(6);

    // Both instances are asked at once: one takes the run back to work, the other refuses.
    const answers = await Promise.all([i1!, i2!].map((i) => call(i, 'POST', `/runs/${runId}/retry_failed`)));
    const accepted = answers.filter((a) => a.status === 200);
    expect(accepted).toHaveLength(1);
    for (const a of answers.filter((x) => x.status !== 200)) expect([[409, 'COMMAND_NOT_ALLOWED'], [503, 'UNAVAILABLE']]).toContainEqual([a.status, a.body.error?.code]);
    const again = await completed(done.last_seq);
    expect(again.failed_items).toBe(6);

    const store = await PostgresStore.connect(db.url, { poolSize: 1 });
    cleanup.push(() => store.close());
    const events = await store.readEvents(runId, 0);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.filter((e) => e.event === 'command')).toHaveLength(1);
    expect(events.filter((e) => e.event === 'stage_item_failed')).toHaveLength(12);
    const ledger = await store.ledger(runId);
    expect(ledger.map((l) => [l.status, l.attempts])).toEqual(Array.from({ length: 6 }, () => ['failed', 2]));
  });
});

function fieldOf(e: StoredEvent, key: string): unknown {
  return Reflect.get(e, key) as unknown;
}
