// How an item attempt that throws tells the stage more than "it failed": that no later attempt
// can succeed (`retryable: false`), or that it never started and is given back (a worker job
// withdrawn at a pause). Duck-typed, so a pipeline module needs no import to say `retryable: false`.

/** Thrown by an attempt that never started: the item waits to start again with the same attempt number. */
export class AttemptReleasedError extends Error {
  readonly released = true;
  constructor(message = 'the attempt was given back before it started') {
    super(message);
    this.name = 'AttemptReleasedError';
  }
}

/** An error that says the item must not be retried: `err.retryable === false`. */
export function isFinalAttempt(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { retryable?: unknown }).retryable === false;
}

export function isReleasedAttempt(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { released?: unknown }).released === true;
}
