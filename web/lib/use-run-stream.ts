'use client';
// One run, live: the connection machine, the WebSocket it stands for, and everything around
// them (backoff timers, the polling fallback, the copy kept in the browser for the next reload).
// One socket holds two subscriptions of the run's topic: view mode, whose frames are the
// server's view of the run (what the card, the timeline and the buttons render), and event
// mode, whose events only feed the log. Events wait for the next animation frame, so a burst
// of 1,000 events a second is one render a frame; views come at most `VIEW_HZ` a second. The
// log holds the run's last `LOG_EVENTS` events: never the whole of a long run.
import { useActorRef, useSelector } from '@xstate/react';
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import type { ServerMessage } from '../../service/hub/frames.js';
import type { Api } from './api.js';
import { connectionMachine, type ConnectionState } from './connection.machine.js';
import { EMPTY_LOG, appendEvents, logAtSnapshot, withHistory, withView, type EventLogModel, type RunModel, type ServerView, type ShownView, type StoredEvent } from './run-model.js';

/** The polling fallback's period (docs: only while no WebSocket gets through). */
const POLL_MS = 3000;
/** Views a second the card asks for: smooth enough for a bar, cheap for the server. */
export const VIEW_HZ = 10;
const CACHE_EVENTS = 500;
/** Events before a snapshot that the log shows: the rest stays in the trace. */
const HISTORY_EVENTS = 2000;
/**
 * Events the page holds at most: a run that goes on for hours at 1,000 events a second would
 * otherwise grow the page without end. The older ones stay in the trace.
 */
export const LOG_EVENTS = 10_000;

/** The log without its oldest events past `LOG_EVENTS`. */
function bounded(log: EventLogModel): EventLogModel {
  return log.events.length > LOG_EVENTS ? { ...log, events: log.events.slice(-LOG_EVENTS) } : log;
}

interface Cached {
  model: RunModel;
  savedAt: number;
}

function cacheKey(runId: string): string {
  return `runstate:run:${runId}`;
}

function loadCached(runId: string): RunModel | null {
  try {
    const raw = localStorage.getItem(cacheKey(runId));
    const cached = raw ? (JSON.parse(raw) as Partial<Cached>).model : undefined;
    // A copy from before views came from the server has no `view`: start without it.
    return cached?.view && cached.log ? cached : null;
  } catch {
    return null;
  }
}

export interface RunStream {
  model: RunModel | null;
  /** Shown from the browser's copy, not yet confirmed by the server. */
  stale: boolean;
  connection: { state: ConnectionState; since: number; retryInMs: number; attempt: number };
  error: string | null;
}

