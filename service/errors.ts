// One table of error codes. Every code is documented in docs/api.md; the HTTP layer maps
// them to responses in one place, so a code means the same status everywhere.

export const ERROR_CODES = {
  BAD_REQUEST: { status: 400, message: 'The request is not valid.' },
  INVALID_OPTIONS: { status: 400, message: 'The pipeline options are not valid.' },
  UNKNOWN_PIPELINE: { status: 400, message: 'No pipeline of that name is registered.' },
  INVALID_RUN_ID: { status: 400, message: 'That is not a run id.' },
  UNAUTHORIZED: { status: 401, message: 'A valid `Authorization: Token …` header is required.' },
  FORBIDDEN: { status: 403, message: 'This token may not reach that site.' },
  RUN_NOT_FOUND: { status: 404, message: 'No run with that id.' },
  NOT_FOUND: { status: 404, message: 'Not found.' },
  COMMAND_NOT_ALLOWED: { status: 409, message: "The run's state does not allow that command." },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'The request body is too large.' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Send the body as application/json.' },
  UNAVAILABLE: { status: 503, message: 'The service is shutting down.' },
  INTERNAL: { status: 500, message: 'Something went wrong on our side.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** A domain error: a code from the table and a message safe to show the caller. */
export class RunstateError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message: string = ERROR_CODES[code].message) {
    super(message);
    this.name = 'RunstateError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
  }
}
