// What reaches the log about an error: its type, message, code and stack, never the object
// itself (a pg error or client carries the connection parameters, a password among them).

/** Hides the password of a connection string (`postgres://user:secret@host` → `postgres://user:[redacted]@host`). */
export function redactSecrets(text: string): string {
  return text
    .replace(/([a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*:)[^@/\s]*@/gi, '$1[redacted]@')
    .replace(/(password\s*[=:]\s*)[^\s&;,]+/gi, '$1[redacted]');
}

export interface LoggedError {
  type: string;
  message: string;
  code?: string;
  stack?: string;
}

/** pino's `err` serializer: message, code and stack only, with any connection-string password hidden. */
export function serializeError(err: unknown): LoggedError {
  if (!(err instanceof Error)) {
    return { type: typeof err, message: redactSecrets(typeof err === 'string' ? err : safeString(err)) };
  }
  const code = (err as { code?: unknown }).code;
  return {
    type: err.name,
    message: redactSecrets(err.message),
    ...(typeof code === 'string' || typeof code === 'number' ? { code: String(code) } : {}),
    ...(err.stack ? { stack: redactSecrets(err.stack) } : {}),
  };
}

function safeString(value: unknown): string {
  if (value === null || value === undefined || typeof value === 'number' || typeof value === 'boolean') return String(value);
  return Object.prototype.toString.call(value);
}

/** The serializers every logger of the service uses. */
export const logSerializers = { err: serializeError, error: serializeError };
