// What the run page holds of one run: the server's newest view of it (the card, the timeline
// and the buttons render that and nothing else) and the event log (which only accumulates
// events, in seq order, for the log panel and the time travel). Pure, so a page that
// reconnects ends where one that never left is.
import type { ProcessingView, RunView } from '../../service/engine/view.js';
import type { StoredEvent } from '../../service/events.js';

export type { ProcessingView, RunView, StoredEvent };

/** A server view of the run as of `seq`: a view frame, or `GET /runs/:id` with `current_processing`. */
export interface ServerView {
  run: RunView;
  processing: ProcessingView | null;
  seq: number;
}

export interface EventLogModel {
  /** The last seq in the log (0 before any). A reconnect asks for the events after it. */
  seq: number;
  /** Every event seen, in seq order (the log panel virtualises it). */
  events: StoredEvent[];
}

/** What the card, the timeline and the buttons render. */
export interface ShownView {
  view: ServerView;
  /** When each item now in flight was first seen in flight (epoch ms), by item id: the slow-item note. */
  inFlightSince: Record<string, number>;
}

export interface RunModel extends ShownView {
  log: EventLogModel;
}

export const EMPTY_LOG: EventLogModel = { seq: 0, events: [] };

/** Takes the server's view as it is: the newest the server has, never merged with anything. */
export function withView(shown: ShownView | null, view: ServerView, now: number): ShownView {
  const before = shown?.inFlightSince ?? {};
  const since: Record<string, number> = {};
  for (const item of view.processing?.currently_processing ?? []) since[String(item.id)] = before[String(item.id)] ?? now;
  return { view, inFlightSince: since };
}

/** Appends events past the log's last seq (in seq order; ones it has are skipped). */
export function appendEvents(log: EventLogModel, events: readonly StoredEvent[]): EventLogModel {
  const fresh = events.filter((e) => e.seq > log.seq).sort((a, b) => a.seq - b.seq);
  if (fresh.length === 0) return log;
  return { seq: fresh[fresh.length - 1]!.seq, events: log.events.concat(fresh) };
}

/**
 * The log as of an event subscription's snapshot at `seq`: what it held up to `seq` stays
 * (a `reset` keeps nothing: that log belonged to another history).
 */
export function logAtSnapshot(log: EventLogModel, seq: number, reset: boolean): EventLogModel {
  return { seq, events: reset ? [] : log.events.filter((e) => e.seq <= seq) };
}

/** Events from before the log's first one (the trace's history) put in front of it. */
export function withHistory(log: EventLogModel, history: readonly StoredEvent[]): EventLogModel {
  const have = new Set(log.events.map((e) => e.seq));
  const before = history.filter((e) => e.seq <= log.seq && !have.has(e.seq));
  if (before.length === 0) return log;
  return { ...log, events: [...before, ...log.events].sort((a, b) => a.seq - b.seq) };
}

/**
 * The stage's usual time per item (ms) from the log: the mean gap between its last finished
 * items, times the items in flight at once. null with fewer than three to go on.
 */
export function usualItemMs(events: readonly StoredEvent[], stage: number | undefined, inFlight: number): number | null {
  const done: StoredEvent<'stage_item_processed'>[] = [];
  for (let i = events.length - 1; i >= 0 && done.length < 20; i--) {
    const e = events[i]!;
    if (e.event === 'stage_item_processed' && e.stage === stage) done.unshift(e);
  }
  if (done.length < 3) return null;
  const span = Date.parse(done[done.length - 1]!.timestamp) - Date.parse(done[0]!.timestamp);
  return (span / (done.length - 1)) * Math.max(1, inFlight);
}
