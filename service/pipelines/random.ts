// Seeded, deterministic randomness for the demo pipelines: the same seed, stage, item and
// attempt give the same latency and the same failure on every machine and after a crash.

/** FNV-1a, 32 bit. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** mulberry32: a uniform number in [0, 1) for the key. */
export function uniform(...key: (string | number)[]): number {
  let t = (hash(key.join('\u0000')) + 0x6d2b79f5) >>> 0;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

/** An exponential latency with the given mean, capped at 4× the mean. */
export function latency(meanMs: number, ...key: (string | number)[]): number {
  if (meanMs <= 0) return 0;
  const u = uniform('latency', ...key);
  return Math.min(meanMs * 4, -Math.log(1 - u) * meanMs);
}

export function pick<T>(list: readonly T[], ...key: (string | number)[]): T {
  return list[Math.floor(uniform('pick', ...key) * list.length)]!;
}
