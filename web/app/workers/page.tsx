'use client';
// Workers: who is connected (seen by any instance in the last minute), the queues they serve and
// the jobs they hold; per queue the jobs waiting and in flight, claim-to-answer times and lost
// leases (docs/workers.md, "The dashboard"). Read again every few seconds while the tab is shown.
import { useEffect, useMemo, useState } from 'react';
import { api as makeApi, type WorkersOverview } from '../../lib/api.js';
import { takeToken } from '../../lib/token.js';

/** How often the page reads the overview again: a modest rate, for a list of the last minute. */
const REFRESH_MS = 2000;

function ago(iso: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 2 ? 'just now' : `${s} s ago`;
}

function ms(n: number): string {
  return n < 10 ? `${n.toFixed(1)} ms` : `${Math.round(n).toLocaleString('en-US')} ms`;
}

export default function Workers() {
  const [token, setToken] = useState<string | null>(null);
  const [view, setView] = useState<WorkersOverview | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => setToken(takeToken()), []);
  const api = useMemo(() => (token ? makeApi(token) : null), [token]);
  useEffect(() => {
    if (!api) return;
    let stopped = false;
    const load = () => {
      if (document.visibilityState === 'hidden') return;
      api.workers().then(
        (v) => !stopped && (setView(v), setError(null), setNow(Date.now())),
        (err: Error) => !stopped && setError(err.message),
      );
    };
    load();
    const timer = setInterval(load, REFRESH_MS);
    document.addEventListener('visibilitychange', load);
    return () => {
      stopped = true;
      clearInterval(timer);
      document.removeEventListener('visibilitychange', load);
    };
  }, [api]);
  if (!token) return <p>Open the URL the service printed (it carries a token: <code>/?token=…</code>).</p>;
  return (
    <>
      <h1>Workers</h1>
      <p className="muted">Workers seen in the last minute by any instance, and the jobs of each queue; refreshed every {REFRESH_MS / 1000} s.</p>
      {error && <p className="card-error" role="alert">{error}</p>}
      {!view && !error && <p className="muted">Loading…</p>}
      {view && (
        <>
          <h2>Queues</h2>
          <div className="table-wrap" role="region" aria-label="Queues table" tabIndex={0}>
            <table className="runs" aria-label="Queues">
              <thead>
                <tr><th>Queue</th><th>Waiting</th><th>In flight</th><th>Workers</th><th>Claim → answer p50</th><th>p95</th><th>Answers (1 min)</th><th>Leases lost</th></tr>
              </thead>
              <tbody>
                {view.queues.map((q) => (
                  <tr key={q.queue} data-queue={q.queue}>
                    <td>{q.queue}</td>
                    <td data-col="waiting">{q.waiting}</td>
                    <td data-col="in_flight">{q.in_flight}</td>
                    <td data-col="workers">{q.workers}</td>
                    <td>{q.latency_ms ? ms(q.latency_ms.p50) : '–'}</td>
                    <td>{q.latency_ms ? ms(q.latency_ms.p95) : '–'}</td>
                    <td data-col="answers">{q.latency_ms?.count ?? 0}</td>
                    <td data-col="leases_lost">{q.leases_lost}</td>
                  </tr>
                ))}
                {view.queues.length === 0 && <tr><td colSpan={8} className="muted">No queue has jobs or workers.</td></tr>}
              </tbody>
            </table>
          </div>
          <h2>Connected</h2>
          <div className="table-wrap" role="region" aria-label="Workers table" tabIndex={0}>
            <table className="runs" aria-label="Workers">
              <thead>
                <tr><th>Worker</th><th>Queues</th><th>Jobs in flight</th><th>Last seen</th></tr>
              </thead>
              <tbody>
                {view.workers.map((w) => (
                  <tr key={w.worker_id} data-worker={w.worker_id}>
                    <td>{w.worker_id}</td>
                    <td>{w.queues.join(', ')}</td>
                    <td data-col="jobs_in_flight">{w.jobs_in_flight}</td>
                    <td><time dateTime={w.last_seen} title={w.last_seen}>{ago(w.last_seen, now)}</time></td>
                  </tr>
                ))}
                {view.workers.length === 0 && <tr><td colSpan={4} className="muted">No worker seen in the last minute.</td></tr>}
              </tbody>
            </table>
          </div>
        </>
      )}
    </>
  );
}
