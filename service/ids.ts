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

/** Why `asId` refused a value; its message names the field. */
export class InvalidIdError extends Error {
  readonly field: string;

  constructor(field: string, value: unknown) {
    const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 80)) : typeof value === 'number' ? String(value) : typeof value;
    super(`Expected \`${field}\` to be an id (1–64 letters, digits, \`_\`, \`.\` or \`-\`) or a whole number ≥ 0, got ${shown}.`);
    this.name = 'InvalidIdError';
    this.field = field;
  }
}

/**
 * An account or site id as given in a body, a query or the tokens file: a JSON number is taken
 * as its decimal string (`5` and `"5"` are the same site, docs/api.md). Anything else that is
 * not a valid id (a fraction, a negative or unsafe number, NaN, a bad string) throws an
 * `InvalidIdError` naming `field`.
 */
export function asId(value: unknown, field: string): string {
  const id = typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? String(value) : value;
  if (!isName(id)) throw new InvalidIdError(field, value);
  return id;
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
