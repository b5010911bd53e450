'use client';
// One run, live: the connection machine, the WebSocket it stands for, the model the events
// fold into, and everything around them (backoff timers, polling fallback, the copy kept in
// the browser for the next reload). Rendering is coalesced: events wait for the next
// animation frame, so a burst of 1,000 events a second is one render a frame.
import { useActorRef, useSelector } from '@xstate/react';
import { useCallback, useEffect, useRef, useState } from 'react';
import type { Api } from './api.js';
import { connectionMachine, type ConnectionState } from './connection.machine.js';
import { applyEvents, modelFrom, withProcessing, type ProcessingView, type RunModel, type RunView, type StoredEvent } from './run-model.js';

const POLL_MS = 3000;
const PROCESSING_REFRESH_MS = 500;
const CACHE_EVENTS = 500;
/** Events before a snapshot that the log shows: the rest stays in the trace. */
const HISTORY_EVENTS = 2000;

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
    return raw ? (JSON.parse(raw) as Cached).model : null;
  } catch {
    return null;
  }
}

export interface RunStream {
  model: RunModel | null;
  /** Shown from the browser's copy, not yet confirmed by the server. */
  stale: boolean;
  connection: { state: ConnectionState; since: number; retryInMs: number; attempt: number };
  lastProcessing: ProcessingView | null;
  error: string | null;
}

