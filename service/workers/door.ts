// The workers' side of jobs (docs/workers.md): claims, long-polls, heartbeats, answers. Any instance
// serves them; answers are stored on the job, where the run's owner takes them up (queue.ts).
import type { Principal } from '../auth/tokens.js';
import { httpError, RunstateError } from '../errors.js';
import { jobRef, parseJobRef, type ClaimedJob, type FinishAnswer, type JobAnswer, type JobRecord, type JobStore } from '../store/jobs.js';
import { answerEntry, bad, claimBody, completion, failure, MAX_CLAIM, objectBody, type ClaimBody } from './bodies.js';
import type { WorkerMetrics } from './metrics.js';
import { PollLine } from './polls.js';
import { QueueStats, type QueueStatsView } from './queue-stats.js';

const SEEN_MS = 60_000;
/** How often one instance writes that it saw a worker on a queue: the list is of the last minute. */
const NOTE_SEEN_MS = 5_000;
/** Jobs handed out here whose answer has not come back here, kept for the answer's checks (at most this many, newest). */
const HANDED_OUT = 10_000;

export interface WorkerSeen {
  worker_id: string;
  queues: string[];
  jobs_in_flight: number;
  last_seen: string;
}

/** A queue as the dashboard's Workers page shows it. */
export interface QueueSeen extends QueueStatsView {
  queue: string;
  /** Jobs waiting for a worker (a job whose lease ran out included). */
  waiting: number;
  /** Jobs workers hold under a live lease. */
  in_flight: number;
  /** Workers seen on it in the last minute. */
  workers: number;
}

export interface DoorOptions {
  jobs: JobStore;
  metrics: WorkerMetrics;
  /** Called with a job answered here, once the answer is stored: its run's owner may be this instance. */
  onAnswered: (job: JobRecord, answer: JobAnswer) => void;
  /** Called with a heartbeat's message, once the lease was extended. */
  onMessage?: (job: JobRecord, message: string) => void;
  /** How often a long-poll claim looks again without a hint (leases run out silently). [250] */
  pollMs?: number;
}

interface Seen {
  queues: Set<string>;
  lastSeen: number;
  inFlight: Set<number>;
}

export class WorkerDoor {
  readonly #opts: DoorOptions;
  readonly #polls: PollLine;
  readonly #seen = new Map<string, Seen>();
  /** When this instance last wrote (worker, queue) to the job store. */
  readonly #noted = new Map<string, number>();
  readonly #stats = new QueueStats();
  /**
   * The jobs this instance handed out, by job id (`<job>.<claim>`), until that claim's answer
   * comes back here: POST /answers checks an entry against the record its claim returned, not
   * against a fresh read. Queue and kind never change and a job's claims only grow, so the
   * checks come out as a read's would; the store's transaction still gives the verdict.
   */
  readonly #handedOut = new Map<string, JobRecord>();
  #closed = false;

  constructor(opts: DoorOptions) {
    this.#opts = opts;
    this.#polls = new PollLine(opts.pollMs);
  }

  /**
   * A job of `queue` became claimable: long polls waiting on it are woken for it at the end of
   * this turn, as many as it takes (polls.ts).
   */
  queued(queue: string): void {
    this.#polls.queued(queue);
  }

  /** Long-polls answer at once with what they have. */
  close(): void {
    this.#closed = true;
    this.#polls.close();
  }

  /** `gone`: the worker hung up (it is stopping): no job is claimed for it after that. */
  async claim(principal: Principal, body: unknown, gone?: AbortSignal): Promise<{ jobs: unknown[] }> {
    const c = claimBody(body);
    requireQueue(principal, c.queue);
    return this.#claim(c, gone);
  }

