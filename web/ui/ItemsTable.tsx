'use client';
import { useMemo, useState } from 'react';
import { filterItems, orderItems, type ItemView } from '../lib/items-model.js';
import { formatDuration } from '../lib/runs-list.js';

const ROW = 30;
const HEIGHT = 360;
const OVERSCAN = 6;
const STATUSES = ['failed', 'in_flight', 'waiting_retry', 'waiting_limit', 'pending', 'processed'];
const label = (s: string) => s.replace('_', ' ');

/**
 * A stage's items: failed first when there are failures, filterable by status and title, only
 * the rows in view rendered (a stage of 20,000 items scrolls smoothly). Each row is a button:
 * one click (or Enter) shows its error, attempts and times.
 */
export function ItemsTable({ items, counts, total }: { items: readonly ItemView[]; counts: Record<string, number>; total: number | null }) {
  const [status, setStatus] = useState('');
  const [q, setQ] = useState('');
  const [top, setTop] = useState(0);
  const [picked, setPicked] = useState<string | null>(null);
  const rows = useMemo(() => filterItems(orderItems(items), { status, q }), [items, status, q]);
  const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((top + HEIGHT) / ROW) + OVERSCAN);
  const chosen = picked === null ? undefined : items.find((i) => String(i.id) === picked);
  if (total === null) return <p className="muted">This stage has not loaded its items yet.</p>;
  if (total === 0) return <p className="muted">No items to process in this stage.</p>;
  return (
    <div className="items">
      <div className="row items-filters">
        <label>
          Status{' '}
          <select value={status} onChange={(e) => setStatus(e.target.value)} aria-label="Item status filter">
            <option value="">any ({items.length})</option>
            {STATUSES.filter((s) => counts[s]).map((s) => (
              <option key={s} value={s}>{label(s)} ({counts[s]})</option>
            ))}
          </select>
        </label>
        <label>
          Item <input type="search" value={q} onChange={(e) => setQ(e.target.value)} aria-label="Search items" placeholder="title or id" />
        </label>
        <span className="muted" aria-live="polite">{rows.length} shown{counts.failed ? ` · ${counts.failed} failed` : ''}</span>
      </div>
      <div className="items-head" aria-hidden="true">
        <span>Item</span><span>Status</span><span>Attempts</span><span>Duration</span><span>Cost</span><span>Error</span>
      </div>
      <div className="items-body" role="list" aria-label="Items" style={{ height: Math.min(HEIGHT, rows.length * ROW + 2) }} onScroll={(e) => setTop(e.currentTarget.scrollTop)}>
        <div style={{ height: rows.length * ROW, position: 'relative' }}>
          {rows.slice(first, last).map((item, k) => (
            <div role="listitem" key={String(item.id)} className="item-row-wrap" style={{ top: (first + k) * ROW, height: ROW }}>
              <button
                type="button"
                className={`item-row item-${item.status}`}
                data-item={String(item.id)}
                data-status={item.status}
                aria-expanded={picked === String(item.id)}
                onClick={() => setPicked(picked === String(item.id) ? null : String(item.id))}
              >
                <span className="item-title">{item.title}</span>
                <span><span className={`chip chip-${item.status}`}>{label(item.status)}</span></span>
                <span>{item.attempts}</span>
                <span>{item.duration_ms === null ? '–' : formatMs(item.duration_ms)}</span>
                <span>{item.cost === null ? '–' : item.cost}</span>
                <span className="item-error">{item.error ?? ''}</span>
              </button>
            </div>
          ))}
        </div>
      </div>
      {chosen && (
        <section className="item-detail" aria-label="Item details" aria-live="polite">
          <h4>{chosen.title} <span className="muted">(id {String(chosen.id)})</span></h4>
          <dl>
            <dt>Status</dt><dd>{label(chosen.status)}</dd>
            <dt>Attempts</dt><dd>{chosen.attempts}</dd>
            <dt>Started</dt><dd>{chosen.started_at ?? '–'}</dd>
            <dt>Finished</dt><dd>{chosen.finished_at ?? '–'}</dd>
            <dt>Duration</dt><dd>{chosen.duration_ms === null ? '–' : formatMs(chosen.duration_ms)}</dd>
            <dt>Cost</dt><dd>{chosen.cost ?? '–'}</dd>
          </dl>
          {chosen.error && <pre className="item-error-full">{chosen.error}</pre>}
          <button type="button" onClick={() => setPicked(null)}>Hide</button>
        </section>
      )}
    </div>
  );
}

function formatMs(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(ms < 1000 ? 2 : 1)}s` : formatDuration(ms);
}
