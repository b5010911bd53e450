// Cron expressions and time zones, read by croner: 5 fields, or 6 with seconds first
// (docs/api.md "Schedules"). Which fire times are due and when the next one falls.
import { Cron } from 'croner';

/** A cron expression or time zone that cannot be used; the message names the field. */
export class ScheduleSpecError extends Error {
  readonly field: 'cron' | 'timezone';
  constructor(field: 'cron' | 'timezone', message: string) {
    super(message);
    this.name = 'ScheduleSpecError';
    this.field = field;
  }
}

const cache = new Map<string, Cron>();

/** The IANA name as Intl spells it (`europe/paris` → `Europe/Paris`); throws naming `timezone`. */
export function checkTimezone(timezone: string): string {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: timezone }).resolvedOptions().timeZone;
  } catch {
    throw new ScheduleSpecError('timezone', `Expected \`timezone\` to be an IANA time zone name such as "Europe/Paris", got ${JSON.stringify(timezone.slice(0, 80))}.`);
  }
}

/** The parsed pattern (kept: the ticker asks again every tick); throws naming `cron`. */
export function cronOf(cron: string, timezone: string): Cron {
  const key = `${timezone}\n${cron}`;
  let parsed = cache.get(key);
  if (parsed) return parsed;
  try {
    // No callback: croner schedules nothing, it only answers questions about the pattern.
    parsed = new Cron(cron, { timezone, mode: '5-or-6-parts' });
  } catch (err) {
    const why = err instanceof Error ? err.message.replace(/^CronPattern: /, '') : String(err);
    throw new ScheduleSpecError('cron', `Expected \`cron\` to be 5 fields, or 6 with seconds first (${why}).`);
  }
  if (parsed.nextRun() === null) throw new ScheduleSpecError('cron', `\`cron\` ${JSON.stringify(cron)} never fires.`);
  if (cache.size > 1000) cache.clear();
  cache.set(key, parsed);
  return parsed;
}

/** Epoch ms of the first fire time after `afterMs`; null if there is none. */
export function nextFireAfter(s: { cron: string; timezone: string }, afterMs: number): number | null {
  return cronOf(s.cron, s.timezone).nextRun(new Date(afterMs))?.getTime() ?? null;
}

/**
 * The fire time due at `nowMs`: the latest one in (`afterMs`, `nowMs`], however many fell in
 * that span (missed fires start one run, docs/operations.md); null if none fell.
 */
export function dueFire(s: { cron: string; timezone: string }, afterMs: number, nowMs: number): number | null {
  if (nowMs <= afterMs) return null;
  const latest = cronOf(s.cron, s.timezone).previousRuns(1, new Date(nowMs))[0]?.getTime();
  return latest !== undefined && latest > afterMs && latest <= nowMs ? latest : null;
}
