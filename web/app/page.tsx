'use client';
import { useCallback, useEffect, useMemo, useState } from 'react';
import { api as makeApi, type Api } from '../lib/api.js';
import type { RunView } from '../lib/run-model.js';
import { takeToken } from '../lib/token.js';

const STATUSES = ['', 'running', 'paused', 'failed', 'completed', 'cancelled'];
function StartForm({ api, site, onStarted }: { api: Api; site: string; onStarted: (run: RunView) => void }) {
  const [pipelines, setPipelines] = useState<string[]>([]);
  const [pipeline, setPipeline] = useState('content');
  useEffect(() => {
    api.pipelines().then((list) => setPipelines(list.map((p) => p.name)), () => setPipelines(['content', 'face_processor', 'external']));
  }, [api]);
  const [options, setOptions] = useState('{"delay_ms": 400}');
  const [error, setError] = useState<string | null>(null);
  return (
    <form
      className="start"
      onSubmit={(e) => {
        e.preventDefault();
        setError(null);
        let parsed: Record<string, unknown>;
        try {
          parsed = options.trim() ? (JSON.parse(options) as Record<string, unknown>) : {};
        } catch {
          setError('Options must be JSON, like {"delay_ms": 400}.');
          return;
        }
        const body = pipeline === 'external' ? { site_id: site, pipeline, machine_name: String(parsed.machine_name ?? 'engine') } : { site_id: site, pipeline, options: parsed };
        api.start(body).then(onStarted, (err: Error) => setError(err.message));
      }}
    >
      <div className="row">
        <label>
          Pipeline{' '}
          <select value={pipeline} onChange={(e) => setPipeline(e.target.value)} aria-label="Pipeline">
            {pipelines.map((p) => <option key={p}>{p}</option>)}
          </select>
        </label>
        <button type="submit">Start</button>
      </div>
      <label>
        Options (JSON: seed, delay_ms, items_per_stage, fail_rate, concurrency)
        <textarea value={options} onChange={(e) => setOptions(e.target.value)} aria-label="Options" />
      </label>
      {error && <p className="card-error" role="alert">{error}</p>}
    </form>
  );
}

export default function Runs() {
  const [token, setToken] = useState<string | null>(null);
  const [site, setSite] = useState('site-5');
  const [status, setStatus] = useState('');
  const [runs, setRuns] = useState<RunView[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setToken(takeToken());
    setSite(localStorage.getItem('runstate:site') ?? 'site-5');
  }, []);
  const api = useMemo(() => (token ? makeApi(token) : null), [token]);
  const load = useCallback(() => {
    if (!api) return;
    api.runs(site, status || undefined).then((r) => (setRuns(r), setError(null)), (err: Error) => setError(err.message));
  }, [api, site, status]);
  useEffect(() => {
    load();
    const t = setInterval(load, 2000);
    return () => clearInterval(t);
  }, [load]);
  if (!token) return <p>Open the URL the service printed (it carries a token: <code>/?token=…</code>).</p>;
  return (
    <>
      <h1>Runs</h1>
      <div className="row" style={{ marginBottom: 12 }}>
        <label>
          Site <input value={site} aria-label="Site" onChange={(e) => (setSite(e.target.value), localStorage.setItem('runstate:site', e.target.value))} />
        </label>
        <label>
          Status{' '}
          <select value={status} onChange={(e) => setStatus(e.target.value)} aria-label="Status filter">
            {STATUSES.map((s) => <option key={s} value={s}>{s || 'any'}</option>)}
          </select>
        </label>
      </div>
      {api && <StartForm api={api} site={site} onStarted={(run) => (window.location.href = `/run/?id=${encodeURIComponent(run.run_id)}`)} />}
      {error && <p className="card-error" role="alert">{error}</p>}
      <table className="runs" aria-label="Runs">
        <thead>
          <tr><th>Run</th><th>Pipeline</th><th>Status</th><th>Stage</th><th>Started</th></tr>
        </thead>
        <tbody>
          {runs.map((r) => (
            <tr key={r.run_id}>
              <td><a href={`/run/?id=${encodeURIComponent(r.run_id)}`}>{r.run_id}</a></td>
              <td>{r.pipeline}</td>
              <td><span className="chip">{r.status}</span>{r.closed_at ? ' (closed)' : ''}</td>
              <td>{r.current_stage ?? '–'} / {r.stages.length}</td>
              <td>{r.created_at.slice(0, 19).replace('T', ' ')}</td>
            </tr>
          ))}
          {runs.length === 0 && <tr><td colSpan={5} className="muted">No runs on this site yet.</td></tr>}
        </tbody>
      </table>
    </>
  );
}
