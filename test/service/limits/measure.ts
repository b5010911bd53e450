// Measures over a run's own events, for the limits tests: how many items fall in the worst
// window, and how many attempts overlapped at most.
import type { StoredEvent } from '../../../service/events.js';

/** The most timestamps (epoch ms) in any closed window of `ms`. */
export function worstWindow(times: readonly number[], ms: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let worst = 0;
  let lo = 0;
  for (let hi = 0; hi < sorted.length; hi++) {
    while (sorted[hi]! - sorted[lo]! > ms) lo++;
    worst = Math.max(worst, hi - lo + 1);
  }
  return worst;
}

/** Each attempt's `[begin, end]`, from its `begin <id>` and `end <id>` activity logs (each an attempt of one item). */
export function flightsOf(events: readonly StoredEvent[]): { begin: number; end: number }[] {
  const open = new Map<string, number>();
  const flights: { begin: number; end: number }[] = [];
  for (const e of events) {
    if (e.event !== 'activity_log') continue;
    const m = /^(begin|end) (\S+)$/.exec(e.message);
    if (!m) continue;
    const key = `${e.run_id}:${m[2]}`;
    if (m[1] === 'begin') open.set(key, Date.parse(e.timestamp));
    else {
      flights.push({ begin: open.get(key)!, end: Date.parse(e.timestamp) });
      open.delete(key);
    }
  }
  return flights;
}

/** The most flights open at one instant; one that ends at the instant another begins is not counted with it. */
export function maxOverlap(flights: readonly { begin: number; end: number }[]): number {
  const edges = flights.flatMap((f) => [
    { at: f.begin, d: 1 },
    { at: f.end, d: -1 },
  ]);
  edges.sort((a, b) => a.at - b.at || a.d - b.d);
  let now = 0;
  let most = 0;
  for (const e of edges) most = Math.max(most, (now += e.d));
  return most;
}