export function useRunStream(runId: string, token: string, api: Api): RunStream {
  const [model, setModel] = useState<RunModel | null>(() => (typeof window === 'undefined' ? null : loadCached(runId)));
  const [stale, setStale] = useState<boolean>(() => model !== null);
  const [lastProcessing, setLastProcessing] = useState<ProcessingView | null>(null);
  const [error, setError] = useState<string | null>(null);
  const modelRef = useRef(model);
  modelRef.current = model;

  const actor = useActorRef(connectionMachine, { input: { now: Date.now(), lastSeq: model?.seq ?? 0 } });
  const state = useSelector(actor, (s) => s.value as ConnectionState);
  const since = useSelector(actor, (s) => s.context.since);
  const retryInMs = useSelector(actor, (s) => s.context.retryInMs);
  const attempt = useSelector(actor, (s) => s.context.attempt);

  // Events wait here for the next frame.
  const pending = useRef<StoredEvent[]>([]);
  const frame = useRef<number | null>(null);
  const flush = useCallback(() => {
    frame.current = null;
    const batch = pending.current;
    pending.current = [];
    if (batch.length === 0) return;
    setModel((m) => (m ? applyEvents(m, batch) : m));
    actor.send({ type: 'seq.applied', seq: batch[batch.length - 1]!.seq });
  }, [actor]);

  const refreshProcessing = useCallback(async () => {
    try {
      // An external run's stages are the states its engine reports: the events alone do not
      // say where they go in the view, so the view comes along.
      const external = modelRef.current?.run.pipeline === 'external';
      const [p, run] = await Promise.all([api.processing(runId), external ? api.run(runId) : Promise.resolve(null)]);
      setLastProcessing(p);
      setModel((m) => (m ? withProcessing(run ? { ...m, run: { ...run, last_seq: Math.max(run.last_seq, m.seq) } } : m, p, Date.now()) : m));
    } catch (err) {
      setError((err as Error).message);
    }
  }, [api, runId]);

  // The socket, from `connecting` through `resyncing` and `live`; closed for anything else.
  const socketWanted = state === 'connecting' || state === 'resyncing' || state === 'live';
  useEffect(() => {
    if (!socketWanted) return;
    const proto = window.location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${proto}://${window.location.host}/ws?token=${encodeURIComponent(token)}`);
    let opened = false;
    let synced = false;
    let quiet: ReturnType<typeof setTimeout> | null = null;
    const markSynced = () => {
      if (synced) return;
      synced = true;
      setStale(false);
      actor.send({ type: 'socket.synced', at: Date.now() });
    };
    ws.onopen = () => {
      opened = true;
      actor.send({ type: 'socket.opened', at: Date.now() });
      const after = modelRef.current?.seq;
      ws.send(JSON.stringify({ type: 'subscribe', topic: `run:${runId}`, ...(after ? { after_seq: after } : {}) }));
      // A replay with nothing to catch up sends nothing: quiet for a moment means caught up.
      quiet = setTimeout(markSynced, 300);
    };
    ws.onmessage = (msg) => {
      const m = JSON.parse(String(msg.data)) as { type: string; seq?: number; run?: RunView & { processing: ProcessingView | null }; event?: StoredEvent; message?: string };
      if (m.type === 'snapshot' || m.type === 'reset') {
        const { processing, ...run } = m.run!;
        pending.current = [];
        const at = m.seq!;
        setModel((prev) => modelFrom(run, processing, at, m.type === 'reset' ? [] : (prev?.events ?? []).filter((e) => e.seq <= at)));
        actor.send({ type: 'seq.applied', seq: at });
        markSynced();
        void refreshProcessing();
        // The log shows what happened before the snapshot too (its last HISTORY_EVENTS).
        void api.trace(runId, Math.max(0, at - HISTORY_EVENTS)).then(
          (history) =>
            setModel((cur) => {
              if (!cur) return cur;
              const have = new Set(cur.events.map((e) => e.seq));
              const before = history.filter((e) => e.seq <= at && !have.has(e.seq));
              return { ...cur, events: [...before, ...cur.events].sort((a, b) => a.seq - b.seq) };
            }),
          (err: Error) => setError(err.message),
        );
      } else if (m.type === 'event' && m.event) {
        pending.current.push(m.event);
        frame.current ??= requestAnimationFrame(flush);
        if (!synced) {
          if (quiet) clearTimeout(quiet);
          quiet = setTimeout(markSynced, 150);
        }
      } else if (m.type === 'error') setError(m.message ?? 'error');
    };
    ws.onclose = () => {
      if (quiet) clearTimeout(quiet);
      actor.send({ type: 'socket.closed', at: Date.now(), opened, jitter: Math.random() });
    };
    return () => {
      ws.onclose = null;
      ws.close();
      if (quiet) clearTimeout(quiet);
    };
  }, [socketWanted, runId, token, actor, flush, refreshProcessing, api]);

  // Backoff and the occasional WebSocket retry while polling.
  useEffect(() => {
    if (state !== 'reconnecting' && state !== 'polling') return;
    const t = setTimeout(() => actor.send({ type: 'retry.due', at: Date.now() }), retryInMs);
    return () => clearTimeout(t);
  }, [state, retryInMs, actor]);

  // No WebSocket: the run and its card over HTTP every 3 s.
  useEffect(() => {
    if (state !== 'polling') return;
    const poll = async () => {
      try {
        const [run, p] = await Promise.all([api.run(runId), api.processing(runId)]);
        setLastProcessing(p);
        setModel((m) => withProcessing(m ? { ...m, run, seq: Math.max(m.seq, run.last_seq) } : modelFrom(run, p, run.last_seq), p, Date.now()));
        setStale(false);
      } catch (err) {
        setError((err as Error).message);
      }
    };
    void poll();
    const t = setInterval(() => void poll(), POLL_MS);
    return () => clearInterval(t);
  }, [state, api, runId]);

  // Items in flight and up next come from the server, refreshed while the run moves.
  const status = model?.run.status;
  const seq = model?.seq;
  useEffect(() => {
    if (state !== 'live' || status !== 'running') return;
    const t = setTimeout(() => void refreshProcessing(), PROCESSING_REFRESH_MS);
    return () => clearTimeout(t);
  }, [state, status, seq, refreshProcessing]);

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

  // Keep a copy for the next reload, at most once a second.
  useEffect(() => {
    if (!model) return;
    const t = setTimeout(() => {
      try {
        const slim = { ...model, events: model.events.slice(-CACHE_EVENTS) };
        localStorage.setItem(cacheKey(runId), JSON.stringify({ model: slim, savedAt: Date.now() } satisfies Cached));
      } catch {
        // Storage full or denied: the page works without it.
      }
    }, 1000);
    return () => clearTimeout(t);
  }, [model, runId]);

  return { model, stale, connection: { state, since, retryInMs, attempt }, lastProcessing, error };
}
