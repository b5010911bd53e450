import { describe, expect, it, vi } from 'vitest';
import { createActor, fromPromise, type SnapshotFrom } from 'xstate';
import {
  RUN_STATES,
  STAGE_STATES,
  machineGraph,
  runMachine,
  stageMachine,
  type ItemRecord,
  type StageContext,
  type StageNotice,
} from '../../machines/index.js';
import { describeProcessing } from '../../service/engine/view.js';
import type { RunRecord } from '../../service/store/store.js';
import { allTransitions, transitionCollector } from '../helpers/coverage.js';
import { edgePaths } from '../helpers/paths.js';

type StageSnapshot = SnapshotFrom<typeof stageMachine>;

const INPUT = { runId: 'run_20250101_000000_manual', stage: 1, concurrency: 1, maxAttempts: 2, backoffMs: 10, backoffMaxMs: 100 };
const ITEMS = [
  { id: 11, title: 'first' },
  { id: 12, title: 'second' },
];

const never = fromPromise(() => new Promise<never>(() => {}));

/** The stage with effects that never finish on their own: the test sends their outcomes. */
function stageUnderTest(records: ItemRecord[], notices: StageNotice[]) {
  return stageMachine.provide({
    actors: { loadItems: never, processItem: never, wait: never } as never,
    actions: {
      recordItem: (_, rec: ItemRecord) => void records.push(rec),
      notifyParent: (_, notice: StageNotice) => void notices.push(notice),
    },
  });
}

/** Every event the stage can receive in a state, internal outcomes included. */
function eventsFor(snap: StageSnapshot) {
  const ctx = snap.context;
  const events: { type: string; [k: string]: unknown }[] = [
    { type: 'start_requested' },
    { type: 'pause_requested' },
    { type: 'resume_requested' },
    { type: 'cancel_requested' },
    { type: 'retry_requested' },
  ];
  if (snap.value === 'loading') {
    events.push({ type: 'xstate.done.actor.loader', actorId: 'loader', output: { total: 0, loadedAt: 1000 } });
    events.push({ type: 'xstate.done.actor.loader', actorId: 'loader', output: { total: ITEMS.length, loadedAt: 1000 } });
    events.push({ type: 'xstate.error.actor.loader', actorId: 'loader', error: new Error('source unavailable') });
  }
  for (const a of ctx.active) {
    const actorId = `item.${a.index}`;
    events.push({ type: `xstate.done.actor.${actorId}`, actorId, output: { outcome: 'done', index: a.index, cost: 1.5 } });
    events.push({ type: `xstate.done.actor.${actorId}`, actorId, output: { outcome: 'error', index: a.index, error: 'flaky', at: 2000 } });
    events.push({ type: `xstate.error.actor.${actorId}`, actorId, error: new Error('store unavailable') });
    // A worker's job given back unclaimed (a pause), and an attempt that says not to retry: for
    // the first item only, which covers their transitions without multiplying the paths.
    if (a.index === 0) {
      events.push({ type: `xstate.done.actor.${actorId}`, actorId, output: { outcome: 'released', index: a.index } });
      events.push({ type: `xstate.done.actor.${actorId}`, actorId, output: { outcome: 'error', index: a.index, error: 'fatal', at: 2000, final: true } });
    }
  }
  // retry_failed, where the failed items are known from the context alone: all of them failed.
  // Their last attempt is given as maxAttempts, which keeps the state space finite.
  if (snap.value === 'completed' && ctx.total && ctx.failed === ctx.total) {
    events.push({ type: 'retry_failed_requested', items: ITEMS.map((_, index) => ({ index, attempt: INPUT.maxAttempts })) });
  }
  events.push({ type: 'retry_failed_requested', items: [] });
  for (const w of ctx.waiting) {
    const actorId = `wait.${w.index}`;
    events.push({ type: `xstate.done.actor.${actorId}`, actorId, output: undefined });
  }
  return events as never[];
}

