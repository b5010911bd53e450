import { describe, expect, it } from 'vitest';
import { createActor, fromPromise, type AnyActorRef, type SnapshotFrom } from 'xstate';
import { runMachine, stageMachine, type StageContext } from '../../machines/index.js';
import { allTransitions, transitionCollector } from '../helpers/coverage.js';
import { edgePaths } from '../helpers/paths.js';

type RunSnapshot = SnapshotFrom<typeof runMachine>;

const STAGE = { concurrency: 1, maxAttempts: 2, backoffMs: 10, backoffMaxMs: 100 };
const INPUT = { runId: 'run_20250101_000000_manual', stages: [STAGE, STAGE] };
/** Both stages wait for approval: the first before the run starts, the second between stages. */
const GATED = { runId: 'run_20250101_000000_manual', stages: [{ ...STAGE, approval: true }, { ...STAGE, approval: true }] };

const never = fromPromise(() => new Promise<never>(() => {}));
const runUnderTest = runMachine.provide({
  actors: { stage: stageMachine.provide({ actors: { loadItems: never, processItem: never, wait: never } as never }) },
});

/** A failed item of `stage`, as the service finds it in the ledger. */
const failedOf = (stage: number) => ({ stage, items: [{ index: 0, attempt: 2 }] });

/** Commands, plus what the current stage can tell the run. */
function eventsFor(snap: RunSnapshot) {
  const { current } = snap.context;
  // retry_failed: in a completed run any stage may have failed items (or none: refused); in a failed one, those before it.
  const retries = snap.value === 'completed' ? [[failedOf(1), failedOf(2)], [{ stage: 1, items: [] }, failedOf(2)], []] : [[failedOf(1)]];
  return [
    ...retries.map((stages) => ({ type: 'retry_failed_requested', stages })),
    { type: 'stage_completed', stage: current },
    { type: 'start_requested' },
    { type: 'pause_requested' },
    { type: 'resume_requested' },
    { type: 'cancel_requested' },
    { type: 'retry_requested' },
    { type: 'approve_requested' },
    { type: 'reject_requested' },
    { type: `xstate.done.actor.stage.${current}`, actorId: `stage.${current}`, output: { stage: current, processed: 1, failed: 0 } },
    { type: 'stage_paused', stage: current },
    { type: 'stage_failed', stage: current, error: 'source unavailable' },
  ] as never[];
}

function serialize(snap: RunSnapshot): string {
  const { current, pauseRequested, betweenStages, error, retry } = snap.context;
  return JSON.stringify([snap.value, current, pauseRequested, betweenStages, error, retry]);
}

function stageOf(snap: RunSnapshot, n: number): { value: string; context: StageContext } | undefined {
  const child = snap.children[`stage.${n}`] as AnyActorRef | undefined;
  return child?.getSnapshot() as { value: string; context: StageContext } | undefined;
}

