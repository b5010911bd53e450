import type { ProcessingView, RunView } from '../lib/run-model.js';

export interface ProcessingCardProps {
  run: RunView;
  processing: ProcessingView | null;
  /** When each item in flight was first seen in flight (epoch ms), by id. */
  inFlightSince?: Record<string, number>;
  /** The stage's usual time per item (ms); an item far past it makes the card pulse. */
  usualItemMs?: number | null;
  now?: number;
  onRetry?: () => void;
  onClose?: () => void;
}

const SLOW_FACTOR = 3;
/** What the card says (and its tone) for a run in each state where the stage's own state does not matter. */
const HEADLINES: Partial<Record<string, string>> = {
  completed: 'Completed',
  cancelled: 'Cancelled',
  failed: 'Failed',
  paused: 'Paused',
  awaiting_approval: 'Awaiting approval',
};

function seconds(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${s}s`;
}

/** The processing card: right in every state, never blank. */
export function ProcessingCard({ run, processing: p, inFlightSince = {}, usualItemMs = null, now = Date.now(), onRetry, onClose }: ProcessingCardProps) {
  const status = run.status;
  const stageState = p?.stage_state ?? 'pending';
  const tone = HEADLINES[status] ? status : stageState === 'pausing' ? 'pausing' : 'running';
  const slow =
    usualItemMs && status === 'running'
      ? (p?.currently_processing ?? [])
          .map((i) => ({ item: i, ms: now - (inFlightSince[String(i.id)] ?? now) }))
          .filter((x) => x.ms > Math.max(SLOW_FACTOR * usualItemMs, 5000))
      : [];
  const headline =
    HEADLINES[status] ?? (stageState === 'pausing' ? 'Pausing: finishing the items in flight' : stageState === 'loading' ? 'Loading items…' : 'Running');
  const percentage = status === 'completed' ? 100 : (p?.percentage ?? 0);
  return (
    <section className={`card card-${tone}${slow.length ? ' card-slow' : ''}`} aria-label="Processing" data-state={tone}>
      <header className="card-head">
        <div>
          <div className="card-stage">
            {p ? `Stage ${p.stage_number} of ${run.stages.length}: ${p.stage_name}` : `Stage – of ${run.stages.length}`}
          </div>
          <div className="card-status">{headline}</div>
        </div>
        <div className="card-count">
          {p && stageState === 'empty' ? 'No items to process' : `${p?.processed_items ?? 0} / ${p?.total_items ?? 0} · ${percentage}%`}
        </div>
      </header>
      <div className="bar" role="progressbar" aria-label="Stage progress" aria-valuemin={0} aria-valuemax={100} aria-valuenow={percentage}>
        <div className="bar-fill" style={{ width: `${percentage}%` }} />
      </div>
      {stageState === 'empty' && <p className="card-note">No items to process: this stage had nothing to do, the run moved on.</p>}
      {status === 'failed' && (
        <p className="card-error" role="alert">
          {run.error ?? 'The run failed.'} {onRetry && <button onClick={onRetry}>Retry</button>}
        </p>
      )}
      {p?.limit_waiting && status === 'running' && (
        <p className="card-note card-limit-note" data-note="limit">
          {p.limit_waiting.items} {p.limit_waiting.items === 1 ? 'item' : 'items'} waiting on the {p.limit_waiting.key} limit
        </p>
      )}
      {slow.map(({ item, ms }) => (
        <p key={String(item.id)} className="card-note card-slow-note">
          {item.title} has been running for {seconds(ms)} (usually about {seconds(usualItemMs!)}).
        </p>
      ))}
      {status !== 'completed' && status !== 'cancelled' && p && (
        <div className="card-lists">
          <div data-list="in-flight">
            <h3>Processing now</h3>
            {p.currently_processing.length ? (
              <ul>{p.currently_processing.map((i) => <li key={String(i.id)}>{i.title}</li>)}</ul>
            ) : (
              <p className="muted">{status === 'paused' ? 'Nothing: paused.' : 'Nothing in flight.'}</p>
            )}
          </div>
          <div data-list="up-next">
            <h3>Up next{p.remaining_count > p.up_next.length ? ` (${p.remaining_count} waiting)` : ''}</h3>
            {p.up_next.length ? <ul>{p.up_next.map((i) => <li key={String(i.id)}>{i.title}</li>)}</ul> : <p className="muted">Nothing waiting.</p>}
          </div>
        </div>
      )}
      {status === 'completed' && run.closed_at === null && onClose && (
        <p className="card-note">
          All stages done. <button onClick={onClose}>Close</button>
        </p>
      )}
    </section>
  );
}
