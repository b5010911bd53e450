// Identifiers that reach file paths and SQL are checked here, before they touch either.

const RUN_ID = /^run_\d{8}_\d{6}_[a-z0-9][a-z0-9_-]{0,47}$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const TRIGGER = /^[a-z0-9][a-z0-9-]{0,31}$/;

export function isRunId(value: unknown): value is string {
  return typeof value === 'string' && RUN_ID.test(value);
}

/** Site and account ids: letters, digits, `_`, `.`, `-`; never `.` or `..`. */
export function isName(value: unknown): value is string {
  return typeof value === 'string' && NAME.test(value) && !/^\.+$/.test(value);
}

export function isTrigger(value: unknown): value is string {
  return typeof value === 'string' && TRIGGER.test(value);
}

/** `run_20251204_190332_manual`, with `_2`, `_3`, … when that second already has one. */
export function runId(at: Date, trigger: string, attempt = 1): string {
  const iso = at.toISOString(); // 2025-12-04T19:03:32.123Z
  const day = iso.slice(0, 10).replaceAll('-', '');
  const time = iso.slice(11, 19).replaceAll(':', '');
  return `run_${day}_${time}_${trigger}${attempt > 1 ? `_${attempt}` : ''}`;
}