describe('run machine, model-based', () => {
  // Every transition is taken by one of two pipelines: one with no approval gates, one whose
  // every stage has one (so both the gate before stage 1 and the gates between stages are met).
  const models = [INPUT, GATED].map((input) => ({
    input,
    paths: edgePaths<RunSnapshot, never>(runUnderTest, { input, events: eventsFor, serializeState: serialize }),
  }));

  it('reaches every state of the run', () => {
    const reached = new Set(models.flatMap((m) => m.paths.flatMap((p) => p.steps.map((s) => String(s.state.value)))));
    expect([...reached].sort()).toEqual(['awaiting_approval', 'cancelled', 'completed', 'failed', 'idle', 'paused', 'running']);
  });

  it('never waits for approval on a pipeline without gates', () => {
    const reached = new Set(models[0]!.paths.flatMap((p) => p.steps.map((s) => String(s.state.value))));
    expect(reached.has('awaiting_approval')).toBe(false);
  });

  it('stays cancelled when the cancelled stage reports that it is done', () => {
    const heard: string[] = [];
    const actor = createActor(runUnderTest, {
      input: INPUT,
      inspect: (ev) => {
        if (ev.type === '@xstate.event' && ev.actorRef === actor) heard.push(ev.event.type);
      },
    });
    actor.start();
    actor.send({ type: 'start_requested' });
    actor.send({ type: 'cancel_requested' });
    const snap = actor.getSnapshot();
    expect(snap.value).toBe('cancelled');
    expect(stageOf(snap, 1)!.value).toBe('cancelled');
    expect(snap.children['stage.1']!.getSnapshot().status).toBe('done');
    // The stage's done event arrived after the cancel and moved nothing.
    expect(heard.slice(heard.indexOf('cancel_requested'))).toEqual(['cancel_requested', 'xstate.done.actor.stage.1']);
    expect(snap.context.current).toBe(1);
    // Stage 2 never started: it has no actor, and the view shows it \`pending\`.
    expect(stageOf(snap, 2)).toBeUndefined();
    actor.send({ type: 'retry_requested' });
    actor.send({ type: 'resume_requested' });
    expect(actor.getSnapshot().value).toBe('cancelled');
    expect(stageOf(actor.getSnapshot(), 1)!.value).toBe('cancelled');
    actor.stop();
  });

  it('keeps its promises on every path and takes every transition', () => {
    const coverage = transitionCollector('run');
    for (const { input: INPUT, paths } of models) for (const path of paths) {
      const actor = createActor(runUnderTest, { input: INPUT, inspect: coverage.inspect });
      actor.start();
      let prev = actor.getSnapshot();
      let started = false;
      for (const step of path.steps) {
        actor.send(step.event);
        const snap = actor.getSnapshot();
        const ctx = snap.context;
        const where = `${path.description} at ${String(snap.value)}`;
        expect(serialize(snap), where).toBe(serialize(step.state));
        // The run goes through its stages in order; a retry_failed goes back to earlier ones and returns.
        if (ctx.retry === null && prev.context.retry === null) expect(ctx.current, where).toBeGreaterThanOrEqual(prev.context.current);
        expect(ctx.current, where).toBeLessThanOrEqual(INPUT.stages.length);
        if (ctx.betweenStages) expect(snap.value, where).toBe('paused');
        if (snap.value === 'paused') expect(ctx.pauseRequested, where).toBe(false);
        if (snap.value === 'completed') expect(ctx.current, where).toBe(INPUT.stages.length);
        started ||= prev.value === 'idle' && snap.value === 'running';
        if (started && ctx.retry === null) {
          // A stage's actor is spawned when the stage starts: every stage before the current one
          // has one; none after it has (each is \`pending\`, as the view shows a stage with no actor).
          for (let n = 1; n < ctx.current; n++) expect(stageOf(snap, n), `${where}: stage ${n}`).toBeDefined();
          for (let n = ctx.current + 1; n <= INPUT.stages.length; n++) expect(stageOf(snap, n), `${where}: stage ${n}`).toBeUndefined();
          // The current stage has one unless it waits for approval (it has not started).
          if (snap.value !== 'awaiting_approval') expect(stageOf(snap, ctx.current), where).toBeDefined();
        }
        const stage = stageOf(snap, ctx.current);
        // Commands reach the stage the run is on.
        if (snap.value === 'running' && prev.value === 'idle') expect(stage!.value, where).toBe('loading');
        if (snap.value === 'running' && ctx.pauseRequested && stage!.value === 'loading') {
          expect(stage!.context.pauseRequested, where).toBe(true);
        }
        // A cancel reaches the stage at work, which ends `cancelled`; its done event then finds
        // the run already cancelled, and the run stays so.
        const before = String(prev.children[`stage.${ctx.current}`]?.getSnapshot().value);
        if (snap.value === 'cancelled' && prev.value !== 'cancelled' && ['loading', 'running', 'pausing', 'paused', 'failed'].includes(before)) {
          expect(stage!.value, where).toBe('cancelled');
          expect(stage!.context.error, where).toBe(before === 'failed' ? stageOf(prev, ctx.current)!.context.error : null);
        }
        // Once cancelled, a stage stays cancelled, whatever the run is sent next.
        for (let n = 1; n <= INPUT.stages.length; n++) {
          if (stageOf(prev, n)?.value === 'cancelled') expect(stageOf(snap, n)!.value, `${where}: stage ${n}`).toBe('cancelled');
        }
        if (snap.value === 'failed') expect(ctx.error, where).toBe('source unavailable');
        // A gate holds the stage it guards: that stage has not started, and it is a gated one.
        if (snap.value === 'awaiting_approval') {
          expect(INPUT.stages[ctx.current - 1], where).toMatchObject({ approval: true });
          expect(stage, where).toBeUndefined();
          expect(ctx.betweenStages, where).toBe(false);
        }
        // Approval starts the stage it held; a stage with a gate never starts without one.
        if (prev.value === 'awaiting_approval' && snap.value === 'running') {
          expect(step.event, where).toMatchObject({ type: 'approve_requested' });
          expect(stage!.value, where).toBe('loading');
        }
        const startedNow = stageOf(prev, ctx.current) === undefined && stage?.value === 'loading';
        if (startedNow && 'approval' in INPUT.stages[ctx.current - 1]!) expect(prev.value, where).toBe('awaiting_approval');
        // Reject ends the run as cancelled; in any other state it changes nothing.
        if ((step.event as { type: string }).type === 'reject_requested' && prev.value !== 'awaiting_approval') expect(snap.value, where).toBe(prev.value);
        if (prev.value === 'awaiting_approval' && (step.event as { type: string }).type === 'reject_requested') expect(snap.value, where).toBe('cancelled');
        // retry_failed takes a finished run back to work on the stages named, in order, then back to where it was.
        const type = (step.event as { type: string }).type;
        if (type === 'retry_failed_requested' && snap.value !== prev.value) {
          const { stages } = step.event as unknown as { stages: { stage: number; items: unknown[] }[] };
          expect(['completed', 'failed'], where).toContain(prev.value);
          expect(snap.value, where).toBe('running');
          expect(ctx.retry, where).toMatchObject({ then: prev.value, current: prev.context.current, error: prev.context.error });
          // A stage with no items to retry is passed over.
          expect(ctx.current, where).toBe(stages.find((x) => x.items.length > 0)!.stage);
          expect(ctx.error, where).toBeNull();
        }
        if (type === 'retry_failed_requested' && (step.event as unknown as { stages: unknown[] }).stages.length === 0) {
          expect(serialize(snap), where).toBe(serialize(prev));
        }
        if (prev.context.retry !== null && ctx.retry === null && snap.value !== 'cancelled') {
          expect(snap.value, where).toBe(prev.context.retry.then);
          expect(ctx.current, where).toBe(prev.context.retry.current);
          expect(ctx.error, where).toBe(prev.context.retry.error);
        }
        if (ctx.retry !== null) expect(['running', 'paused', 'failed', 'cancelled'], where).toContain(snap.value);
        prev = snap;
      }
      actor.stop();
    }
    const missing = [...allTransitions(runMachine)].filter((t) => !coverage.taken.has(t));
    expect(missing).toEqual([]);
  });
});