  async #claim({ queue, workerId, max, waitMs }: ClaimBody, gone: AbortSignal | undefined): Promise<{ jobs: unknown[] }> {
    this.#see(workerId, queue);
    const deadline = Date.now() + waitMs;
    // Woken for `share` jobs queued: this poll claims them, or passes them on to another poll
    // when it is gone or its claim fails.
    let share = 0;
    for (;;) {
      if (gone?.aborted) {
        this.#polls.wakeFor(queue, share);
        return { jobs: [] };
      }
      let claimed: ClaimedJob[] = [];
      if (waitMs === 0 || share > 0 || this.#polls.worthALook(queue)) {
        const look = this.#polls.look(queue);
        try {
          claimed = await this.#opts.jobs.claim(queue, workerId, max);
        } catch (err) {
          this.#polls.wakeFor(queue, share);
          throw err;
        }
        this.#polls.looked(look, max, claimed);
      }
      if (claimed.length > 0) {
        const seen = this.#see(workerId, queue);
        for (const c of claimed) {
          seen.inFlight.add(c.job.id);
          this.#handedOut.set(jobRef(c.job), c.job);
          if (c.leaseWasLost) {
            this.#opts.metrics.leasesLost.inc({ queue });
            this.#stats.leaseLost(queue);
          }
        }
        for (const ref of this.#handedOut.keys()) {
          if (this.#handedOut.size <= HANDED_OUT) break;
          this.#handedOut.delete(ref);
        }
        return { jobs: claimed.map((c) => describeJob(c.job)) };
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.#closed) return { jobs: [] };
      share = await this.#polls.wait(queue, max, Math.min(left, this.#polls.pollMs), gone);
    }
  }

  async heartbeat(principal: Principal, ref: string, body: unknown): Promise<{ ok: true; cancel: boolean }> {
    const b = body === null || body === undefined ? {} : objectBody(body);
    const message = b.message;
    if (message !== undefined && typeof message !== 'string') throw bad('Expected `message` to be a string.');
    const { job, claims } = await this.#job(principal, ref);
    this.#touch(job);
    const answer = await this.#opts.jobs.heartbeat(job.id, claims, message === undefined ? null : message.slice(0, 2000));
    if (answer === 'not_found') throw notFound(ref);
    if (answer === 'lost') throw lost(ref);
    if (answer === 'ok' && message !== undefined && message !== '') this.#opts.onMessage?.(job, message.slice(0, 2000));
    return { ok: true, cancel: answer === 'cancel' };
  }

  async complete(principal: Principal, ref: string, body: unknown): Promise<Record<string, unknown>> {
    const { job, claims } = await this.#job(principal, ref);
    return this.#finish(job, claims, ref, completion(job, body));
  }

  async fail(principal: Principal, ref: string, body: unknown): Promise<Record<string, unknown>> {
    const { job, claims } = await this.#job(principal, ref);
    return this.#finish(job, claims, ref, failure(body));
  }

  /**
   * `POST /answers`: several jobs' completions and fails in one request and one transaction
   * (docs/workers.md, "Answering several jobs at once"). Each entry gets the status and body its
   * own `/jobs/:id/complete` or `/fail` would have; an entry that is not valid refuses the whole
   * request (400) and nothing is recorded.
   */
  async answers(principal: Principal, body: unknown, gone?: AbortSignal): Promise<{ results: AnswerResult[]; jobs?: unknown[] }> {
    const b = objectBody(body);
    const list = b.answers;
    // The next jobs may be asked for in the same request: checked before anything is written.
    const next = b.claim === undefined ? undefined : claimBody(b.claim, 'claim.');
    if (next) requireQueue(principal, next.queue);
    if (!Array.isArray(list) || list.length === 0 || list.length > MAX_CLAIM) throw bad(`Expected \`answers\` to be a list of 1 to ${MAX_CLAIM} answers.`);
    const entries = list.map((raw: unknown, i) => answerEntry(raw, i));
    // An unknown job, or one of a queue this token does not serve, is that entry's answer alone.
    // The jobs handed out here are known; the others' are read at once.
    const refs = entries.map((e) => parseJobRef(e.ref));
    const known = entries.map((e) => this.#handedOut.get(e.ref));
    const ids = [...new Set(refs.flatMap((r, i) => (r && !known[i] ? [r.id] : [])))];
    const jobs = new Map((ids.length === 0 ? [] : await this.#opts.jobs.getJobs(ids)).map((j) => [j.id, j]));
    for (const e of entries) this.#handedOut.delete(e.ref);
    const found = entries.map((e, i) => {
      const ref = refs[i];
      try {
        return this.#held(principal, e.ref, ref, ref && (known[i] ?? jobs.get(ref.id)));
      } catch (err) {
        if (err instanceof RunstateError) return err;
        throw err;
      }
    });
    // Every body is checked before anything is written.
    const answers = entries.map((e, i) => {
      const f = found[i]!;
      if (f instanceof RunstateError) return undefined;
      try {
        return e.fail !== undefined ? failure(e.fail) : completion(f.job, e.complete);
      } catch (err) {
        if (err instanceof RunstateError) throw new RunstateError(err.code, `answers[${i}]: ${err.message}`);
        throw err;
      }
    });
    const todo = entries.flatMap((_, i) => {
      const f = found[i]!;
      const answer = answers[i];
      return f instanceof RunstateError || answer === undefined ? [] : [{ i, job: f.job, claims: f.claims, answer }];
    });
    const verdicts = await this.#opts.jobs.finishAll(todo.map((t) => ({ id: t.job.id, claims: t.claims, answer: t.answer })));
    const results: AnswerResult[] = entries.map((e, i) => {
      const f = found[i]!;
      return f instanceof RunstateError ? refused(e.ref, f) : { job_id: e.ref, status: 200, ok: true };
    });
    todo.forEach((t, k) => {
      const ref = entries[t.i]!.ref;
      try {
        results[t.i] = { job_id: ref, status: 200, ...this.#settle(t.job, t.answer, verdicts[k]!, ref) };
      } catch (err) {
        if (!(err instanceof RunstateError)) throw err;
        results[t.i] = refused(ref, err);
      }
    });
    return next ? { results, ...(await this.#claim(next, gone)) } : { results };
  }

  /** Gives a claimed job back unanswered: offered again at once, same attempt (a worker stopping). */
  async release(principal: Principal, ref: string): Promise<Record<string, unknown>> {
    const { job, claims } = await this.#job(principal, ref);
    this.#handedOut.delete(ref);
    const verdict = await this.#opts.jobs.release(job.id, claims);
    if (verdict === 'not_found') throw notFound(ref);
    if (verdict === 'lost') throw lost(ref);
    this.#done(job);
    if (verdict === 'ok') this.queued(job.queue);
    return verdict === 'ok' ? { ok: true } : { ok: true, [verdict]: true };
  }

  /**
   * What the dashboard shows of the workers: those any instance saw in the last minute, and per
   * queue the jobs waiting and in flight (from the database), the workers on it, and this
   * instance's claim-to-answer times and lost leases.
   */
  async overview(): Promise<{ workers: WorkerSeen[]; queues: QueueSeen[] }> {
    const [counts, workers] = await Promise.all([this.#opts.jobs.queueCounts(), this.seen()]);
    const names = new Set([...Object.keys(counts), ...workers.flatMap((w) => w.queues), ...this.#stats.queues()]);
    const queues = [...names].sort().map((queue) => ({
      queue,
      waiting: counts[queue]?.waiting ?? 0,
      in_flight: counts[queue]?.inFlight ?? 0,
      workers: workers.filter((w) => w.queues.includes(queue)).length,
      ...this.#stats.view(queue),
    }));
    return { workers, queues };
  }

  /** Workers any instance saw in the last minute, newest first (`GET /api/v1/workers/`). */
  async seen(now = Date.now()): Promise<WorkerSeen[]> {
    return (await this.#opts.jobs.workersSeen(now - SEEN_MS)).map((w) => ({
      worker_id: w.workerId,
      queues: w.queues,
      jobs_in_flight: w.jobsInFlight,
      last_seen: new Date(w.lastSeen).toISOString(),
    }));
  }

  /** Workers this instance saw in the last minute, newest first (its metrics). */
  workers(now = Date.now()): WorkerSeen[] {
    const out: WorkerSeen[] = [];
    for (const [id, s] of this.#seen) {
      if (now - s.lastSeen > SEEN_MS) {
        this.#seen.delete(id);
        continue;
      }
      out.push({ worker_id: id, queues: [...s.queues].sort(), jobs_in_flight: s.inFlight.size, last_seen: new Date(s.lastSeen).toISOString() });
    }
    return out.sort((a, b) => (a.last_seen < b.last_seen ? 1 : -1));
  }

  async #finish(job: JobRecord, claims: number, ref: string, answer: JobAnswer): Promise<Record<string, unknown>> {
    this.#handedOut.delete(ref);
    return this.#settle(job, answer, await this.#opts.jobs.finish(job.id, claims, answer), ref);
  }

  /** What a stored answer's verdict tells the worker, and the bookkeeping of an answer taken. */
  #settle(job: JobRecord, answer: JobAnswer, verdict: FinishAnswer, ref: string): Record<string, unknown> {
    if (verdict === 'not_found') throw notFound(ref);
    if (verdict === 'lost') throw lost(ref);
    this.#done(job);
    if (verdict === 'duplicate') return { ok: true, duplicate: true };
    if (verdict === 'cancelled') return { ok: true, cancelled: true };
    if (job.claimedAt !== null) {
      const ms = Math.max(0, Date.now() - job.claimedAt);
      this.#opts.metrics.jobSeconds.observe({ queue: job.queue, kind: job.kind, outcome: answer.state }, ms / 1000);
      this.#stats.answered(job.queue, ms);
    }
    this.#opts.onAnswered(job, answer);
    return { ok: true };
  }

  async #job(principal: Principal, ref: string): Promise<{ job: JobRecord; claims: number }> {
    const parsed = parseJobRef(ref);
    return this.#held(principal, ref, parsed, parsed && (await this.#opts.jobs.getJob(parsed.id)));
  }

  /** The job a worker names, as read: 404 for an unknown one or a claim it never had, 403 for another queue's. */
  #held(principal: Principal, ref: string, parsed: { id: number; claims: number } | undefined, job: JobRecord | undefined): { job: JobRecord; claims: number } {
    if (!parsed || !job || parsed.claims < 1 || parsed.claims > job.claims) throw notFound(ref);
    requireQueue(principal, job.queue);
    return { job, claims: parsed.claims };
  }

  #see(workerId: string, queue: string): Seen {
    let s = this.#seen.get(workerId);
    if (!s) {
      s = { queues: new Set(), lastSeen: Date.now(), inFlight: new Set() };
      this.#seen.set(workerId, s);
    }
    s.queues.add(queue);
    s.lastSeen = Date.now();
    this.#note(workerId, queue, s.lastSeen);
    return s;
  }

  /** Writes (worker, queue) for every instance to list, at most every NOTE_SEEN_MS: never on the path of every claim. */
  #note(workerId: string, queue: string, now: number): void {
    const key = `${workerId}\u0000${queue}`;
    const last = this.#noted.get(key);
    if (last !== undefined && now - last < NOTE_SEEN_MS) return;
    this.#noted.set(key, now);
    if (this.#noted.size > 10_000) {
      for (const [k, at] of this.#noted) if (now - at >= NOTE_SEEN_MS) this.#noted.delete(k);
    }
    // Only a list for screens: a write that fails is tried again at the next claim or beat.
    this.#opts.jobs.sawWorker(workerId, queue, now).catch(() => this.#noted.delete(key));
  }

  #touch(job: JobRecord): void {
    if (job.workerId === null) return;
    const s = this.#seen.get(job.workerId);
    if (s) s.lastSeen = Date.now();
    this.#note(job.workerId, job.queue, Date.now());
  }

  #done(job: JobRecord): void {
    if (job.workerId === null) return;
    const s = this.#seen.get(job.workerId);
    if (!s) return;
    s.inFlight.delete(job.id);
    s.lastSeen = Date.now();
  }
}

/** A job as a worker gets it (docs/workers.md). */
export function describeJob(job: JobRecord): Record<string, unknown> {
  return {
    job_id: jobRef(job),
    kind: job.kind,
    run_id: job.runId,
    site_id: job.siteId,
    pipeline: job.pipeline,
    stage: job.stage,
    stage_key: job.stageKey,
    ...(job.kind === 'item' ? { item: job.item } : {}),
    attempt: job.attempt,
    idempotency_key: job.idempotencyKey,
    options: job.options,
    lease_ms: job.leaseMs,
  };
}

function requireQueue(principal: Principal, queue: string): void {
  const queues = principal.worker?.queues;
  if (queues && !queues.has(queue)) throw new RunstateError('FORBIDDEN', `This worker token does not serve queue ${JSON.stringify(queue)}.`);
}

/** One entry's outcome: the status and body its own endpoint would have answered. */
export type AnswerResult = { job_id: string; status: number } & Record<string, unknown>;

function refused(ref: string, err: RunstateError): AnswerResult {
  const { status, body } = httpError(err);
  return { job_id: ref, status, ...body };
}

function notFound(ref: string): RunstateError {
  return new RunstateError('JOB_NOT_FOUND', `No job ${JSON.stringify(ref.slice(0, 40))}.`);
}

function lost(ref: string): RunstateError {
  return new RunstateError('LEASE_LOST', `The lease of job ${ref} ran out or went to another worker; nothing was recorded.`);
}
