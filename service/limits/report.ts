// What `GET /limits` and the limit gauges show of each declared key: its numbers, the
// attempts holding it (in flight) and those waiting for it, over every instance.
import type { Limiter } from './limiter.js';
import { ratePerSecond, type StageLimit } from '../pipelines/limit.js';

export interface LimitReport {
  key: string;
  /** Attempts per second it lets start (the stricter of its rates); null with no rate. */
  rate: number | null;
  per_second: number | null;
  per_minute: number | null;
  concurrency: number | null;
  /** Attempts that took it and have not finished. */
  in_use: number;
  /** Attempts waiting for it. */
  waiting: number;
}

export async function reportLimits(declared: ReadonlyMap<string, StageLimit>, limiter: Limiter): Promise<LimitReport[]> {
  const usage = await limiter.usage();
  return [...declared.values()]
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((l) => ({
      key: l.key,
      rate: ratePerSecond(l),
      per_second: l.per_second ?? null,
      per_minute: l.per_minute ?? null,
      concurrency: l.concurrency ?? null,
      in_use: usage.get(l.key)?.inFlight ?? 0,
      waiting: usage.get(l.key)?.waiting ?? 0,
    }));
}
