'use client';
// Schedules: the schedules the token may see, each with its next fire time and last runs, a form
// to make one, and pause, resume and delete (docs/api.md, "Schedules"). Read when the page opens,
// after each change, and again just after the next fire time, when the last runs move.
import { useCallback, useEffect, useMemo, useState } from 'react';
import { api as makeApi, type Api, type PipelineInfo, type ScheduleInfo } from '../../lib/api.js';
import { takeToken } from '../../lib/token.js';

/** The longest the page waits before reading the list again. */
const MAX_WAIT_MS = 60_000;

function when(iso: string | null): string {
  return iso === null ? '–' : new Date(iso).toLocaleString();
}

function AddSchedule({ api, onAdded }: { api: Api; onAdded: () => void }) {
  const [pipelines, setPipelines] = useState<PipelineInfo[]>([]);
  const [site, setSite] = useState('');
  const [pipeline, setPipeline] = useState('');
  const [cron, setCron] = useState('0 * * * *');
  const [timezone, setTimezone] = useState('UTC');
  const [overlap, setOverlap] = useState<'skip' | 'allow'>('skip');
  const [options, setOptions] = useState('{}');
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api.pipelines().then((list) => {
      const own = list.filter((p) => p.name !== 'external');
      setPipelines(own);
      setPipeline((cur) => cur || own[0]?.name || '');
    }, (err: Error) => setError(err.message));
  }, [api]);
  return (
    <form
      className="start"
      aria-label="Add a schedule"
      onSubmit={(e) => {
        e.preventDefault();
        setError(null);
        let parsed: Record<string, unknown>;
        try {
          parsed = JSON.parse(options || '{}') as Record<string, unknown>;
        } catch {
          setError('Options must be a JSON object.');
          return;
        }
        api.addSchedule({ site_id: site, pipeline, cron, timezone, overlap, options: parsed }).then(() => onAdded(), (err: Error) => setError(err.message));
      }}
    >
      <div className="row">
        <label>
          Site <input required value={site} onChange={(e) => setSite(e.target.value)} placeholder="site-5" />
        </label>
        <label>
          Pipeline{' '}
          <select value={pipeline} onChange={(e) => setPipeline(e.target.value)}>
            {pipelines.map((p) => (
              <option key={p.name} value={p.name}>{p.name}</option>
            ))}
          </select>
        </label>
        <label>
          Cron <input required value={cron} onChange={(e) => setCron(e.target.value)} aria-describedby="cron-help" spellCheck={false} />
        </label>
        <label>
          Time zone <input required value={timezone} onChange={(e) => setTimezone(e.target.value)} />
        </label>
        <label>
          Overlap{' '}
          <select value={overlap} onChange={(e) => setOverlap(e.target.value as 'skip' | 'allow')}>
            <option value="skip">skip while the last run is unfinished</option>
            <option value="allow">allow</option>
          </select>
        </label>
      </div>
      <p id="cron-help" className="muted">5 fields (minute hour day month weekday), or 6 with seconds first.</p>
      <label>
        Options (JSON) <textarea value={options} onChange={(e) => setOptions(e.target.value)} spellCheck={false} />
      </label>
      <button type="submit">Add schedule</button>
      {error && <p className="card-error" role="alert">{error}</p>}
    </form>
  );
}

function LastRuns({ s }: { s: ScheduleInfo }) {
  if (s.last_runs.length === 0) return <span className="muted">none yet</span>;
  return (
    <ul style={{ listStyle: 'none', margin: 0, padding: 0 }}>
      {s.last_runs.map((f) => (
        <li key={f.fire_at}>
          {f.run_id ? <a href={`/run/?id=${encodeURIComponent(f.run_id)}`}>{f.run_id}</a> : <span>{f.state}</span>}{' '}
          <span className={`chip chip-${f.run_status ?? f.state}`}>{f.run_status ?? f.state}</span>
        </li>
      ))}
    </ul>
  );
}

export default function Schedules() {
  const [token, setToken] = useState<string | null>(null);
  const [list, setList] = useState<ScheduleInfo[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => setToken(takeToken()), []);
  const api = useMemo(() => (token ? makeApi(token) : null), [token]);
  const load = useCallback(() => {
    api?.schedules().then((l) => (setList(l), setError(null)), (err: Error) => setError(err.message));
  }, [api]);
  useEffect(load, [load]);
  // Read again a moment after the next fire time, when a new run shows among the last runs.
  useEffect(() => {
    const next = Math.min(...list.flatMap((s) => (s.next_run_at ? [Date.parse(s.next_run_at)] : [])));
    const wait = Number.isFinite(next) ? Math.min(MAX_WAIT_MS, Math.max(500, next - Date.now() + 500)) : MAX_WAIT_MS;
    const timer = setTimeout(load, wait);
    return () => clearTimeout(timer);
  }, [list, load]);
  if (!token) return <p>Open the URL the service printed (it carries a token: <code>/?token=…</code>).</p>;
  const act = (p: Promise<unknown>) => void p.then(load, (err: Error) => setError(err.message));
  return (
    <>
      <h1>Schedules</h1>
      {api && <AddSchedule api={api} onAdded={load} />}
      {error && <p className="card-error" role="alert">{error}</p>}
      <div className="table-wrap" role="region" aria-label="Schedules table" tabIndex={0}>
        <table className="runs" aria-label="Schedules">
          <thead>
            <tr><th>Pipeline</th><th>Site</th><th>Cron</th><th>Overlap</th><th>Status</th><th>Next run</th><th>Last runs</th><th><span className="sr-only">Actions</span></th></tr>
          </thead>
          <tbody>
            {list.map((s) => (
              <tr key={s.schedule_id} data-schedule={s.schedule_id} data-status={s.status}>
                <td>{s.pipeline}</td>
                <td>{s.site_id}</td>
                <td><code>{s.cron}</code> {s.timezone}</td>
                <td>{s.overlap}</td>
                <td><span className={`chip chip-${s.status === 'active' ? 'running' : 'paused'}`}>{s.status}</span></td>
                <td data-next={s.next_run_at ?? ''}>{when(s.next_run_at)}</td>
                <td><LastRuns s={s} /></td>
                <td className="row">
                  {s.status === 'active'
                    ? <button type="button" onClick={() => api && act(api.scheduleCommand(s.schedule_id, 'pause'))}>Pause</button>
                    : <button type="button" onClick={() => api && act(api.scheduleCommand(s.schedule_id, 'resume'))}>Resume</button>}
                  <button type="button" onClick={() => api && act(api.deleteSchedule(s.schedule_id))}>Delete</button>
                </td>
              </tr>
            ))}
            {list.length === 0 && <tr><td colSpan={8} className="muted">No schedules yet.</td></tr>}
          </tbody>
        </table>
      </div>
    </>
  );
}
