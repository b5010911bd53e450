import { describe, expect, it } from 'vitest';
import { createActor, type SnapshotFrom } from 'xstate';
import {
  BACKOFF_MAX_MS,
  OPEN_FAILURES_BEFORE_POLLING,
  POLLING_RETRY_MS,
  backoff,
  connectionMachine,
} from '../../web/lib/connection.machine.js';
import { allTransitions, transitionCollector } from '../helpers/coverage.js';
import { edgePaths } from '../helpers/paths.js';

type Snap = SnapshotFrom<typeof connectionMachine>;

/** Everything the page can tell the machine, with the clock at 1,000 ms per step. */
function eventsFor(snap: Snap) {
  const at = 1000 * (snap.context.attempt + 1);
  return [
    { type: 'socket.opened', at },
    { type: 'socket.synced', at },
    { type: 'socket.closed', at, opened: true, jitter: 0.5 },
    { type: 'socket.closed', at, opened: false, jitter: 0.25 },
    { type: 'retry.due', at },
    { type: 'network.offline', at },
    { type: 'network.online', at },
    { type: 'seq.applied', seq: snap.context.lastSeq + 1 },
  ] as never[];
}

function serialize(snap: Snap): string {
  const { attempt, neverOpened, retryInMs, lastSeq } = snap.context;
  // Counters only grow: bounded here so the state space is finite, past where behaviour changes.
  return JSON.stringify([snap.value, Math.min(attempt, 4), Math.min(neverOpened, OPEN_FAILURES_BEFORE_POLLING + 1), retryInMs > 0, lastSeq > 0]);
}

describe('connection machine, model-based', () => {
  const paths = edgePaths<Snap, never>(connectionMachine, { input: { now: 0 }, events: eventsFor, serializeState: serialize, limit: 50_000 } as never);

  it('reaches every state', () => {
    const reached = new Set(paths.flatMap((p) => p.steps.map((s) => String(s.state.value))));
    expect([...reached].sort()).toEqual(['connecting', 'live', 'offline', 'polling', 'reconnecting', 'resyncing']);
  });

  it('keeps its promises on every path and takes every transition', () => {
    const coverage = transitionCollector('connection');
    for (const path of paths) {
      const actor = createActor(connectionMachine, { input: { now: 0 }, inspect: coverage.inspect });
      actor.start();
      let prev = actor.getSnapshot();
      for (const step of path.steps) {
        actor.send(step.event);
        const snap = actor.getSnapshot();
        const where = `${path.description} at ${String(snap.value)}`;
        expect(serialize(snap), where).toBe(serialize(step.state));
        const e = step.event as { type: string; at?: number };
        // The page shows since when it is in its state.
        if (snap.value !== prev.value && e.at !== undefined) expect(snap.context.since, where).toBe(e.at);
        // Live means no failure is counted; a resume picks up after the last seq applied.
        if (snap.value === 'live') expect(snap.context.attempt, where).toBe(0);
        expect(snap.context.lastSeq, where).toBeGreaterThanOrEqual(prev.context.lastSeq);
        if (snap.value === 'reconnecting') {
          expect(snap.context.retryInMs, where).toBe(backoff(snap.context.attempt, snap.context.jitter));
          expect(snap.context.retryInMs, where).toBeLessThanOrEqual(BACKOFF_MAX_MS);
        }
        if (snap.value === 'polling') {
          expect(snap.context.neverOpened, where).toBeGreaterThanOrEqual(OPEN_FAILURES_BEFORE_POLLING);
          expect(snap.context.retryInMs, where).toBe(POLLING_RETRY_MS);
        }
        prev = snap;
      }
      actor.stop();
    }
    expect([...allTransitions(connectionMachine)].filter((t) => !coverage.taken.has(t))).toEqual([]);
  });

  it('backs off exponentially with jitter, capped', () => {
    expect([1, 2, 3, 4].map((a) => backoff(a, 0))).toEqual([250, 500, 1000, 2000]);
    expect([1, 2, 3, 4].map((a) => backoff(a, 1))).toEqual([500, 1000, 2000, 4000]);
    expect(backoff(20, 1)).toBe(BACKOFF_MAX_MS);
  });
});
