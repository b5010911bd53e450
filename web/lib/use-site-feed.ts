'use client';
// Every run the token may see, live: one listing over HTTP when the page opens (closed runs
// too), then the hub's `site:*` feed (a snapshot of the open runs, then each run that
// changes). No polling; after a drop the socket comes back with backoff, a fresh snapshot and
// one more listing.
import { useCallback, useEffect, useState } from 'react';
import type { ServerMessage } from '../../service/hub/frames.js';
import type { Api } from './api.js';
import { backoff } from './connection.machine.js';
import type { RunView } from './run-model.js';
import { mergeRuns } from './runs-list.js';

/** Runs the first listing asks for (the API's most). */
const LISTED = 500;

export interface SiteFeed {
  runs: ReadonlyMap<string, RunView>;
  live: boolean;
  error: string | null;
  /** The listing may have older runs than those loaded. */
  older: boolean;
  /** Loads the next page of older runs (`GET /runs?before=`). */
  loadOlder: () => void;
}

export function useSiteFeed(token: string | null, api: Api | null): SiteFeed {
  const [runs, setRuns] = useState<ReadonlyMap<string, RunView>>(new Map());
  const [live, setLive] = useState(false);
  const [error, setError] = useState<string | null>(null);
  /** The oldest run listed so far, and whether its page was full (so more may follow). */
  const [oldest, setOldest] = useState<{ runId: string; full: boolean } | null>(null);
  const [loading, setLoading] = useState(false);

  useEffect(() => {
    if (!token || !api) return;
    const list = () =>
      api.runs({ limit: LISTED }).then(
        (listed) => {
          setRuns((m) => mergeRuns(m, listed));
          setOldest((o) => o ?? (listed.length ? { runId: listed[listed.length - 1]!.run_id, full: listed.length === LISTED } : null));
        },
        (err: Error) => setError(err.message),
      );
    void list();
    let snapshots = 0;
    let ws: WebSocket | null = null;
    let retry: ReturnType<typeof setTimeout> | null = null;
    let attempt = 0;
    let stopped = false;
    const open = () => {
      const proto = window.location.protocol === 'https:' ? 'wss' : 'ws';
      const socket = new WebSocket(`${proto}://${window.location.host}/ws?token=${encodeURIComponent(token)}`);
      ws = socket;
      socket.onopen = () => socket.send(JSON.stringify({ type: 'subscribe', topic: 'site:*' }));
      socket.onmessage = (msg) => {
        const m = JSON.parse(String(msg.data)) as ServerMessage;
        if (m.type === 'snapshot' && 'runs' in m) {
          // After a drop, the runs that closed meanwhile are no longer in the snapshot: list again.
          if (snapshots++ > 0) void list();
          attempt = 0;
          setLive(true);
          setError(null);
          setRuns((cur) => mergeRuns(cur, m.runs));
        } else if (m.type === 'run') setRuns((cur) => mergeRuns(cur, [m.run]));
        else if (m.type === 'error') setError(m.message);
      };
      socket.onclose = () => {
        setLive(false);
        if (stopped) return;
        attempt += 1;
        retry = setTimeout(open, backoff(attempt, Math.random()));
      };
    };
    open();
    return () => {
      stopped = true;
      if (retry) clearTimeout(retry);
      if (ws) {
        ws.onclose = null;
        ws.close();
      }
    };
  }, [token, api]);

  const loadOlder = useCallback(() => {
    if (!api || !oldest?.full || loading) return;
    setLoading(true);
    api
      .runs({ limit: LISTED, before: oldest.runId })
      .then(
        (listed) => {
          setRuns((m) => mergeRuns(m, listed));
          setOldest(listed.length ? { runId: listed[listed.length - 1]!.run_id, full: listed.length === LISTED } : { ...oldest, full: false });
        },
        (err: Error) => setError(err.message),
      )
      .finally(() => setLoading(false));
  }, [api, oldest, loading]);

  return { runs, live, error, older: oldest?.full ?? false, loadOlder };
}
