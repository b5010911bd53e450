// Numbers for every part: sizes (full or --quick), medians, percentiles, a mergeable histogram, one clock.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** `npm run bench -- --quick` or `BENCH_QUICK=1`: every part at tiny sizes, to check the bench code runs; nothing is written. */
export const QUICK = process.argv.includes('--quick') || process.env.BENCH_QUICK === '1';

/** Measured rounds of a part that repeats (after its warm-up, when it has one). */
export const REPS = QUICK ? 1 : 3;

/** A size: `BENCH_<name>` when set (a positive integer), else `full`, or `quick` in quick mode. */
export function size(name: string, full: number, quick: number): number {
  const raw = process.env[`BENCH_${name}`];
  if (raw === undefined || raw === '') return QUICK ? quick : full;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new TypeError(`Expected \`BENCH_${name}\` to be a positive integer, got ${JSON.stringify(raw)}.`);
  return n;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new TypeError('Expected at least one value.');
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The p-th percentile (0–100) of values sorted ascending. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** The `min – max` cell of a sample. */
export function range(values: readonly number[]): string {
  return `${fmtInt(Math.min(...values))} – ${fmtInt(Math.max(...values))}`;
}

export function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** Milliseconds on the machine's monotonic clock: one clock for every process (`performance.now()` is per process). */
export function monoMs(): number {
  const [s, ns] = process.hrtime();
  return s * 1e3 + ns / 1e6;
}

/** The CPU ms (user + system) this process has used. */
export function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/** `body`'s result, when it started (monotonic ms), how long it ran, this process's CPU ms and event-loop delay (p99, max; ms) meanwhile. */
export async function timed<T>(body: () => Promise<T>) {
  const eld = monitorEventLoopDelay({ resolution: 5 });
  eld.enable();
  const cpu = cpuMs();
  const startedAt = monoMs();
  const result = await body();
  const ms = monoMs() - startedAt;
  eld.disable();
  return { result, startedAt, ms, cpuMs: cpuMs() - cpu, eldP99: eld.percentile(99) / 1e6, eldMax: eld.max / 1e6 };
}

/** A fresh temporary directory, `runstate-bench-<label>-…`; `removeDir` deletes it. */
export function tempDir(label = 'run'): string {
  return mkdtempSync(join(tmpdir(), `runstate-bench-${label}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Runs `fn` in a fresh temporary directory and removes it afterwards, whatever happens. */
export async function inTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = tempDir();
  try {
    return await fn(dir);
  } finally {
    removeDir(dir);
  }
}

/** Polls `done` every `pollMs` until it holds; after `ms`, fails with `bench: <what>` (`what()`: as things then stand). */
export async function until(done: () => boolean | Promise<boolean>, ms: number, what: string | (() => string), pollMs = 20): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`bench: ${typeof what === 'string' ? what : what()}`);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

/** `work(0)` … `work(n - 1)`, at most `parallel` at a time; their results in order. */
export async function pool<T>(n: number, parallel: number, work: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      out[i] = await work(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, n) }, worker));
  return out;
}

export function progress(message: string): void {
  process.stderr.write(`  ${message}\n`);
}

/** A warm-up round, then `reps` rounds of every variant once, each in a fresh temp dir, in an order that rotates so background load and leftovers (GC debt, dirty pages) fall on all alike. */
export async function rounds<V extends string, T extends { perSec: number }>(
  variants: Record<V, (dir: string) => Promise<T>>,
  { reps = REPS, unit = 'items/s', detail }: { reps?: number; unit?: string; detail?: (m: T) => string } = {},
): Promise<Record<V, T[]>> {
  const names = Object.keys(variants) as V[];
  const out = Object.fromEntries(names.map((v) => [v, [] as T[]])) as Record<V, T[]>;
  for (let round = 0; round <= reps; round++) {
    const shift = round % names.length;
    for (const v of [...names.slice(shift), ...names.slice(0, shift)]) {
      const m = await inTempDir(variants[v]);
      progress(`${round === 0 ? 'warm-up' : `rep ${round}/${reps}`} ${v}: ${fmtInt(m.perSec)} ${unit}${detail?.(m) ?? ''}`);
      if (round > 0) out[v].push(m);
    }
  }
  return out;
}

const MIN_MS = 0.01;
const LOG_GROWTH = Math.log(1.01);
/** 10 µs · 1.01^2600 ≈ 30 min: anything slower lands in the last bucket. */
const BUCKETS = 2600;
/** Sparse form for IPC: [bucket, count] pairs. */
export type HistogramData = [number, number][];

/** Latencies in log buckets 1% wide from 10 µs: small enough for IPC, cheap at a million values a second. */
export class Histogram {
  readonly #counts = new Float64Array(BUCKETS);
  #total = 0;

  record(ms: number): void {
    this.#counts[ms <= MIN_MS ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / MIN_MS) / LOG_GROWTH))]! += 1;
    this.#total += 1;
  }

  merge(data: HistogramData): this {
    for (const [i, n] of data) {
      this.#counts[i]! += n;
      this.#total += n;
    }
    return this;
  }

  toJSON(): HistogramData {
    const out: HistogramData = [];
    this.#counts.forEach((n, i) => n > 0 && out.push([i, n]));
    return out;
  }

  /** The value at quantile q (0–1) of `count + missing` samples; the missing ones never arrived, so Infinity when q falls among them. */
  quantile(q: number, missing = 0): number {
    const rank = Math.ceil(q * (this.#total + missing));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank && seen > 0) return MIN_MS * Math.exp(LOG_GROWTH * i);
    }
    return Infinity;
  }
}
