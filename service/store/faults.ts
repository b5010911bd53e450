// Which store and file errors are the database or the disk being away for a while (hold the
// work, retry, say "degraded") rather than a real fault (stop the run, report it).

/** What a passing fault is about: the database cannot be reached, or the disk has no room (or fails). */
export type FaultKind = 'database' | 'disk';

/** The database (or the disk under it) cannot take the call right now; nothing was done. */
export class StoreUnavailableError extends Error {
  readonly code = 'STORE_UNAVAILABLE';
  constructor(message = 'the database cannot be reached right now', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

// SQLSTATE classes and codes that mean "the connection or the server is going or gone" or "took
// too long": retrying later on a new connection is the cure. Everything else is a fault.
const PG_TRANSIENT_CLASSES = ['08']; // connection exception
const PG_TRANSIENT_CODES = new Set([
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '57014', // query_canceled: statement_timeout
  '55P03', // lock_not_available: lock_timeout
  '53300', // too_many_connections
  '53100', // disk_full (the server's disk)
  '40001', // serialization_failure
  '40P01', // deadlock_detected
]);
const NET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EAI_AGAIN', 'ENOTFOUND', 'ECONNABORTED']);
const DISK_CODES = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS']);
// pg and pg-pool say these in plain Error messages, without a code.
const PG_MESSAGES = [
  'Connection terminated',
  'connection error',
  'not queryable',
  'timeout exceeded when trying to connect',
  'Query read timeout',
  'Connection terminated due to connection timeout',
  'terminating connection',
];

/** The kind of passing fault `err` is, or undefined when it is a real fault (a bug, a conflict, a lost lease). */
export function faultKind(err: unknown): FaultKind | undefined {
  if (err instanceof StoreUnavailableError) return diskLike(err.cause) ? 'disk' : 'database';
  if (typeof err !== 'object' || err === null) return undefined;
  const { code, message } = err as { code?: unknown; message?: unknown };
  if (typeof code === 'string') {
    if (code === 'SQLITE_FULL' || code.startsWith('SQLITE_IOERR') || DISK_CODES.has(code) || code === '53100') return 'disk';
    if (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_') || code === 'SQLITE_LOCKED') return 'database';
    if (NET_CODES.has(code) || PG_TRANSIENT_CODES.has(code) || PG_TRANSIENT_CLASSES.includes(code.slice(0, 2))) return 'database';
  }
  if (typeof message === 'string' && PG_MESSAGES.some((m) => message.includes(m))) return 'database';
  // AggregateError (a connect to several addresses), or an error wrapping another.
  const nested = (err as { errors?: unknown; cause?: unknown }).errors;
  if (Array.isArray(nested) && nested.length > 0 && nested.every((e) => faultKind(e) !== undefined)) return faultKind(nested[0]);
  return undefined;
}

function diskLike(err: unknown): boolean {
  return faultKind(err) === 'disk';
}

/** Whether `err` passes by itself (retry later) rather than being a real fault. */
export function isTransient(err: unknown): boolean {
  return faultKind(err) !== undefined;
}

/** Whether `err` is the disk having no room: SQLite's SQLITE_FULL, a file write's ENOSPC or EDQUOT, Postgres' disk_full. */
export function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (err instanceof StoreUnavailableError) return isDiskFull(err.cause);
  return code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'EDQUOT' || code === '53100';
}

/** What /healthz says about a fault: `disk full`, or a short cause without any detail of the connection. */
export function faultReason(err: unknown): string {
  if (isDiskFull(err)) return 'disk full';
  const kind = faultKind(err);
  if (kind === 'disk') return 'disk error';
  const code = (err as { code?: unknown } | null)?.code;
  return `database unavailable${typeof code === 'string' ? ` (${code})` : ''}`;
}
