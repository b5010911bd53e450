// The dashboard's connection to the hub, as a machine: the page always shows which state it
// is in and since when. Pure: the WebSocket, timers and the clock live in the hook that drives
// it (use-run-stream.ts), which sends it what happened and reads `retryInMs` for its timer.
import { assertEvent, assign, setup } from 'xstate';

export interface ConnectionContext {
  /** Failed connections in a row (reset when live). */
  attempt: number;
  /** Connections in a row that never opened: past `OPEN_FAILURES_BEFORE_POLLING`, poll instead. */
  neverOpened: number;
  /** When the current state began (epoch ms, from the hook's clock). */
  since: number;
  /** How long to wait before the next attempt, in the reconnecting and polling states. */
  retryInMs: number;
  /** The last seq applied: a reconnect resumes after it. */
  lastSeq: number;
  /** A random number in [0, 1) for the jitter, given by the hook (machines own no randomness). */
  jitter: number;
}

export type ConnectionEvent =
  | { type: 'socket.opened'; at: number }
  | { type: 'socket.synced'; at: number }
  | { type: 'socket.closed'; at: number; opened: boolean; jitter: number }
  | { type: 'retry.due'; at: number }
  | { type: 'network.offline'; at: number }
  | { type: 'network.online'; at: number }
  | { type: 'seq.applied'; seq: number };

export const BACKOFF_MS = 500;
export const BACKOFF_MAX_MS = 15_000;
export const OPEN_FAILURES_BEFORE_POLLING = 3;
/** While polling, try the WebSocket again this often. */
export const POLLING_RETRY_MS = 30_000;

/** Exponential backoff with "equal jitter": half fixed, half random, capped. */
export function backoff(attempt: number, jitter: number): number {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MS * 2 ** Math.max(0, attempt - 1));
  return Math.round(base / 2 + (base / 2) * jitter);
}

const at = ({ event }: { event: ConnectionEvent }) => ('at' in event ? event.at : 0);

export const connectionMachine = setup({
  types: {
    context: {} as ConnectionContext,
    events: {} as ConnectionEvent,
    input: {} as { now: number; lastSeq?: number },
  },
  actions: {
    markSince: assign({ since: at }),
    countFailure: assign(({ context, event }) => {
      assertEvent(event, 'socket.closed');
      const attempt = context.attempt + 1;
      return { attempt, neverOpened: event.opened ? 0 : context.neverOpened + 1, retryInMs: backoff(attempt, event.jitter), jitter: event.jitter };
    }),
    resetFailures: assign({ attempt: 0, neverOpened: 0, retryInMs: 0 }),
    pollingRetry: assign({ retryInMs: POLLING_RETRY_MS }),
    applySeq: assign({
      lastSeq: ({ context, event }) => {
        assertEvent(event, 'seq.applied');
        return Math.max(context.lastSeq, event.seq);
      },
    }),
  },
  guards: {
    wsUnavailable: ({ context, event }) => {
      assertEvent(event, 'socket.closed');
      return !event.opened && context.neverOpened + 1 >= OPEN_FAILURES_BEFORE_POLLING;
    },
  },
}).createMachine({
  id: 'connection',
  context: ({ input }) => ({ attempt: 0, neverOpened: 0, since: input.now, retryInMs: 0, lastSeq: input.lastSeq ?? 0, jitter: 0 }),
  initial: 'connecting',
  on: {
    'network.offline': { target: '.offline', actions: 'markSince' },
    'seq.applied': { actions: 'applySeq' },
  },
  states: {
    /** Opening the socket. */
    connecting: {
      on: {
        'socket.opened': { target: 'resyncing', actions: 'markSince' },
        'socket.closed': [
          { guard: 'wsUnavailable', target: 'polling', actions: ['countFailure', 'pollingRetry', 'markSince'] },
          { target: 'reconnecting', actions: ['countFailure', 'markSince'] },
        ],
      },
    },
    /** Open; catching up from the last seq (or a snapshot) before calling itself live. */
    resyncing: {
      on: {
        'socket.synced': { target: 'live', actions: ['resetFailures', 'markSince'] },
        'socket.closed': { target: 'reconnecting', actions: ['countFailure', 'markSince'] },
      },
    },
    live: {
      on: {
        'socket.closed': { target: 'reconnecting', actions: ['countFailure', 'markSince'] },
      },
    },
    /** Waiting out the backoff (`retryInMs`) before the next attempt. */
    reconnecting: {
      on: { 'retry.due': { target: 'connecting', actions: 'markSince' } },
    },
    /** The WebSocket cannot be opened here (a proxy?): the run and current_processing over HTTP every 3 s instead. */
    polling: {
      on: { 'retry.due': { target: 'connecting', actions: 'markSince' } },
    },
    /** The browser says it has no network. */
    offline: {
      on: {
        'network.online': { target: 'connecting', actions: ['resetFailures', 'markSince'] },
        'network.offline': {},
      },
    },
  },
});

export type ConnectionState = 'connecting' | 'resyncing' | 'live' | 'reconnecting' | 'polling' | 'offline';

export const CONNECTION_LABEL: Record<ConnectionState, string> = {
  connecting: 'Connecting',
  resyncing: 'Resyncing',
  live: 'Live',
  reconnecting: 'Reconnecting',
  polling: 'Polling every 3 s (no WebSocket)',
  offline: 'Offline',
};