export function useRunStream(runId: string, token: string, api: Api): RunStream {
  const [cached] = useState(() => (typeof window === 'undefined' ? null : loadCached(runId)));
  // The view and the log arrive on two subscriptions, in either order: each has its own state.
  const [shown, setShown] = useState<ShownView | null>(() => (cached ? { view: cached.view, inFlightSince: cached.inFlightSince } : null));
  const [log, setLog] = useState<EventLogModel>(cached?.log ?? EMPTY_LOG);
  const [stale, setStale] = useState<boolean>(() => cached !== null);
  const [error, setError] = useState<string | null>(null);
  const logRef = useRef(log);
  logRef.current = log;

  const actor = useActorRef(connectionMachine, { input: { now: Date.now(), lastSeq: log.seq } });
  const state = useSelector(actor, (s) => s.value as ConnectionState);
  const since = useSelector(actor, (s) => s.context.since);
  const retryInMs = useSelector(actor, (s) => s.context.retryInMs);
  const attempt = useSelector(actor, (s) => s.context.attempt);

  const takeView = useCallback((view: ServerView) => setShown((m) => withView(m, view, Date.now())), []);

  // Events wait here for the next frame.
  const pending = useRef<StoredEvent[]>([]);
  const frame = useRef<number | null>(null);
  const flush = useCallback(() => {
    frame.current = null;
    const batch = pending.current;
    pending.current = [];
    if (batch.length === 0) return;
    setLog((l) => bounded(appendEvents(l, batch)));
    actor.send({ type: 'seq.applied', seq: batch[batch.length - 1]!.seq });
  }, [actor]);

  // The socket, from `connecting` through `resyncing` and `live`; closed for anything else.
  const socketWanted = state === 'connecting' || state === 'resyncing' || state === 'live';
  useEffect(() => {
    if (!socketWanted) return;
    const proto = window.location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${proto}://${window.location.host}/ws?token=${encodeURIComponent(token)}`);
    const topic = `run:${runId}`;
    let opened = false;
    let synced = false;
    // In sync once the server's view is here and the log has caught up with it: the events
    // subscription's snapshot, or its replay reaching the first view's seq.
    let viewSeq: number | null = null;
    let logSeq = logRef.current.seq;
    let logCaughtUp = false;
    const checkSynced = () => {
      if (synced || viewSeq === null || !(logCaughtUp || logSeq >= viewSeq)) return;
      synced = true;
      setStale(false);
      actor.send({ type: 'socket.synced', at: Date.now() });
    };
    ws.onopen = () => {
      opened = true;
      actor.send({ type: 'socket.opened', at: Date.now() });
      ws.send(JSON.stringify({ type: 'subscribe', topic, mode: 'view', max_hz: VIEW_HZ }));
      const after = logRef.current.seq;
      ws.send(JSON.stringify({ type: 'subscribe', topic, ...(after ? { after_seq: after } : {}) }));
    };
    ws.onmessage = (msg) => {
      const m = JSON.parse(String(msg.data)) as ServerMessage;
      if (m.type === 'view') {
        viewSeq ??= m.seq;
        takeView({ run: m.run, processing: m.processing, seq: m.seq });
        checkSynced();
      } else if ((m.type === 'snapshot' || m.type === 'reset') && 'seq' in m) {
        // The events subscription starts (or starts over) here; the log goes on from `seq`.
        const at = m.seq;
        pending.current = [];
        logSeq = at;
        logCaughtUp = true;
        const reset = m.type === 'reset';
        setLog((l) => logAtSnapshot(l, at, reset));
        actor.send({ type: 'seq.applied', seq: at });
        checkSynced();
        // The log shows what happened before the snapshot too (its last HISTORY_EVENTS).
        void api.trace(runId, Math.max(0, at - HISTORY_EVENTS)).then(
          (history) => setLog((l) => withHistory(l, history)),
          (err: Error) => setError(err.message),
        );
      } else if (m.type === 'event') {
        pending.current.push(m.event);
        logSeq = Math.max(logSeq, m.seq);
        frame.current ??= requestAnimationFrame(flush);
        checkSynced();
      } else if (m.type === 'error') setError(m.message);
    };
    ws.onclose = () => {
      actor.send({ type: 'socket.closed', at: Date.now(), opened, jitter: Math.random() });
    };
    return () => {
      ws.onclose = null;
      ws.close();
    };
  }, [socketWanted, runId, token, actor, flush, takeView, api]);

  // Backoff and the occasional WebSocket retry while polling.
  useEffect(() => {
    if (state !== 'reconnecting' && state !== 'polling') return;
    const t = setTimeout(() => actor.send({ type: 'retry.due', at: Date.now() }), retryInMs);
    return () => clearTimeout(t);
  }, [state, retryInMs, actor]);

  // No WebSocket gets through: the same two views over HTTP every 3 s, until one does.
  useEffect(() => {
    if (state !== 'polling') return;
    const poll = async () => {
      try {
        const [run, processing] = await Promise.all([api.run(runId), api.processing(runId)]);
        takeView({ run, processing, seq: run.last_seq });
        setStale(false);
      } catch (err) {
        setError((err as Error).message);
      }
    };
    void poll();
    const t = setInterval(() => void poll(), POLL_MS);
    return () => clearInterval(t);
  }, [state, api, runId, takeView]);

  // The browser's network.
  useEffect(() => {
    const off = () => actor.send({ type: 'network.offline', at: Date.now() });
    const on = () => actor.send({ type: 'network.online', at: Date.now() });
    window.addEventListener('offline', off);
    window.addEventListener('online', on);
    return () => {
      window.removeEventListener('offline', off);
      window.removeEventListener('online', on);
    };
  }, [actor]);

  const model = useMemo<RunModel | null>(() => (shown ? { ...shown, log } : null), [shown, log]);

  // Keep a copy for the next reload, at most once a second.
  useEffect(() => {
    if (!model) return;
    const t = setTimeout(() => {
      try {
        const slim: RunModel = { ...model, log: { seq: model.log.seq, events: model.log.events.slice(-CACHE_EVENTS) } };
        localStorage.setItem(cacheKey(runId), JSON.stringify({ model: slim, savedAt: Date.now() } satisfies Cached));
      } catch {
        // Storage full or denied: the page works without it.
      }
    }, 1000);
    return () => clearTimeout(t);
  }, [model, runId]);

  return { model, stale, connection: { state, since, retryInMs, attempt }, error };
}
