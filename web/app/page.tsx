'use client';
import { useEffect, useMemo, useRef, useState } from 'react';
import { api as makeApi, type Api, type PipelineInfo } from '../lib/api.js';
import { BULK_COMMANDS, bulkSummary, keepKnown, outcomeOf, selectionOf, toggleAll, toggleOne, type BulkCommand } from '../lib/bulk.js';
import type { RunView } from '../lib/run-model.js';
import { NO_FILTER, filterFromSearch, filterToSearch, formatDuration, listStatus, runDuration, runProgress, runsPage, type RunsFilter } from '../lib/runs-list.js';
import { fieldErrors, fieldOfRefusal, optionFields, optionsFrom, type OptionField } from '../lib/options-form.js';
import { takeToken } from '../lib/token.js';
import { useSiteFeed } from '../lib/use-site-feed.js';
import { ConfirmButton } from '../ui/ConfirmButton.js';

const STATUSES = ['running', 'paused', 'awaiting_approval', 'idle', 'failed', 'completed', 'cancelled', 'closed'];
const SITE_KEY = 'runstate:site';

function OptionInput({ field, value, error, onChange }: { field: OptionField; value: string; error: string | undefined; onChange: (v: string) => void }) {
  const id = `opt-${field.name}`;
  const help = (
    <>
      {field.description && <small className="muted" id={`${id}-help`}>{field.description}</small>}
      {error && <small className="field-error" id={`${id}-error`} role="alert">{error}</small>}
    </>
  );
  const describedBy = [field.description ? `${id}-help` : '', error ? `${id}-error` : ''].filter(Boolean).join(' ');
  const described = { ...(describedBy ? { 'aria-describedby': describedBy } : {}), ...(error ? { 'aria-invalid': true } : {}) };
  if (field.kind === 'boolean') {
    return (
      <div className="opt" data-field={field.name}>
        <label htmlFor={id}>
          <input id={id} type="checkbox" checked={value === 'true'} onChange={(e) => onChange(String(e.target.checked))} {...described} /> {field.label}
        </label>
        {help}
      </div>
    );
  }
  return (
    <div className="opt" data-field={field.name}>
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

/** The box that selects (or clears) every run on the page; mixed when some are. */
function SelectAll({ state, onToggle }: { state: 'all' | 'some' | 'none'; onToggle: () => void }) {
  const box = useRef<HTMLInputElement>(null);
  useEffect(() => {
    if (box.current) box.current.indeterminate = state === 'some';
  }, [state]);
  return <input ref={box} type="checkbox" aria-label="Select every run on this page" checked={state === 'all'} onChange={onToggle} />;
}

interface BulkOutcome {
  command: BulkCommand;
  summary: string;
  runs: { run_id: string; outcome: string }[];
}

const LABEL: Record<BulkCommand, string> = { pause: 'Pause', resume: 'Resume', cancel: 'Cancel' };

/** The selected runs' commands (`POST /runs/bulk/:command` with their ids) and what each run answered. */
function BulkBar({ api, selected, runs, onClear }: { api: Api; selected: ReadonlySet<string>; runs: ReadonlyMap<string, RunView>; onClear: () => void }) {
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<BulkOutcome | null>(null);
  const [error, setError] = useState<string | null>(null);
  const n = selected.size;
  const send = (command: BulkCommand) => {
    const before = new Map(runs);
    setBusy(true);
    setError(null);
    api
      .bulk(command, { run_ids: [...selected] })
      .then(
        (results) =>
          setOutcome({
            command,
            summary: bulkSummary(command, results, before),
            runs: results.map((r) => ({ run_id: r.run_id, outcome: outcomeOf(command, r, before.get(r.run_id)) })),
          }),
        (err: Error) => setError(`${LABEL[command]} failed: ${err.message}`),
      )
      .finally(() => setBusy(false));
  };
  const off = busy || n === 0;
  return (
    <div className="bulk-bar">
      <div className="row" role="toolbar" aria-label="Selected runs">
        <span aria-live="polite">{n === 0 ? 'No run selected' : `${n} selected`}</span>
        {BULK_COMMANDS.map((c) =>
          c === 'cancel' ? (
            <ConfirmButton key={c} label="Cancel" question={`Cancel ${n} run${n === 1 ? '' : 's'}?`} confirmLabel="Yes, cancel" disabled={off} onConfirm={() => send(c)} />
          ) : (
            <button key={c} type="button" disabled={off} onClick={() => send(c)}>{LABEL[c]}</button>
          ),
        )}
        <button type="button" disabled={n === 0} onClick={onClear}>Clear selection</button>
      </div>
      <div role="status" aria-live="polite">
        {outcome && (
          <>
            <p className="muted" data-bulk-summary>{LABEL[outcome.command]}: {outcome.summary}</p>
            <ul className="bulk-results">
              {outcome.runs.map((r) => <li key={r.run_id} data-bulk-run={r.run_id}>{r.run_id}: {r.outcome}</li>)}
            </ul>
          </>
        )}
      </div>
      {error && <p className="card-error" role="alert">{error}</p>}
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
  /** The service's refusal of a field after a submit, until that field changes. */
  const [refused, setRefused] = useState<{ field: string; message: string } | null>(null);
  useEffect(() => {
    api.pipelines().then(setPipelines, (err: Error) => setError(err.message));
    setSite(localStorage.getItem(SITE_KEY) ?? '');
  }, [api]);
  const info = pipelines.find((p) => p.name === pipeline);
  const fields = useMemo(() => optionFields(info?.options_schema), [info]);
  const errors = useMemo(() => fieldErrors(fields, values), [fields, values]);
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
            // The fields say what is wrong (they do as the user types); nothing is sent.
            if ('errors' in res) return;
            options = res.options;
          } else {
            try {
              options = json.trim() ? (JSON.parse(json) as Record<string, unknown>) : {};
            } catch {
              return setError('Options must be JSON, like {"delay_ms": 400}.');
            }
          }
          localStorage.setItem(SITE_KEY, siteValue);
          api.start({ site_id: siteValue, pipeline, options }).then(onStarted, (err: Error) => {
            const field = fieldOfRefusal(fields, err.message);
            if (field) setRefused({ field, message: err.message });
            else setError(err.message);
          });
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
            <select value={pipeline} onChange={(e) => (setPipeline(e.target.value), setValues({}), setRefused(null))}>
              {pipelines.map((p) => <option key={p.name} value={p.name}>{p.name}</option>)}
            </select>
          </label>
          <button type="submit">Start</button>
        </div>
        {info?.description && <p className="muted">{info.description}</p>}
        {fields.length ? (
          <fieldset className="opts">
            <legend>Options</legend>
            {fields.map((f) => (
              <OptionInput
                key={f.name}
                field={f}
                value={values[f.name] ?? f.initial}
                error={errors[f.name] ?? (refused?.field === f.name ? refused.message : undefined)}
                onChange={(v) => {
                  setValues((cur) => ({ ...cur, [f.name]: v }));
                  if (refused?.field === f.name) setRefused(null);
                }}
              />
            ))}
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
  const [picked, setPicked] = useState<Set<string>>(() => new Set());
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
  const selected = useMemo(() => keepKnown(picked, feed.runs), [picked, feed.runs]);
  const visible = page.rows.map((r) => r.run_id);
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
      <BulkBar api={api} selected={selected} runs={feed.runs} onClear={() => setPicked(new Set())} />
      <div className="table-wrap" role="region" aria-label="Runs table" tabIndex={0}>
        <table className="runs" aria-label="Runs">
          <thead>
            <tr><th scope="col"><span className="select"><SelectAll state={selectionOf(selected, visible)} onToggle={() => setPicked(toggleAll(selected, visible))} /></span> Run</th><th scope="col">Site</th><th scope="col">Pipeline</th><th scope="col">Status</th><th scope="col">Stage</th><th scope="col">Progress</th><th scope="col">Started</th><th scope="col">Duration</th></tr>
          </thead>
          <tbody>
            {page.rows.map((r) => {
              const p = runProgress(r);
              const status = listStatus(r);
              return (
                <tr key={r.run_id} data-run={r.run_id}>
                  <td>
                    <span className="select"><input type="checkbox" aria-label={`Select ${r.run_id}`} checked={selected.has(r.run_id)} onChange={() => setPicked(toggleOne(selected, r.run_id))} /></span>{' '}
                    <a href={`/run/?id=${encodeURIComponent(r.run_id)}`}>{r.run_id}</a>
                  </td>
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
