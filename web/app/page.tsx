'use client';
import { useEffect, useMemo, useState } from 'react';
import { api as makeApi, type Api, type PipelineInfo } from '../lib/api.js';
import type { RunView } from '../lib/run-model.js';
import { NO_FILTER, filterFromSearch, filterToSearch, formatDuration, listStatus, runDuration, runProgress, runsPage, type RunsFilter } from '../lib/runs-list.js';
import { optionFields, optionsFrom, type OptionField } from '../lib/options-form.js';
import { takeToken } from '../lib/token.js';
import { useSiteFeed } from '../lib/use-site-feed.js';

const STATUSES = ['running', 'paused', 'awaiting_approval', 'idle', 'failed', 'completed', 'cancelled', 'closed'];
const SITE_KEY = 'runstate:site';

function OptionInput({ field, value, onChange }: { field: OptionField; value: string; onChange: (v: string) => void }) {
  const id = `opt-${field.name}`;
  const help = field.description ? <small className="muted" id={`${id}-help`}>{field.description}</small> : null;
  const described = field.description ? { 'aria-describedby': `${id}-help` } : {};
  if (field.kind === 'boolean') {
    return (
      <div className="opt">
        <label htmlFor={id}>
          <input id={id} type="checkbox" checked={value === 'true'} onChange={(e) => onChange(String(e.target.checked))} {...described} /> {field.label}
        </label>
        {help}
      </div>
    );
  }
  return (
    <div className="opt">
      <label htmlFor={id}>{field.label}</label>
      {field.kind === 'choice' ? (
        <select id={id} value={value} onChange={(e) => onChange(e.target.value)} {...described}>
          {field.choices.map((c) => <option key={c} value={c}>{c}</option>)}
        </select>
      ) : (
        <input
          id={id}
          value={value}
          onChange={(e) => onChange(e.target.value)}
          {...(field.kind === 'number' || field.kind === 'integer' ? { type: 'number', step: field.kind === 'integer' ? 1 : 'any', min: field.min, max: field.max } : { type: 'text' })}
          {...described}
        />
      )}
      {help}
    </div>
  );
}

/** Starts a run: the options form comes from the pipeline's options schema (JSON when it has none). */
function StartForm({ api, sites, onStarted }: { api: Api; sites: string[]; onStarted: (run: RunView) => void }) {
  const [pipelines, setPipelines] = useState<PipelineInfo[]>([]);
  const [pipeline, setPipeline] = useState('content');
  const [site, setSite] = useState('');
  const [values, setValues] = useState<Record<string, string>>({});
  const [json, setJson] = useState('{}');
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api.pipelines().then(setPipelines, (err: Error) => setError(err.message));
    setSite(localStorage.getItem(SITE_KEY) ?? '');
  }, [api]);
  const info = pipelines.find((p) => p.name === pipeline);
  const fields = useMemo(() => optionFields(info?.options_schema), [info]);
  const siteValue = site || sites[0] || '';
  return (
    <details className="start-box">
      <summary>Start a run</summary>
      <form
        className="start"
        onSubmit={(e) => {
          e.preventDefault();
          setError(null);
          let options: Record<string, unknown>;
          if (fields.length) {
            const res = optionsFrom(fields, values);
            if ('error' in res) return setError(res.error);
            options = res.options;
          } else {
            try {
              options = json.trim() ? (JSON.parse(json) as Record<string, unknown>) : {};
            } catch {
              return setError('Options must be JSON, like {"delay_ms": 400}.');
            }
          }
          localStorage.setItem(SITE_KEY, siteValue);
          api.start({ site_id: siteValue, pipeline, options }).then(onStarted, (err: Error) => setError(err.message));
        }}
      >
        <div className="row">
          <label>
            Site{' '}
            <input value={siteValue} required list="known-sites" onChange={(e) => setSite(e.target.value)} />
            <datalist id="known-sites">{sites.map((s) => <option key={s} value={s} />)}</datalist>
          </label>
          <label>
            Pipeline{' '}
            <select value={pipeline} onChange={(e) => (setPipeline(e.target.value), setValues({}))}>
              {pipelines.map((p) => <option key={p.name} value={p.name}>{p.name}</option>)}
            </select>
          </label>
          <button type="submit">Start</button>
        </div>
        {info?.description && <p className="muted">{info.description}</p>}
        {fields.length ? (
          <fieldset className="opts">
            <legend>Options</legend>
            {fields.map((f) => <OptionInput key={f.name} field={f} value={values[f.name] ?? f.initial} onChange={(v) => setValues((cur) => ({ ...cur, [f.name]: v }))} />)}
          </fieldset>
        ) : (
          <label className="stack">
            Options (JSON)
            <textarea value={json} onChange={(e) => setJson(e.target.value)} />
          </label>
        )}
        {error && <p className="card-error" role="alert">{error}</p>}
      </form>
    </details>
  );
}

