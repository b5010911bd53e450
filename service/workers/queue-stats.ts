// Per queue, what the dashboard's Workers page shows beside the counts the database keeps: the
// claim-to-answer times of the last minute and the leases lost, as this instance saw them.

/** [60000] How far back the latency figures look. */
const WINDOW_MS = 60_000;
/** Samples kept per queue at most (the newest): a busy queue costs bounded memory. */
const MAX_SAMPLES = 4096;

export interface QueueLatency {
  /** Answers in the window. */
  count: number;
  p50: number;
  p95: number;
}

export interface QueueStatsView {
  /** Claim to answer (complete or fail) over the last minute, in ms; null with no answer then. */
  latency_ms: QueueLatency | null;
  /** Leases that ran out before an answer since this instance started (the job was offered again). */
  leases_lost: number;
}

interface Samples {
  at: number[];
  ms: number[];
  lost: number;
}

export class QueueStats {
  readonly #queues = new Map<string, Samples>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  answered(queue: string, ms: number): void {
    const s = this.#of(queue);
    s.at.push(this.#now());
    s.ms.push(ms);
    if (s.at.length > MAX_SAMPLES) {
      s.at.splice(0, s.at.length - MAX_SAMPLES);
      s.ms.splice(0, s.ms.length - MAX_SAMPLES);
    }
  }

  leaseLost(queue: string): void {
    this.#of(queue).lost++;
  }

  queues(): string[] {
    return [...this.#queues.keys()];
  }

  view(queue: string): QueueStatsView {
    const s = this.#queues.get(queue);
    if (!s) return { latency_ms: null, leases_lost: 0 };
    const from = this.#now() - WINDOW_MS;
    let first = 0;
    while (first < s.at.length && s.at[first]! < from) first++;
    if (first > 0) {
      s.at.splice(0, first);
      s.ms.splice(0, first);
    }
    if (s.ms.length === 0) return { latency_ms: null, leases_lost: s.lost };
    const sorted = [...s.ms].sort((a, b) => a - b);
    const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
    return { latency_ms: { count: sorted.length, p50: at(0.5), p95: at(0.95) }, leases_lost: s.lost };
  }

  #of(queue: string): Samples {
    let s = this.#queues.get(queue);
    if (!s) {
      s = { at: [], ms: [], lost: 0 };
      this.#queues.set(queue, s);
    }
    return s;
  }
}