function serialize(snap: StageSnapshot): string {
  const { total, cursor, processed, failed, active, waiting, retrying, pauseRequested, error } = snap.context;
  return JSON.stringify([snap.value, total, cursor, processed, failed, active, waiting, retrying, pauseRequested, error]);
}

function processingOf(snap: StageSnapshot) {
  const record = {
    runId: INPUT.runId,
    status: 'running',
    snapshot: { value: 'running', context: { current: 1 }, children: { 'stage.1': { snapshot: { value: snap.value, context: snap.context } } } },
  } as unknown as RunRecord;
  return describeProcessing(record, [{ key: 'k', name: 'Stage one' }], () => ITEMS)!;
}

describe('stage machine, model-based', () => {
  // Events given here are used as they are; the model's default would keep only events whose
  // type equals a descriptor, and `xstate.done.actor.item.0` is not `xstate.done.actor.item.*`.
  // Final states (`empty`, `cancelled`) take no events: the traversal stops there.
  const paths = edgePaths<StageSnapshot, never>(stageUnderTest([], []), {
    input: INPUT,
    events: eventsFor,
    serializeState: serialize,
    stopWhen: (s) => s.status !== 'active',
  });

  it('reaches every state of the stage', () => {
    expect(paths.length).toBeGreaterThan(100);
    const reached = new Set(paths.flatMap((p) => p.steps.map((s) => String(s.state.value))));
    expect([...reached].sort()).toEqual(['cancelled', 'completed', 'empty', 'failed', 'loading', 'paused', 'pausing', 'pending', 'running']);
  });

  it('keeps its promises on every path and takes every transition', () => {
    const coverage = transitionCollector('stage');
    for (const path of paths) {
      const records: ItemRecord[] = [];
      const notices: StageNotice[] = [];
      const actor = createActor(stageUnderTest(records, notices), { input: INPUT, inspect: coverage.inspect });
      actor.start();
      let prev = actor.getSnapshot();
      let pausedAt: number | null = null;
      for (const step of path.steps) {
        const noticesBefore = notices.length;
        const recordsBefore = records.length;
        actor.send(step.event);
        const type = (step.event as { type: string }).type;
        const heard = notices.slice(noticesBefore);
        const snap = actor.getSnapshot();
        const ctx: StageContext = snap.context;
        const where = `${path.description} at ${String(snap.value)}`;
        // The SUT agrees with the model.
        expect(serialize(snap), where).toBe(serialize(step.state));
        // Progress never goes backwards and never passes the total, but for retry_failed, which
        // takes the items it retries back from processed (and failed) until they finish again.
        const retried = type === 'retry_failed_requested' && prev.value === 'completed' ? (step.event as unknown as { items: unknown[] }).items.length : 0;
        expect(ctx.processed, where).toBeGreaterThanOrEqual(prev.context.processed - retried);
        expect(ctx.failed, where).toBeGreaterThanOrEqual(prev.context.failed - retried);
        if (retried > 0) {
          expect(snap.value, where).toBe('running');
          expect(ctx.processed, where).toBe(prev.context.processed - retried);
          // Attempt numbers go on from the last one; each gets the attempts a new item gets.
          for (const r of [...ctx.retrying, ...ctx.active]) expect(r, where).toMatchObject({ attempt: INPUT.maxAttempts + 1, upTo: 2 * INPUT.maxAttempts });
        }
        if (type === 'retry_failed_requested' && retried === 0) expect(serialize(snap), where).toBe(serialize(prev));
        if (ctx.total !== null) expect(ctx.processed, where).toBeLessThanOrEqual(ctx.total);
        // Concurrency holds, retry waits included.
        expect(ctx.active.length + ctx.waiting.length, where).toBeLessThanOrEqual(ctx.concurrency);
        // Every finished item is recorded once, failed exactly when its last attempt failed; only
        // retry_failed records an item again, replacing its failed record.
        const latest = new Map<number, ItemRecord>();
        for (const r of records.slice(0, recordsBefore)) latest.set(r.index, r);
        for (const r of records.slice(recordsBefore)) {
          const before = latest.get(r.index);
          if (before) expect([before.status, r.retried], where).toEqual(['failed', true]);
          else expect(r.retried, where).toBeUndefined();
          latest.set(r.index, r);
        }
        const unfinished = new Set([...ctx.active, ...ctx.waiting, ...ctx.retrying].map((a) => a.index));
        const finished = [...latest.values()].filter((r) => !unfinished.has(r.index));
        expect(finished.length, where).toBe(ctx.processed);
        expect(finished.filter((r) => r.status === 'failed').length, where).toBe(ctx.failed);
        for (const r of records) {
          if (r.status === 'failed' && r.error !== 'fatal') expect(r.attempts, where).toBe(r.retried ? 2 * INPUT.maxAttempts : INPUT.maxAttempts);
        }
        const view = processingOf(snap);
        expect(view.stage_state, where).toBe(snap.value);
        switch (snap.value) {
          case 'loading':
          case 'pending':
            expect(view.percentage, where).toBe(0);
            break;
          case 'empty':
            expect(ctx.total, where).toBe(0);
            expect(view.percentage, where).toBe(100);
            expect(view.total_items, where).toBe(0);
            break;
          case 'completed':
            expect(ctx.processed, where).toBe(ctx.total);
            expect(view.percentage, where).toBe(100);
            expect(view.currently_processing, where).toEqual([]);
            break;
          case 'paused':
            // Paused: nothing in flight, the progress it had is kept.
            expect(ctx.active, where).toEqual([]);
            expect(view.currently_processing, where).toEqual([]);
            if (ctx.total) expect(view.percentage, where).toBe(Math.floor((100 * ctx.processed) / ctx.total));
            if (pausedAt !== null) expect(ctx.processed, where).toBe(pausedAt);
            pausedAt = ctx.processed;
            break;
          case 'failed':
            expect(ctx.error, where).toBeTruthy();
            expect(ctx.active, where).toEqual([]);
            break;
          case 'cancelled':
            // Nothing in flight or waiting, and the stage is done: no event moves it again.
            expect(snap.status, where).toBe('done');
            expect(ctx.active, where).toEqual([]);
            expect(ctx.waiting, where).toEqual([]);
            expect(view.currently_processing, where).toEqual([]);
            // A cancel is not an error; a stage that had failed keeps the reason it stopped.
            expect(ctx.error, where).toBe(prev.value === 'failed' ? prev.context.error : null);
            break;
          default:
            if (ctx.total) expect(view.percentage, where).toBe(Math.floor((100 * ctx.processed) / ctx.total));
            expect(view.currently_processing.map((i) => i.id), where).toEqual(ctx.active.map((a) => ITEMS[a.index]!.id));
        }
        if (snap.value !== 'paused') pausedAt = null;
        // The run hears that the stage finished, paused or failed, never of a cancel (it sent the cancel).
        if ((snap.value === 'completed' || snap.value === 'empty') && prev.value !== snap.value) {
          expect(heard, where).toEqual([{ type: 'stage_completed', stage: 1 }]);
        } else if (snap.value === 'paused' && prev.value !== 'paused') expect(heard, where).toEqual([{ type: 'stage_paused', stage: 1 }]);
        else if (snap.value === 'failed' && prev.value !== 'failed') {
          expect(heard, where).toEqual([{ type: 'stage_failed', stage: 1, error: ctx.error }]);
        } else expect(heard, where).toEqual([]);
        prev = snap;
      }
      actor.stop();
    }
    const missing = [...allTransitions(stageMachine)].filter((t) => !coverage.taken.has(t));
    expect(missing).toEqual([]);
  });

  it('stays cancelled: no retry or resume revives it, and its items were aborted', () => {
    const records: ItemRecord[] = [];
    const aborted: number[] = [];
    const inFlight = fromPromise<never, { index: number }>(
      ({ input, signal }) => new Promise<never>(() => signal.addEventListener('abort', () => aborted.push(input.index))),
    );
    const machine = stageMachine.provide({
      actors: { loadItems: never, processItem: inFlight, wait: never } as never,
      actions: { recordItem: (_, rec: ItemRecord) => void records.push(rec), notifyParent: () => {} },
    });
    const actor = createActor(machine, { input: { ...INPUT, concurrency: 2 } });
    actor.start();
    actor.send({ type: 'start_requested' });
    actor.send({ type: 'xstate.done.actor.loader', actorId: 'loader', output: { total: ITEMS.length, loadedAt: 1000 } });
    expect(actor.getSnapshot().value).toBe('running');
    expect(actor.getSnapshot().context.active.map((a) => a.index)).toEqual([0, 1]);
    actor.send({ type: 'cancel_requested' });
    expect(aborted.sort()).toEqual([0, 1]);
    // A done actor takes no more events (XState warns of each one sent).
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    for (const type of ['retry_requested', 'resume_requested', 'start_requested'] as const) actor.send({ type });
    warn.mockRestore();
    const snap = actor.getSnapshot();
    expect(snap.value).toBe('cancelled');
    expect(snap.status).toBe('done');
    expect(snap.context).toMatchObject({ processed: 0, active: [], waiting: [], error: null });
    expect(records).toEqual([]);
    actor.stop();
  });

  it('retries only the failed items it is given, numbering their attempts on, and tells the run it completed again', () => {
    const records: ItemRecord[] = [];
    const notices: StageNotice[] = [];
    const actor = createActor(stageUnderTest(records, notices), { input: { ...INPUT, concurrency: 2 } });
    actor.start();
    actor.send({ type: 'start_requested' });
    actor.send({ type: 'xstate.done.actor.loader', actorId: 'loader', output: { total: 2, loadedAt: 1000 } });
    actor.send({ type: 'xstate.done.actor.item.0', actorId: 'item.0', output: { outcome: 'done', index: 0, cost: 1 } });
    actor.send({ type: 'xstate.done.actor.item.1', actorId: 'item.1', output: { outcome: 'error', index: 1, error: 'fatal', at: 2000, final: true } });
    expect(actor.getSnapshot().value).toBe('completed');
    expect(actor.getSnapshot().context).toMatchObject({ processed: 2, failed: 1 });
    actor.send({ type: 'retry_failed_requested', items: [{ index: 1, attempt: 1 }] });
    const retrying = actor.getSnapshot();
    expect(retrying.value).toBe('running');
    expect(retrying.context).toMatchObject({ processed: 1, failed: 0, active: [{ index: 1, attempt: 2, upTo: 1 + INPUT.maxAttempts }], retrying: [] });
    actor.send({ type: 'xstate.done.actor.item.1', actorId: 'item.1', output: { outcome: 'done', index: 1, cost: 2 } });
    const done = actor.getSnapshot();
    expect(done.value).toBe('completed');
    expect(done.context).toMatchObject({ processed: 2, failed: 0, creditsUsed: 3 });
    expect(records.map((r) => [r.index, r.status, r.attempts, r.retried])).toEqual([
      [0, 'done', 1, undefined],
      [1, 'failed', 1, undefined],
      [1, 'done', 2, true],
    ]);
    expect(notices).toEqual([
      { type: 'stage_completed', stage: 1 },
      { type: 'stage_completed', stage: 1 },
    ]);
    actor.stop();
  });

  it('names its states in STAGE_STATES, as the run names its own in RUN_STATES', () => {
    expect(machineGraph(stageMachine).states.map((s) => s.name).sort()).toEqual([...STAGE_STATES].sort());
    expect(machineGraph(runMachine).states.map((s) => s.name).sort()).toEqual([...RUN_STATES].sort());
    // The stage's final states: the run moves on from empty; cancelled ends it all. Completed is
    // not final: retry_failed takes it back to running.
    expect(machineGraph(stageMachine).states.filter((s) => s.final).map((s) => s.name)).toEqual(['empty', 'cancelled']);
  });

  it('backs off exponentially up to the cap', async () => {
    const { backoffDelay } = await import('../../machines/index.js');
    const policy = { backoffMs: 100, backoffMaxMs: 1000 };
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(policy, n))).toEqual([100, 200, 400, 800, 1000]);
  });
});