function Runs({ token }: { token: string }) {
  const api = useMemo(() => makeApi(token), [token]);
  const feed = useSiteFeed(token, api);
  const [filter, setFilterState] = useState<RunsFilter>(NO_FILTER);
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    setFilterState(filterFromSearch(window.location.search));
    const onPop = () => setFilterState(filterFromSearch(window.location.search));
    window.addEventListener('popstate', onPop);
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => (window.removeEventListener('popstate', onPop), clearInterval(t));
  }, []);
  /** Filters live in the URL, so a reload or a shared link shows the same list. */
  const setFilter = (change: Partial<RunsFilter>) => {
    const next = { ...filter, page: 1, ...change };
    setFilterState(next);
    window.history.replaceState(null, '', `${window.location.pathname}${filterToSearch(next)}`);
  };
  const page = useMemo(() => runsPage(feed.runs, filter), [feed.runs, filter]);
  const sites = filter.site && !page.sites.includes(filter.site) ? [...page.sites, filter.site] : page.sites;
  const pipelines = filter.pipeline && !page.pipelines.includes(filter.pipeline) ? [...page.pipelines, filter.pipeline] : page.pipelines;
  const total = Object.values(page.counts).reduce((a, b) => a + b, 0);
  return (
    <>
      <div className="row" style={{ justifyContent: 'space-between' }}>
        <h1>Runs</h1>
        <div className={`conn conn-${feed.live ? 'live' : 'connecting'}`} role="status" aria-label="Runs feed" data-feed={feed.live ? 'live' : 'connecting'}>
          <span className="dot" /> {feed.live ? 'Live' : 'Connecting'}
        </div>
      </div>
      <StartForm api={api} sites={page.sites} onStarted={(run) => (window.location.href = `/run/?id=${encodeURIComponent(run.run_id)}`)} />
      <form className="filters row" role="search" aria-label="Filter runs" onSubmit={(e) => e.preventDefault()}>
        <label>
          Site{' '}
          <select value={filter.site} onChange={(e) => setFilter({ site: e.target.value })} aria-label="Site filter">
            <option value="">every site</option>
            {sites.map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
        </label>
        <label>
          Pipeline{' '}
          <select value={filter.pipeline} onChange={(e) => setFilter({ pipeline: e.target.value })} aria-label="Pipeline filter">
            <option value="">any</option>
            {pipelines.map((p) => <option key={p} value={p}>{p}</option>)}
          </select>
        </label>
        <label>
          Status{' '}
          <select value={filter.status} onChange={(e) => setFilter({ status: e.target.value })} aria-label="Status filter">
            <option value="">any</option>
            {STATUSES.map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
        </label>
        <label>
          Run id <input type="search" value={filter.q} onChange={(e) => setFilter({ q: e.target.value })} aria-label="Search by run id" placeholder="run_2025…" />
        </label>
      </form>
      <ul className="counts" aria-label="Runs by status">
        <li>
          <button type="button" aria-pressed={filter.status === ''} onClick={() => setFilter({ status: '' })}>all <strong>{total}</strong></button>
        </li>
        {STATUSES.filter((s) => page.counts[s]).map((s) => (
          <li key={s}>
            <button type="button" aria-pressed={filter.status === s} data-count={s} onClick={() => setFilter({ status: filter.status === s ? '' : s })}>
              {s} <strong>{page.counts[s]}</strong>
            </button>
          </li>
        ))}
      </ul>
      {feed.error && <p className="card-error" role="alert">{feed.error}</p>}
      <div className="table-wrap" role="region" aria-label="Runs table" tabIndex={0}>
        <table className="runs" aria-label="Runs">
          <thead>
            <tr><th scope="col">Run</th><th scope="col">Site</th><th scope="col">Pipeline</th><th scope="col">Status</th><th scope="col">Stage</th><th scope="col">Progress</th><th scope="col">Started</th><th scope="col">Duration</th></tr>
          </thead>
          <tbody>
            {page.rows.map((r) => {
              const p = runProgress(r);
              const status = listStatus(r);
              return (
                <tr key={r.run_id} data-run={r.run_id}>
                  <td><a href={`/run/?id=${encodeURIComponent(r.run_id)}`}>{r.run_id}</a></td>
                  <td>{r.site_id}</td>
                  <td>{r.pipeline}</td>
                  <td><span className={`chip chip-${status}`}>{status}</span></td>
                  <td>{r.current_stage ?? '–'} / {r.stages.length}</td>
                  <td>
                    <span className="mini-bar" aria-hidden="true"><span style={{ width: `${p.percentage}%` }} /></span> {p.percentage}%
                  </td>
                  <td><time dateTime={r.created_at}>{r.created_at.slice(0, 19).replace('T', ' ')}</time></td>
                  <td>{formatDuration(runDuration(r, now))}</td>
                </tr>
              );
            })}
            {page.rows.length === 0 && (
              <tr><td colSpan={8} className="muted">{feed.runs.size === 0 ? 'No runs yet.' : 'No run matches these filters.'}</td></tr>
            )}
          </tbody>
        </table>
      </div>
      <nav className="pager row" aria-label="Pages">
        <button type="button" disabled={page.page <= 1} onClick={() => setFilter({ page: page.page - 1 })}>Previous</button>
        <span>Page {page.page} of {page.pages} · {page.matching} runs</span>
        <button type="button" disabled={page.page >= page.pages} onClick={() => setFilter({ page: page.page + 1 })}>Next</button>
        {feed.older && page.page >= page.pages && <button type="button" onClick={feed.loadOlder}>Load older runs</button>}
      </nav>
    </>
  );
}

export default function RunsPage() {
  const [token, setToken] = useState<string | null | undefined>(undefined);
  useEffect(() => setToken(takeToken()), []);
  if (token === undefined) return null;
  if (!token) return <p>Open the URL the service printed (it carries a token: <code>/?token=…</code>).</p>;
  return <Runs token={token} />;
}
