'use client';
// Webhooks: the subscriptions the token may see, a form to add one, and each one's deliveries
// with every attempt (docs/api.md, "Webhooks"). Read when the page opens and after each change.
import { useCallback, useEffect, useMemo, useState } from 'react';
import { api as makeApi, type Api, type DeliveryInfo, type WebhookInfo } from '../../lib/api.js';
import { takeToken } from '../../lib/token.js';

const EVENTS = ['run_completed', 'run_failed', 'run_cancelled', 'awaiting_approval', 'stage_complete'] as const;

function AddWebhook({ api, onAdded }: { api: Api; onAdded: () => void }) {
  const [url, setUrl] = useState('');
  const [site, setSite] = useState('');
  const [secret, setSecret] = useState('');
  const [events, setEvents] = useState<string[]>(['run_completed', 'run_failed']);
  const [error, setError] = useState<string | null>(null);
  return (
    <form
      className="start"
      aria-label="Add a webhook"
      onSubmit={(e) => {
        e.preventDefault();
        setError(null);
        api.addWebhook({ url, events, secret, ...(site ? { site_id: site } : {}) }).then(
          () => (setUrl(''), setSecret(''), onAdded()),
          (err: Error) => setError(err.message),
        );
      }}
    >
      <div className="row">
        <label>
          URL <input type="url" required value={url} onChange={(e) => setUrl(e.target.value)} placeholder="https://example.com/hooks/runstate" />
        </label>
        <label>
          Site <input value={site} onChange={(e) => setSite(e.target.value)} placeholder="every site" />
        </label>
        <label>
          Secret <input type="password" required minLength={16} value={secret} onChange={(e) => setSecret(e.target.value)} autoComplete="new-password" />
        </label>
      </div>
      <fieldset className="opts">
        <legend>Events</legend>
        {EVENTS.map((ev) => (
          <label key={ev}>
            <input type="checkbox" checked={events.includes(ev)} onChange={(e) => setEvents((cur) => (e.target.checked ? [...cur, ev] : cur.filter((x) => x !== ev)))} /> {ev}
          </label>
        ))}
      </fieldset>
      <button type="submit">Add webhook</button>
      {error && <p className="card-error" role="alert">{error}</p>}
    </form>
  );
}

function Deliveries({ api, webhook }: { api: Api; webhook: WebhookInfo }) {
  const [list, setList] = useState<DeliveryInfo[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api.deliveries(webhook.webhook_id).then(setList, (err: Error) => setError(err.message));
  }, [api, webhook.webhook_id]);
  if (error) return <p className="card-error" role="alert">{error}</p>;
  if (!list) return <p className="muted">Loading deliveries…</p>;
  if (list.length === 0) return <p className="muted">No deliveries yet.</p>;
  return (
    <table className="runs" aria-label={`Deliveries of ${webhook.url}`}>
      <thead>
        <tr><th>Event</th><th>Run</th><th>Status</th><th>Attempts</th><th>Last answer</th></tr>
      </thead>
      <tbody>
        {list.map((d) => (
          <tr key={d.delivery_id} data-delivery={d.delivery_id}>
            <td>{d.event}</td>
            <td><a href={`/run/?id=${encodeURIComponent(d.run_id)}`}>{d.run_id}</a> · {d.seq}</td>
            <td><span className={`chip chip-${d.status === 'delivered' ? 'completed' : d.status === 'failed' ? 'failed' : 'running'}`}>{d.status}</span></td>
            <td>{d.attempts}</td>
            <td>{d.log.at(-1) ? (d.log.at(-1)!.status_code ?? d.log.at(-1)!.error ?? '–') : '–'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export default function Webhooks() {
  const [token, setToken] = useState<string | null>(null);
  const [list, setList] = useState<WebhookInfo[]>([]);
  const [open, setOpen] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => setToken(takeToken()), []);
  const api = useMemo(() => (token ? makeApi(token) : null), [token]);
  const load = useCallback(() => {
    api?.webhooks().then((l) => (setList(l), setError(null)), (err: Error) => setError(err.message));
  }, [api]);
  useEffect(load, [load]);
  if (!token) return <p>Open the URL the service printed (it carries a token: <code>/?token=…</code>).</p>;
  return (
    <>
      <h1>Webhooks</h1>
      {api && <AddWebhook api={api} onAdded={load} />}
      {error && <p className="card-error" role="alert">{error}</p>}
      <div className="table-wrap" role="region" aria-label="Webhooks table" tabIndex={0}>
        <table className="runs" aria-label="Webhooks">
          <thead>
            <tr><th>URL</th><th>Site</th><th>Events</th><th>Made by</th><th><span className="sr-only">Actions</span></th></tr>
          </thead>
          <tbody>
            {list.map((w) => (
              <tr key={w.webhook_id} data-webhook={w.webhook_id}>
                <td>{w.url}</td>
                <td>{w.site_id ?? 'every site'}</td>
                <td>{w.events.join(', ')}</td>
                <td>{w.created_by}</td>
                <td className="row">
                  <button type="button" aria-expanded={open === w.webhook_id} onClick={() => setOpen(open === w.webhook_id ? null : w.webhook_id)}>Deliveries</button>
                  <button type="button" onClick={() => void api?.deleteWebhook(w.webhook_id).then(load, (err: Error) => setError(err.message))}>Delete</button>
                </td>
              </tr>
            ))}
            {list.length === 0 && <tr><td colSpan={5} className="muted">No webhooks yet.</td></tr>}
          </tbody>
        </table>
      </div>
      {api && open && list.find((w) => w.webhook_id === open) && <Deliveries api={api} webhook={list.find((w) => w.webhook_id === open)!} />}
    </>
  );
}
