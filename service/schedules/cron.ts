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

/** Epoch ms of the latest fire time at or before `atMs`; null if there is none. */
function latestAtOrBefore(c: Cron, atMs: number): number | null {
  return c.previousRuns(1, new Date(atMs + 1))[0]?.getTime() ?? null;
}

/** At most this many fire times are started one by one in a tick; earlier ones are merged. */
export const MAX_FIRES_PER_TICK = 10;

/**
 * The fire times to claim at `nowMs`, oldest first, of those after `afterMs` (the schedule's last
 * fire handled): each one after `lookedAtMs` (this ticker's previous look: it woke late for them,
 * so each starts a run), preceded by the latest one at or before it, if any, standing for all
 * that fell before it (missed while no ticker looked, or while the database was away: they
 * start one run, docs/operations.md).
 */
export function dueFires(s: { cron: string; timezone: string }, afterMs: number, lookedAtMs: number, nowMs: number): number[] {
  if (nowMs <= afterMs) return [];
  const c = cronOf(s.cron, s.timezone);
  const fires: number[] = [];
  const from = Math.min(Math.max(afterMs, lookedAtMs), nowMs);
  const merged = from > afterMs ? latestAtOrBefore(c, from) : null;
  if (merged !== null && merged > afterMs) fires.push(merged);
  for (let d = c.nextRun(new Date(from)); d !== null && d.getTime() <= nowMs; d = c.nextRun(d)) fires.push(d.getTime());
  // A ticker stalled for long: the oldest of its fresh fires are merged too.
  return fires.length > MAX_FIRES_PER_TICK ? fires.slice(-MAX_FIRES_PER_TICK) : fires;
}

/** The latest fire time in (`afterMs`, `nowMs`], however many fell in that span; null if none fell. */
export function dueFire(s: { cron: string; timezone: string }, afterMs: number, nowMs: number): number | null {
  const latest = latestAtOrBefore(cronOf(s.cron, s.timezone), nowMs);
  return latest !== null && latest > afterMs ? latest : null;
}
