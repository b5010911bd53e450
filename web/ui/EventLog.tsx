'use client';
import { useLayoutEffect, useRef, useState } from 'react';
import type { StoredEvent } from '../lib/run-model.js';

const ROW = 22;
const HEIGHT = 320;
const OVERSCAN = 8;

function describe(e: StoredEvent): string {
  switch (e.event) {
    case 'state_change':
      return `${e.machine_name}: ${e.payload.from_state ?? '∅'} → ${e.payload.to_state} (${e.payload.event_trigger})`;
    case 'stage_item_processed':
      return `stage ${e.stage}: ${e.processed}/${e.total} ${e.item.title}`;
    case 'stage_item_failed':
      return `stage ${e.stage}: failed ${e.item.title}: ${e.error ?? 'error'} (attempt ${e.attempts})`;
    case 'stage_start':
      return `stage ${e.stage} started: ${e.total_items} items`;
    case 'stage_complete':
      return `stage ${e.stage} complete: ${e.processed_count} processed, ${e.failed_count} failed, ${e.time_elapsed}`;
    case 'command':
      return `${e.command} by ${e.by}${e.reason ? ` (${e.reason})` : ''}`;
    case 'activity_log':
      return e.message;
    case 'run_started':
      return `run started (${e.trigger})`;
  }
}

/**
 * The live event log: only the rows in view are rendered, so 100,000 events scroll smoothly.
 * It follows the end until the reader scrolls up, and again once they scroll back down.
 */
export function EventLog({ events, onPick }: { events: readonly StoredEvent[]; onPick?: (e: StoredEvent) => void }) {
  const box = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const follow = useRef(true);
  // Where following last put the scroll: a scroll event that lands there is ours, not the reader's,
  // even when rows came in before it fired (which, under load, is most of the time).
  const pinned = useRef(0);
  useLayoutEffect(() => {
    const el = box.current;
    if (!el || !follow.current) return;
    el.scrollTop = el.scrollHeight;
    pinned.current = el.scrollTop;
  }, [events.length]);
  // While following, the window is the end of the log, known without waiting for the scroll event.
  const viewTop = follow.current ? Math.max(0, events.length * ROW - HEIGHT) : top;
  const first = Math.max(0, Math.floor(viewTop / ROW) - OVERSCAN);
  const last = Math.min(events.length, Math.ceil((viewTop + HEIGHT) / ROW) + OVERSCAN);
  return (
    <div
      ref={box}
      className="log"
      role="log"
      aria-label="Event log"
      tabIndex={0}
      style={{ height: HEIGHT }}
      onScroll={(ev) => {
        const el = ev.currentTarget;
        if (el.scrollTop + el.clientHeight >= el.scrollHeight - ROW) follow.current = true;
        else if (el.scrollTop < pinned.current - 1) follow.current = false;
        setTop(el.scrollTop);
      }}
    >
      <div style={{ height: events.length * ROW, position: 'relative' }}>
        {events.slice(first, last).map((e, k) => (
          <div
            key={e.seq}
            className={`log-row log-${e.event}`}
            style={{ top: (first + k) * ROW, height: ROW }}
            data-seq={e.seq}
            onClick={() => onPick?.(e)}
          >
            <span className="log-seq">{e.seq}</span>
            <span className="log-time">{e.timestamp.slice(11, 19)}</span>
            <span className="log-text">{describe(e)}</span>
          </div>
        ))}
      </div>
    </div>
  );
}
