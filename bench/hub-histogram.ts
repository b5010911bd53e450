// A latency histogram small enough to send over IPC and cheap enough to feed a million values
// a second: log buckets 1% wide, from 10 µs up. Percentiles are accurate to about 1%.

const MIN_MS = 0.01;
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
/** Up to 10 µs · 1.01^2600 ≈ 30 min: anything slower lands in the last bucket. */
const BUCKETS = 2600;

/** Sparse form for IPC: [bucket, count] pairs. */
export type HistogramData = [number, number][];

export class Histogram {
  readonly #counts = new Float64Array(BUCKETS);
  #total = 0;

  get count(): number {
    return this.#total;
  }

  record(ms: number): void {
    const i = ms <= MIN_MS ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / MIN_MS) / LOG_GROWTH));
    this.#counts[i]! += 1;
    this.#total += 1;
  }

  merge(data: HistogramData): void {
    for (const [i, n] of data) {
      this.#counts[i]! += n;
      this.#total += n;
    }
  }

  toJSON(): HistogramData {
    const out: HistogramData = [];
    this.#counts.forEach((n, i) => n > 0 && out.push([i, n]));
    return out;
  }

  /**
   * The value at quantile q (0–1) of `count + missing` samples, where the `missing` ones never
   * arrived and so count as slower than anything seen: Infinity when q falls among them.
   */
  quantile(q: number, missing = 0): number {
    const rank = Math.ceil(q * (this.#total + missing));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank && seen > 0) return MIN_MS * GROWTH ** i;
    }
    return Infinity;
  }
}
