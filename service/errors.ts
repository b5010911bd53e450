// The one table of error codes, for every door: the HTTP API, the WebSocket hub and the ingest
// doors. A code means the same thing wherever it is answered; docs/api.md lists every code.
import { StoreUnavailableError, isTransient } from './store/faults.js';

export interface ErrorSpec {
  /** The HTTP status it is answered with. */
  http: number;
  /** The WebSocket close code, for codes that end a socket rather than answer a frame. */
  wsClose?: number;
  /** Said when nothing more specific is. */
  message: string;
}

export const ERROR_CODES = {
  BAD_REQUEST: { http: 400, message: 'The request is not valid.' },
  INVALID_OPTIONS: { http: 400, message: 'The pipeline options are not valid.' },
  UNKNOWN_PIPELINE: { http: 400, message: 'No pipeline of that name is registered.' },
  INVALID_RUN_ID: { http: 400, message: 'That is not a run id.' },
  INVALID_WEBHOOK_URL: { http: 400, message: 'The webhook URL is not one the service may call.' },
  INVALID_SCHEDULE: { http: 400, message: 'The cron expression or time zone is not valid.' },
  INVALID_TOPIC: { http: 400, message: 'Expected a topic "run:<run_id>", "site:<site_id>" or "site:*".' },
  UNAUTHORIZED: { http: 401, message: 'A valid `Authorization: Token …` header is required.' },
  FORBIDDEN: { http: 403, message: 'This token may not reach that site.' },
  RUN_NOT_FOUND: { http: 404, message: 'No run with that id.' },
  WEBHOOK_NOT_FOUND: { http: 404, message: 'No webhook with that id.' },
  SCHEDULE_NOT_FOUND: { http: 404, message: 'No schedule with that id.' },
  NOT_FOUND: { http: 404, message: 'Not found.' },
  JOB_NOT_FOUND: { http: 404, message: 'No worker job with that id.' },
  COMMAND_NOT_ALLOWED: { http: 409, message: "The run's state does not allow that command." },
  LEASE_LOST: { http: 409, message: "The job's lease ran out or went to another worker; nothing was recorded." },
  PAYLOAD_TOO_LARGE: { http: 413, wsClose: 1009, message: 'The request body is too large.' },
  UNSUPPORTED_MEDIA_TYPE: { http: 415, message: 'Send the body as application/json.' },
  IDEMPOTENCY_KEY_REUSED: { http: 422, message: 'That Idempotency-Key was used with another body.' },
  RATE_LIMITED: { http: 429, message: 'Too many messages; slow down.' },
  TOO_MANY_SUBSCRIPTIONS: { http: 429, message: 'Too many topics on one connection.' },
  SLOW_CONSUMER: { http: 503, wsClose: 4008, message: 'slow consumer' },
  UNAVAILABLE: { http: 503, wsClose: 1001, message: 'The service is shutting down.' },
  DATABASE_UNAVAILABLE: { http: 503, message: 'The database cannot be reached right now; nothing was done. Try again.' },
  INTERNAL: { http: 500, wsClose: 1011, message: 'Something went wrong on our side.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
}

/** A domain error: a code from the table and a message safe to show the caller. */
export class RunstateError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message: string = ERROR_CODES[code].message) {
    super(message);
    this.name = 'RunstateError';
    this.code = code;
    this.status = ERROR_CODES[code].http;
  }
}

/**
 * Any thrown value as a RunstateError: domain errors as they are, the database or disk away
 * for now `DATABASE_UNAVAILABLE`, anything else `INTERNAL` (never its message).
 */
export function asRunstateError(err: unknown): RunstateError {
  if (err instanceof RunstateError) return err;
  if (err instanceof StoreUnavailableError || isTransient(err)) return new RunstateError('DATABASE_UNAVAILABLE');
  return new RunstateError('INTERNAL');
}

/** The body every door puts an error in. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
}

function body(err: RunstateError): ErrorBody {
  return { code: err.code, message: err.message };
}

/** HTTP: the status and the `{"error":{code,message}}` body. */
export function httpError(err: RunstateError): { status: number; body: { error: ErrorBody } } {
  return { status: err.status, body: { error: body(err) } };
}

/** WebSocket: the `{"type":"error",code,message}` frame that answers a bad client message. */
export function wsErrorFrame(err: RunstateError): { type: 'error' } & ErrorBody {
  return { type: 'error', ...body(err) };
}

/** WebSocket: the close code and reason for a code that ends the connection. */
export function wsClose(code: ErrorCode): { code: number; reason: string } {
  const spec: ErrorSpec = ERROR_CODES[code];
  return { code: spec.wsClose ?? 1008, reason: spec.message.slice(0, 120) };
}

/** Ingest (socket lines and `POST /runs/:id/events`): the per-event reply for an event refused. */
export function ingestFailure(err: RunstateError): { ok: false; error: ErrorBody } {
  return { ok: false, error: body(err) };
}
