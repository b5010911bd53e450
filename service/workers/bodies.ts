// What workers send (docs/workers.md): the checks of claim, heartbeat and answer
// bodies, each refusal a 400 naming the field. door.ts asks these before it touches a job.
import { RunstateError } from '../errors.js';
import type { JobAnswer, JobRecord } from '../store/jobs.js';

export const MAX_WAIT_MS = 30_000;
export const MAX_CLAIM = 100;
const NAME = /^[A-Za-z0-9_.:-]{1,100}$/;

/** A claim as asked for: `POST /claim`, or the `claim` of `POST /answers`. */
export interface ClaimBody {
  queue: string;
  workerId: string;
  max: number;
  waitMs: number;
}

/** `prefix` names where the claim sits in the body (`claim.` in an answers request). */
export function claimBody(body: unknown, prefix = ''): ClaimBody {
  const b = objectBody(body);
  const queue = b.queue;
  if (typeof queue !== 'string' || !NAME.test(queue)) throw bad(`Expected \`${prefix}queue\` to be 1–100 letters, digits, \`_\`, \`.\`, \`:\` or \`-\`.`);
  const workerId = b.worker_id;
  if (typeof workerId !== 'string' || !NAME.test(workerId)) throw bad(`Expected \`${prefix}worker_id\` to be 1–100 letters, digits, \`_\`, \`.\`, \`:\` or \`-\`.`);
  return { queue, workerId, max: intField(b, 'max', 1, 1, MAX_CLAIM, prefix), waitMs: intField(b, 'wait_ms', 0, 0, MAX_WAIT_MS, prefix) };
}

export function objectBody(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('Expected a JSON object.');
  return body as Record<string, unknown>;
}

export function intField(b: Record<string, unknown>, name: string, fallback: number, min: number, max: number, prefix = ''): number {
  const v = b[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(`Expected \`${prefix}${name}\` to be an integer from ${min} to ${max}.`);
  return v;
}

/** One entry of `POST /answers`, as it comes. */
export interface AnswerEntry {
  ref: string;
  complete?: unknown;
  fail?: unknown;
}

export function answerEntry(raw: unknown, i: number): AnswerEntry {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad(`Expected answers[${i}] to be an object.`);
  const e = raw as Record<string, unknown>;
  if (typeof e.job_id !== 'string' || e.job_id.length === 0) throw bad(`Expected answers[${i}].job_id to be a job id.`);
  if ((e.complete === undefined) === (e.fail === undefined)) throw bad(`Expected answers[${i}] to have one of \`complete\` or \`fail\`.`);
  return { ref: e.job_id, ...(e.fail !== undefined ? { fail: e.fail } : { complete: e.complete }) };
}

/** A completion's body as the job's kind wants it: `{items}` for a load, `{cost?, output?}` for an item. */
export function completion(job: JobRecord, body: unknown): JobAnswer {
  const b = body === null || body === undefined ? {} : objectBody(body);
  return { state: 'done', result: job.kind === 'load' ? { items: checkItems(b.items) } : checkItemResult(b) };
}

export function failure(body: unknown): JobAnswer {
  const b = objectBody(body);
  if (typeof b.error !== 'string' || b.error.length === 0) throw bad('Expected `error` to be a non-empty string.');
  if (b.retryable !== undefined && typeof b.retryable !== 'boolean') throw bad('Expected `retryable` to be a boolean.');
  return { state: 'failed', error: b.error.slice(0, 4000), retryable: b.retryable !== false };
}

export function checkItems(raw: unknown): Record<string, unknown>[] {
  if (!Array.isArray(raw)) throw bad('Expected `items` to be a list of {id, title?, …}.');
  const seen = new Set<string>();
  return raw.map((it: unknown, i) => {
    if (typeof it !== 'object' || it === null || Array.isArray(it)) throw bad(`Expected items[${i}] to be an object.`);
    const item = it as Record<string, unknown>;
    const id = item.id;
    if ((typeof id !== 'string' || id.length === 0 || id.length > 200) && !(typeof id === 'number' && Number.isSafeInteger(id))) {
      throw bad(`Expected items[${i}].id to be a string (1–200 characters) or an integer.`);
    }
    if (item.title !== undefined && typeof item.title !== 'string') throw bad(`Expected items[${i}].title to be a string.`);
    const key = String(id);
    if (seen.has(key)) throw bad(`items[${i}].id ${key} appears twice.`);
    seen.add(key);
    return { ...item, title: (item.title as string | undefined) ?? key };
  });
}

export function checkItemResult(b: Record<string, unknown>): { cost?: number; output?: unknown } {
  if (b.cost !== undefined && (typeof b.cost !== 'number' || !Number.isFinite(b.cost) || b.cost < 0)) {
    throw bad('Expected `cost` to be a finite number of at least 0.');
  }
  return { ...(b.cost === undefined ? {} : { cost: b.cost }), ...(b.output === undefined ? {} : { output: b.output }) };
}

export function bad(message: string): RunstateError {
  return new RunstateError('BAD_REQUEST', message);
}
