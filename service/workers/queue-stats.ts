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

/** The newest MAX_SAMPLES answers of a queue, in a ring: recording one moves nothing. */
interface Samples {
  at: Float64Array;
  ms: Float64Array;
  /** Where the next answer goes. */
  next: number;
  /** Answers held (at most MAX_SAMPLES). */
  size: number;
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
    s.at[s.next] = this.#now();
    s.ms[s.next] = ms;
    s.next = (s.next + 1) % MAX_SAMPLES;
    s.size = Math.min(s.size + 1, MAX_SAMPLES);
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
    const inWindow: number[] = [];
    for (let k = 0; k < s.size; k++) {
      const i = (s.next - s.size + k + MAX_SAMPLES) % MAX_SAMPLES;
      if (s.at[i]! >= from) inWindow.push(s.ms[i]!);
    }
    if (inWindow.length === 0) return { latency_ms: null, leases_lost: s.lost };
    const sorted = inWindow.sort((a, b) => a - b);
    const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
    return { latency_ms: { count: sorted.length, p50: at(0.5), p95: at(0.95) }, leases_lost: s.lost };
  }

  #of(queue: string): Samples {
    let s = this.#queues.get(queue);
    if (!s) {
      s = { at: new Float64Array(MAX_SAMPLES), ms: new Float64Array(MAX_SAMPLES), next: 0, size: 0, lost: 0 };
      this.#queues.set(queue, s);
    }
    return s;
  }
}
