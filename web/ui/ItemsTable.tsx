'use client';
import { memo, useEffect, useRef, useState } from 'react';
import type { Api } from '../lib/api.js';
import { rowCount, tableRows, type ItemStatus } from '../lib/items-model.js';
import { formatDuration } from '../lib/runs-list.js';
import { useStageItems, type StageItems } from '../lib/use-stage-items.js';

const ROW = 30;
const HEIGHT = 360;
const OVERSCAN = 6;
/** Rows read past the last one in view, so a scroll finds them there. */
const READ_AHEAD = 100;
const STATUSES: ItemStatus[] = ['failed', 'in_flight', 'waiting_retry', 'waiting_limit', 'pending', 'processed'];
const label = (s: string) => s.replace('_', ' ');

/**
 * A stage's items: failed first when there are failures, filterable by status and title, only
 * the rows in view rendered and read (a stage of 100,000 items opens as fast as one of ten).
 * Each row is a button: one click (or Enter) shows its error, attempts and times. Drawn again
 * only when its stage, the run's view or its own state moves, not at every event.
 */
export const ItemsTable = memo(function ItemsTable({ api, runId, stage, seq, hint }: { api: Api; runId: string; stage: number | null; seq: number; hint?: StageItems['counts'] }) {
  const [status, setStatus] = useState<ItemStatus | ''>('');
  const [q, setQ] = useState('');
  const [top, setTop] = useState(0);
  const [picked, setPicked] = useState<string | null>(null);
  // Scroll events wait for the next frame: one render a frame however fast the wheel turns.
  const scrolled = useRef<number | null>(null);
  const frame = useRef<number | null>(null);
  useEffect(() => () => void (frame.current !== null && cancelAnimationFrame(frame.current)), []);
  const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
  const lastInView = Math.ceil((top + HEIGHT) / ROW) + OVERSCAN;
  const data = useStageItems(api, runId, stage, seq, { status, q, rows: lastInView + READ_AHEAD }, hint);
  if (!data) return <p className="muted items-loading">Loading items…</p>;
  const { groups, counts, total } = data;
  const error = data.error && <p className="card-error" role="alert">{data.error}</p>;
  if (total === null) return <>{error}<p className="muted">This stage has not loaded its items yet.</p></>;
  if (total === 0) return <>{error}<p className="muted">No items to process in this stage.</p></>;
  const rows = rowCount(groups);
  const last = Math.min(rows, lastInView);
  const shown = tableRows(groups, first, last);
  const chosen = picked === null ? undefined : groups.flatMap((g) => g.items).find((i) => String(i.id) === picked);
  return (
    <div className="items">
      {error}
      <div className="row items-filters">
        <label>
          Status{' '}
          <select value={status} onChange={(e) => setStatus(e.target.value as ItemStatus | '')} aria-label="Item status filter">
            <option value="">any ({total})</option>
            {STATUSES.filter((s) => counts[s]).map((s) => (
              <option key={s} value={s}>{label(s)} ({counts[s]})</option>
            ))}
          </select>
        </label>
        <label>
          Item <input type="search" value={q} onChange={(e) => setQ(e.target.value)} aria-label="Search items" placeholder="title or id" />
        </label>
        <span className="muted" aria-live="polite">{rows} shown{counts.failed ? ` · ${counts.failed} failed` : ''}</span>
      </div>
      <div className="items-head" aria-hidden="true">
        <span>Item</span><span>Status</span><span>Attempts</span><span>Duration</span><span>Cost</span><span>Error</span>
      </div>
      <div
        className="items-body"
        role="list"
        aria-label="Items"
        style={{ height: Math.min(HEIGHT, rows * ROW + 2) }}
        onScroll={(e) => {
          scrolled.current = e.currentTarget.scrollTop;
          frame.current ??= requestAnimationFrame(() => {
            frame.current = null;
            setTop(scrolled.current ?? 0);
          });
        }}
      >
        <div style={{ height: rows * ROW, position: 'relative' }}>
          {shown.map((item, k) =>
            item === null ? (
              <div role="listitem" key={`row-${first + k}`} className="item-row-wrap item-unread" style={{ top: (first + k) * ROW, height: ROW }} aria-busy="true">…</div>
            ) : (
            <div role="listitem" key={`${item.status}:${String(item.id)}`} className="item-row-wrap" style={{ top: (first + k) * ROW, height: ROW }}>
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
            ),
          )}
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
});

function formatMs(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(ms < 1000 ? 2 : 1)}s` : formatDuration(ms);
}
