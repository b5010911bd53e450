// The `limit` field of a stage (docs/pipelines.md, "Limits"): what it declares, how a declaration is checked
// when a pipeline loads, and the one rule of how a rate becomes a spacing between attempts.
import { isName } from '../ids.js';

/** A stage's `limit`: shared by every stage, of every run, on every instance, that names `key`. */
export interface StageLimit {
  key: string;
  /** Attempts started per second. */
  per_second?: number;
  /** Attempts started per minute. */
  per_minute?: number;
  /** Attempts in flight at once. */
  concurrency?: number;
}

const FIELDS = ['key', 'per_second', 'per_minute', 'concurrency'];
/** A rate beyond this is no limit at all: the spacing would be under 10 µs. */
const MAX_PER_SECOND = 100_000;
const MAX_CONCURRENCY = 100_000;

/** What is wrong with a `limit` declaration, one sentence each; empty when it is good. */
export function limitProblems(value: unknown): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return ['`limit` must be an object like {"key": "openai", "per_second": 10}'];
  const limit = value as Record<string, unknown>;
  const problems: string[] = [];
  for (const field of Object.keys(limit)) if (!FIELDS.includes(field)) problems.push(`\`limit\` has an unknown field \`${field}\` (known: ${FIELDS.join(', ')})`);
  if (!isName(limit.key)) problems.push('`limit.key` must be 1–64 letters, digits, `_`, `.` or `-`');
  const rate = (field: string, max: number) => {
    const v = limit[field];
    if (v === undefined) return;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > max) problems.push(`\`limit.${field}\` must be a number above 0 and at most ${max}, got ${JSON.stringify(v)}`);
  };
  rate('per_second', MAX_PER_SECOND);
  rate('per_minute', MAX_PER_SECOND * 60);
  const c = limit.concurrency;
  if (c !== undefined && (typeof c !== 'number' || !Number.isInteger(c) || c < 1 || c > MAX_CONCURRENCY)) {
    problems.push(`\`limit.concurrency\` must be a whole number from 1 to ${MAX_CONCURRENCY}, got ${JSON.stringify(c)}`);
  }
  if (limit.per_second === undefined && limit.per_minute === undefined && limit.concurrency === undefined) {
    problems.push('`limit` must say at least one of `per_second`, `per_minute`, `concurrency`');
  }
  return problems;
}

/**
 * The time between two attempts' starts, in ms; undefined with no rate. Both rates given: the
 * stricter spacing, which keeps both. The bucket holds one token (a burst of 1): over any
 * window of t seconds, at most `rate·t + 1` attempts start.
 */
export function spacingMs(limit: StageLimit): number | undefined {
  const spacings = [limit.per_second && 1000 / limit.per_second, limit.per_minute && 60_000 / limit.per_minute].filter((v): v is number => typeof v === 'number');
  return spacings.length > 0 ? Math.max(...spacings) : undefined;
}

/** Attempts per second the limit allows; null with no rate. */
export function ratePerSecond(limit: StageLimit): number | null {
  const ms = spacingMs(limit);
  return ms === undefined ? null : 1000 / ms;
}

/** The same declaration (the fields that matter), whichever order or extra fields. */
function sameLimit(a: StageLimit, b: StageLimit): boolean {
  return a.per_second === b.per_second && a.per_minute === b.per_minute && a.concurrency === b.concurrency;
}

/**
 * Every key the pipelines declare, one declaration each. Two stages that name one key with
 * different numbers would make the shared limit mean two things: refused, naming both.
 */
export function declaredLimits<S extends { where: string; limit?: StageLimit | undefined }>(
  stages: readonly S[],
): { limits: Map<string, StageLimit>; problems: { stage: S; message: string }[] } {
  const limits = new Map<string, StageLimit>();
  const first = new Map<string, string>();
  const problems: { stage: S; message: string }[] = [];
  for (const stage of stages) {
    const { where, limit } = stage;
    if (!limit) continue;
    const seen = limits.get(limit.key);
    if (!seen) {
      limits.set(limit.key, { key: limit.key, ...pick(limit) });
      first.set(limit.key, where);
    } else if (!sameLimit(seen, limit)) {
      problems.push({ stage, message: `${where} declares the limit ${JSON.stringify(limit.key)} as ${JSON.stringify(pick(limit))}, but ${first.get(limit.key)} declares it as ${JSON.stringify(pick(seen))}: one key, one limit` });
    }
  }
  return { limits, problems };
}

function pick(limit: StageLimit): Omit<StageLimit, 'key'> {
  return {
    ...(limit.per_second !== undefined ? { per_second: limit.per_second } : {}),
    ...(limit.per_minute !== undefined ? { per_minute: limit.per_minute } : {}),
    ...(limit.concurrency !== undefined ? { concurrency: limit.concurrency } : {}),
  };
}
