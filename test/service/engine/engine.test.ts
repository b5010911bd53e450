import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RunstateError } from '../../../service/errors.js';
import { contentPipeline, faceProcessorPipeline } from '../../../service/pipelines/index.js';
import type { StoredEvent } from '../../../service/events.js';
import { engineOn, isEvent, isTransition, tempDir } from '../../helpers/engine.js';
import { gatedPipeline } from '../../helpers/gated.js';

const ACME = { accountId: 'acme', siteId: 'site-5' };

function expectGapFree(events: readonly StoredEvent[]) {
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
}

describe('engine', () => {
  let dir: ReturnType<typeof tempDir>;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => dir.remove());

  it('runs the content pipeline to completion with every event of the contract', async () => {
    const { engine, events, store } = engineOn(dir.path, [contentPipeline]);
    const run = await engine.startRun({ ...ACME, pipeline: 'content', options: { delay_ms: 0, items_per_stage: [3, 0, 2, 1, 1, 0, 2] } });
    expect(run.run_id).toMatch(/^run_\d{8}_\d{6}_manual$/);
    await engine.whenRetired(run.run_id);

    const log = await store.readEvents(run.run_id, 0);
    expect(log).toEqual(events);
    expectGapFree(log);
    expect(log[0]).toMatchObject({ event: 'run_started', run_id: run.run_id, seq: 1, trigger: 'manual' });
    for (const e of log) expect(Date.parse(e.timestamp)).not.toBeNaN();

    // Every stage reports every item, with progress that only goes up.
    const perStage = [3, 0, 2, 1, 1, 0, 2];
    perStage.forEach((total, i) => {
      const stage = i + 1;
      const processed = log.filter(isEvent('stage_item_processed')).filter((e) => e.stage === stage);
      expect(processed.map((e) => e.processed)).toEqual(Array.from({ length: total }, (_, k) => k + 1));
      for (const e of processed) expect(e.total).toBe(total);
      const start = log.find((e) => e.event === 'stage_start' && e.stage === stage);
      expect(start).toMatchObject({ stage_name: contentPipeline.stages[i]!.name, total_items: total });
      const complete = log.filter(isEvent('stage_complete')).find((e) => e.stage === stage);
      expect(complete).toMatchObject({ processed_count: total, failed_count: 0 });
      expect(complete!.time_elapsed).toMatch(/^(\d+h )?(\d+m )?\d+s$/);
      expect(complete!.credits_used).toBeCloseTo(total * [0.2, 0.5, 0.2, 2, 0.5, 1, 0][i]!, 6);
      const transitions = log
        .filter(isEvent('state_change'))
        .filter((e) => e.machine_name === `stage_${stage}`)
        .map((e) => e.payload.to_state);
      expect(transitions).toEqual(total === 0 ? ['loading', 'empty'] : ['loading', 'running', 'completed']);
    });
    const runTransitions = log.filter(isEvent('state_change')).filter((e) => e.machine_name === 'run');
    expect(runTransitions.map((e) => e.payload)).toMatchObject([
      { from_state: 'idle', to_state: 'running', event_trigger: 'start_requested' },
      { from_state: 'running', to_state: 'completed', event_trigger: 'stage_finished' },
    ]);
    expect(runTransitions[0]!.event_type).toBe('state_change');

    // A completed run stays readable, at 100%, until it is closed.
    const view = await engine.getRun(run.run_id);
    expect(view).toMatchObject({ status: 'completed', current_stage: 7, closed_at: null });
    expect(view!.stages.map((s) => s.state)).toEqual(['completed', 'empty', 'completed', 'completed', 'completed', 'empty', 'completed']);
    expect(await engine.currentProcessing(run.run_id)).toMatchObject({
      stage_number: 7,
      percentage: 100,
      status: 'completed',
      stage_state: 'completed',
      currently_processing: [],
      up_next: [],
    });
    expect((await store.ledger(run.run_id)).length).toBe(9);
  });

  it('shows per-item progress, pauses gracefully, keeps progress while paused and resumes with the next item', async () => {
    const gate = gatedPipeline('gated', [4, 0, 1], { concurrency: 2 });
    const { engine, next, events } = engineOn(dir.path, [gate.pipeline]);
    const run = await engine.startRun({ ...ACME, pipeline: 'gated' });
    const id = run.run_id;
    // Every view lists what its state allows: the dashboard's buttons.
    expect(run.allowed_commands).toEqual(['pause', 'cancel']);

    await gate.inFlight(2);
    let card = await engine.currentProcessing(id);
    expect(card).toMatchObject({
      stage_number: 1,
      stage_name: 'Stage 1',
      total_items: 4,
      processed_items: 0,
      percentage: 0,
      currently_processing: [{ id: 101 }, { id: 102 }],
      up_next: [{ id: 103 }, { id: 104 }],
      // In-flight items are not finished: all four remain.
      remaining_count: 4,
      status: 'running',
      stage_state: 'running',
    });

    await gate.finish();
    await next((e) => e.event === 'stage_item_processed' && e.processed === 1);
    await gate.inFlight(2);
    card = await engine.currentProcessing(id);
    expect(card).toMatchObject({ processed_items: 1, percentage: 25, currently_processing: [{ id: 102 }, { id: 103 }], up_next: [{ id: 104 }], remaining_count: 3 });

    // Pause: nothing new starts, the two in flight finish and are recorded, then paused.
    const paused = await engine.command(id, 'pause', { by: 'ops-site-5', reason: 'provider outage' });
    expect(paused.accepted).toBe(true);
    expect(events.find((e) => e.event === 'command')).toMatchObject({ command: 'pause', by: 'ops-site-5', reason: 'provider outage' });
    expect((await engine.currentProcessing(id))!.stage_state).toBe('pausing');
    expect(await engine.getRun(id)).toMatchObject({ status: 'running', allowed_commands: ['resume', 'cancel'] });
    await gate.finish();
    await gate.finish();
    await next(isTransition('run', 'paused'));
    expect(gate.pending).toHaveLength(0);
    card = await engine.currentProcessing(id);
    expect(card).toMatchObject({ processed_items: 3, percentage: 75, currently_processing: [], up_next: [{ id: 104 }], status: 'paused', stage_state: 'paused' });
    expect((await engine.getRun(id))!.allowed_commands).toEqual(['resume', 'cancel']);
    // Pausing a paused run is not an error and changes nothing.
    const before = events.length;
    expect((await engine.command(id, 'pause', { by: 'x' })).accepted).toBe(false);
    expect(events.length).toBe(before);

    await engine.command(id, 'resume', { by: 'ops-site-5' });
    const [resumed] = await gate.inFlight(1);
    expect(resumed!.item.id).toBe(104);
    await gate.finish();

    // The empty stage is a visible state, then the run moves on.
    await next(isTransition('stage_2', 'empty'));
    await gate.finish();
    await engine.whenRetired(id);
    const transitions = events.filter((e) => e.event === 'state_change').map((e) => `${String(e.machine_name)}:${(e.payload as { to_state: string }).to_state}`);
    expect(transitions).toEqual([
      'run:running',
      'stage_1:loading',
      'stage_1:running',
      'stage_1:pausing',
      'stage_1:paused',
      'run:paused',
      'run:running',
      'stage_1:running',
      'stage_1:completed',
      'stage_2:loading',
      'stage_2:empty',
      'stage_3:loading',
      'stage_3:running',
      'stage_3:completed',
      'run:completed',
    ]);
    expect(gate.started.map((s) => s.id)).toEqual([101, 102, 103, 104, 301]);
  });

  it('answers for an empty stage with 100% and no items rather than a blank', async () => {
    const gate = gatedPipeline('gated', [1, 0, 1], { holdLoadOf: 2 });
    const { engine, next } = engineOn(dir.path, [gate.pipeline]);
    const { run_id: id } = await engine.startRun({ ...ACME, pipeline: 'gated' });
    await gate.finish();
    // Pause while stage 2 loads: it turns out empty, and the run pauses on it.
    await gate.loadHeldNow();
    await engine.command(id, 'pause', { by: 'x' });
    gate.releaseLoad();
    await next(isTransition('run', 'paused'));
    expect(await engine.currentProcessing(id)).toMatchObject({
      stage_number: 2,
      stage_name: 'Stage 2',
      total_items: 0,
      processed_items: 0,
      percentage: 100,
      currently_processing: [],
      up_next: [],
      remaining_count: 0,
      status: 'paused',
      stage_state: 'empty',
    });
    await engine.command(id, 'resume', { by: 'x' });
    await gate.finish();
    await engine.whenRetired(id);
  });

  it('pauses between stages on the finished stage and starts the next on resume', async () => {
    const gate = gatedPipeline('gated', [1, 1]);
    const { engine, next } = engineOn(dir.path, [gate.pipeline]);
    const { run_id: id } = await engine.startRun({ ...ACME, pipeline: 'gated' });
    await gate.inFlight(1);
    await engine.command(id, 'pause', { by: 'x' });
    await gate.finish();
    await next(isTransition('run', 'paused'));
    expect(await engine.currentProcessing(id)).toMatchObject({ stage_number: 1, percentage: 100, stage_state: 'completed', status: 'paused' });
    expect((await engine.getRun(id))!.stages.map((s) => s.state)).toEqual(['completed', 'pending']);
    await engine.command(id, 'resume', { by: 'x' });
    const [p] = await gate.inFlight(1);
    expect(p!.stage).toBe(2);
    await gate.finish();
    await engine.whenRetired(id);
  });

  it('retries a failing item with backoff and records it as failed after the last attempt', async () => {
    const gate = gatedPipeline('gated', [2], { attempts: 3 });
    const { engine, events, store } = engineOn(dir.path, [gate.pipeline]);
    const { run_id: id } = await engine.startRun({ ...ACME, pipeline: 'gated' });
    await gate.fail();
    await gate.fail();
    await gate.fail('still down');
    await gate.finish();
    await engine.whenRetired(id);
    expect(gate.started.map((s) => `${s.id}#${s.attempt}`)).toEqual(['101#1', '101#2', '101#3', '102#1']);
    // Every attempt of an item carries the same idempotency key.
    expect(new Set(gate.started.filter((s) => s.id === 101).map((s) => s.key))).toEqual(new Set([`${id}:1:101`]));
    const failed = events.find((e) => e.event === 'stage_item_failed');
    expect(failed).toMatchObject({ stage: 1, item: { id: 101, title: 'item 1.1' }, attempts: 3, error: 'still down', processed: 1, total: 2 });
    expect(events.find((e) => e.event === 'stage_complete')).toMatchObject({ processed_count: 2, failed_count: 1 });
    expect(await store.ledger(id)).toEqual([
      { stage: 1, itemId: 101, status: 'failed', attempts: 3, cost: 0, error: 'still down' },
      { stage: 1, itemId: 102, status: 'done', attempts: 1, cost: 1, error: null },
    ]);
    expect((await engine.getRun(id))!).toMatchObject({ status: 'completed', failed_items: 1 });
  });

  it('fails the run when a stage cannot load, and retry resumes where it stopped', async () => {
    const gate = gatedPipeline('gated', [1, 1], { loadFails: 1, holdLoadOf: 2 });
    const { engine, next } = engineOn(dir.path, [gate.pipeline]);
    const { run_id: id } = await engine.startRun({ ...ACME, pipeline: 'gated' });
    await next(isTransition('run', 'failed'));
    const failed = await engine.getRun(id);
    expect(failed).toMatchObject({ status: 'failed', error: 'item source unavailable' });
    expect(failed!.stages[0]).toMatchObject({ state: 'failed', error: 'item source unavailable' });
    expect(await engine.currentProcessing(id)).toMatchObject({ status: 'failed', stage_state: 'failed', stage_number: 1 });
    await expect(engine.command(id, 'resume', { by: 'x' })).rejects.toMatchObject({ code: 'COMMAND_NOT_ALLOWED', status: 409 });
    await expect(engine.command(id, 'close', { by: 'x' })).rejects.toMatchObject({ code: 'COMMAND_NOT_ALLOWED', status: 409 });
    await engine.command(id, 'retry', { by: 'x' });
    await gate.finish();
    await gate.loadHeldNow();
    gate.releaseLoad();
    await gate.finish();
    await engine.whenRetired(id);
    expect((await engine.getRun(id))!.status).toBe('completed');
    expect(gate.started.map((s) => s.id)).toEqual([101, 201]);
  });

  it('cancels through the AbortSignal of every item in flight', async () => {
    const gate = gatedPipeline('gated', [5], { concurrency: 3 });
    const { engine, store } = engineOn(dir.path, [gate.pipeline]);
    const { run_id: id } = await engine.startRun({ ...ACME, pipeline: 'gated' });
    const inFlight = await gate.inFlight(3);
    await engine.command(id, 'cancel', { by: 'x', reason: 'wrong site' });
    await engine.whenRetired(id);
    expect(inFlight.every((p) => p.signal.aborted)).toBe(true);
    expect(gate.aborted.sort()).toEqual([`${id}:1:101`, `${id}:1:102`, `${id}:1:103`]);
    const view = await engine.getRun(id);
    expect(view).toMatchObject({ status: 'cancelled' });
    expect(view!.stages[0]).toMatchObject({ state: 'cancelled', error: null });
    expect(await store.ledger(id)).toEqual([]);
    // A cancelled run accepts cancel again (no-op) and close; nothing else.
    expect((await engine.command(id, 'cancel', { by: 'x' })).accepted).toBe(false);
    await expect(engine.command(id, 'resume', { by: 'x' })).rejects.toMatchObject({ code: 'COMMAND_NOT_ALLOWED' });
    expect((await engine.command(id, 'close', { by: 'x' })).accepted).toBe(true);
  });

  it("serves a hosted run's view as the store's snapshot reads, the same while nothing moves and anew once something does", async () => {
    const gate = gatedPipeline('gated', [2, 1]);
    const { engine } = engineOn(dir.path, [gate.pipeline]);
    const { run_id: id } = await engine.startRun({ ...ACME, pipeline: 'gated' });
    await gate.inFlight(1);
    await engine.settle();
    const before = (await engine.getRun(id))!;
    expect(await engine.getRun(id)).toEqual(before);
    const { updated_at: _u, processing: _p, ...durable } = (await engine.durableView(id))!.run;
    expect(before).toMatchObject(durable);
    await gate.finish();
    await gate.inFlight(1);
    await engine.settle();
    const after = (await engine.getRun(id))!;
    expect(after).not.toEqual(before);
    expect(after.stages[0]).toMatchObject({ processed_items: 1, total_items: 2 });
    expect(after.last_seq).toBeGreaterThan(before.last_seq);
    const paused = await engine.command(id, 'pause', { by: 'x' });
    expect(paused.run.allowed_commands).not.toEqual(after.allowed_commands);
  });

  it('keeps a completed run until close, then current_processing stops answering', async () => {
    const { engine, store } = engineOn(dir.path, [faceProcessorPipeline]);
    const { run_id: id } = await engine.startRun({ ...ACME, pipeline: 'face_processor', options: { delay_ms: 0, items_per_stage: 1 } });
    await expect(engine.command(id, 'close', { by: 'x' })).rejects.toMatchObject({ code: 'COMMAND_NOT_ALLOWED' });
    await engine.whenRetired(id);
    expect(await engine.currentProcessing(id)).toMatchObject({ status: 'completed', percentage: 100, stage_name: 'running_inpainting' });
    expect((await engine.getRun(id))!.allowed_commands).toEqual(['close']);
    const closed = await engine.command(id, 'close', { by: 'ops', reason: 'seen' });
    expect(closed.accepted).toBe(true);
    expect(closed.run.allowed_commands).toEqual([]);
    expect(closed.run.closed_at).not.toBeNull();
    expect(await engine.currentProcessing(id)).toBeUndefined();
    expect((await engine.getRun(id))!.status).toBe('completed');
    expect((await engine.command(id, 'close', { by: 'x' })).accepted).toBe(false);
    const log = await store.readEvents(id, 0);
    expectGapFree(log);
    expect(log.at(-1)).toMatchObject({ event: 'command', command: 'close', by: 'ops', reason: 'seen' });
    expect(await engine.listRuns({ open: true })).toEqual([]);
  });

  it('refuses bad input with a clear error and starts nothing', async () => {
    const { engine, store } = engineOn(dir.path, [contentPipeline]);
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ pipeline: 'nope' }, 'UNKNOWN_PIPELINE', /No pipeline named "nope"; registered: content/],
      [{ options: { delay_ms: 'fast' } }, 'INVALID_OPTIONS', /`delay_ms` must be number \(rule `type`\)/],
      [{ options: { delay_ms: -1 } }, 'INVALID_OPTIONS', /`delay_ms` must be >= 0 \(rule `minimum`\)/],
      [{ options: { items_per_stage: [1, 2] } }, 'INVALID_OPTIONS', /`items_per_stage` must NOT have fewer than 7 items \(rule `minItems`\)/],
      [{ options: { items_per_stage: [1, 2, 3, 4, 5, 6, -7] } }, 'INVALID_OPTIONS', /`items_per_stage\[6\]` must be >= 0 \(rule `minimum`\)/],
      [{ options: { items_per_stage: 'many' } }, 'INVALID_OPTIONS', /`items_per_stage` must be integer or array \(rule `type`\)/],
      [{ options: { fail_rate: 2 } }, 'INVALID_OPTIONS', /`fail_rate` must be <= 1 \(rule `maximum`\)/],
      [{ options: { concurrency: 0 } }, 'INVALID_OPTIONS', /`concurrency` must be >= 1 \(rule `minimum`\)/],
      [{ options: { seed: 1.5 } }, 'INVALID_OPTIONS', /`seed` must be integer \(rule `type`\)/],
      [{ options: { review: 'yes' } }, 'INVALID_OPTIONS', /`review` must be boolean/],
      [{ options: { colour: 'red' } }, 'INVALID_OPTIONS', /`colour` is not a known option \(rule `additionalProperties`\)/],
      [{ options: [1] }, 'INVALID_OPTIONS', /`options` to be an object/],
      [{ siteId: '../etc' }, 'BAD_REQUEST', /`site_id`/],
      [{ trigger: 'Manual Run' }, 'BAD_REQUEST', /`trigger`/],
    ];
    for (const [override, code, message] of cases) {
      const err = await engine.startRun({ ...ACME, pipeline: 'content', ...override }).catch((e: unknown) => e);
      expect(err, JSON.stringify(override)).toBeInstanceOf(RunstateError);
      expect(err, JSON.stringify(override)).toMatchObject({ code });
      expect((err as Error).message).toMatch(message);
    }
    expect(await store.listRuns({})).toEqual([]);
    expect(engine.hostedRuns).toBe(0);
  });

  it('answers unknown and malformed run ids with not found, touching nothing', async () => {
    const { engine } = engineOn(dir.path, [contentPipeline]);
    expect(await engine.getRun('run_20250101_000000_manual')).toBeUndefined();
    expect(await engine.getRun('../../etc/passwd')).toBeUndefined();
    expect(await engine.currentProcessing("run_x' OR 1=1")).toBeUndefined();
    await expect(engine.command('nope', 'pause', { by: 'x' })).rejects.toMatchObject({ code: 'RUN_NOT_FOUND', status: 404 });
  });

  it('lets the event loop turn while a stage of instant items goes through', async () => {
    const instant = {
      name: 'instant',
      parseOptions: () => ({}),
      stages: [{ key: 's', name: 'S', loadItems: async () => Array.from({ length: 2000 }, (_, i) => ({ id: i, title: `i${i}` })), processItem: async () => {} }],
    };
    const { engine } = engineOn(dir.path, [instant]);
    let turns = 0;
    let running = true;
    const spin = () => {
      turns += 1;
      if (running) setImmediate(spin);
    };
    const { run_id: id } = await engine.startRun({ ...ACME, pipeline: 'instant' });
    setImmediate(spin);
    await engine.whenRetired(id);
    running = false;
    // Timers, sockets and heartbeats get turns while items go through (about one per ms),
    // not only after the stage: starved, this count is 0.
    expect(turns).toBeGreaterThanOrEqual(5);
  });

  it('gives runs started in the same second distinct ids', async () => {
    const gate = gatedPipeline('gated', [1]);
    const { engine } = engineOn(dir.path, [gate.pipeline]);
    const fixed = Date.parse('2025-12-04T19:03:32Z');
    const clocked = new (engine.constructor as typeof import('../../../service/engine/engine.js').Engine)({
      store: engine.store,
      pipelines: [gate.pipeline],
      now: () => fixed,
    });
    const a = await clocked.startRun({ ...ACME, pipeline: 'gated' });
    const b = await clocked.startRun({ ...ACME, pipeline: 'gated', trigger: 'manual' });
    expect([a.run_id, b.run_id]).toEqual(['run_20251204_190332_manual', 'run_20251204_190332_manual_2']);
    await clocked.stop();
  });
});
