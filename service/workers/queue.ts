// The run owner's side of worker jobs: a queue stage's item attempt (or load) becomes a job in
// the database, and the attempt waits for a worker's answer there. Whoever claims and answers,
// on whatever instance, only this owner records the result, through its run's journal.
import type { Logger } from 'pino';
import { AttemptReleasedError } from '../pipelines/attempts.js';
import type { Item, ItemContext, ItemResult, LoadContext, StageDefinition } from '../pipelines/types.js';
import type { JobAnswer, JobRecord, JobStore, NewJob } from '../store/jobs.js';
import type { RunRecord, Store, StoredEvent } from '../store/store.js';

export interface JobQueueOptions {
  jobs: JobStore;
  store: Store;
  /** A job's lease when its stage names none. [30000] */
  defaultLeaseMs?: number;
  /** How often answers are looked for without a hint (hints can be missed). [500] */
  pollMs?: number;
  /** Whether the run was cancelled (an attempt aborted for another reason keeps its job). */
  isCancelled: (runId: string) => Promise<boolean>;
  /**
   * The stage's state as its machine has it now: an attempt that starts while the stage is
   * `pausing` (a run restored mid-pause) is held. Without it, the pause and resume commands seen
   * in the run's events decide.
   */
  stageState?: (runId: string, stage: number) => Promise<string | undefined>;
  logger: Logger;
  /** A job of `queue` became claimable here. */
  onQueued?: (queue: string) => void;
  /** An answer was taken up by the attempt waiting for it: `claimedAt` for the latency metrics. */
  onSettled?: (job: JobRecord) => void;
}

interface Waiter {
  job: JobRecord;
  /** The attempt's `activity_log`, for the messages of the job's heartbeats. */
  log: (message: string) => void;
  lastMessage: string | null;
  resolve: (job: JobRecord) => void;
  reject: (err: unknown) => void;
}

/** A worker's `fail`: the attempt's error, with `retryable: false` when no retry can help. */
export class WorkerJobError extends Error {
  readonly retryable: boolean;
  constructor(message: string, retryable: boolean) {
    super(message);
    this.name = 'WorkerJobError';
    this.retryable = retryable;
  }
}

export class JobQueue {
  readonly #opts: JobQueueOptions;
  readonly #jobs: JobStore;
  readonly #leaseMs: number;
  readonly #waiters = new Map<number, Waiter>();
  /** Runs with a pause accepted and not yet resumed: their item jobs are held, not handed out. */
  readonly #pausing = new Set<string>();
  readonly #runs = new Map<string, Promise<RunRecord | undefined>>();
  #timer: NodeJS.Timeout | undefined;
  /** Jobs to look at on the next check. */
  readonly #due = new Set<number>();
  #checking = false;
  #again = false;
  #stopHints: (() => Promise<void>) | undefined;

  constructor(opts: JobQueueOptions) {
    this.#opts = opts;
    this.#jobs = opts.jobs;
    this.#leaseMs = opts.defaultLeaseMs ?? 30_000;
    if (!Number.isInteger(this.#leaseMs) || this.#leaseMs < 100) throw new TypeError(`Expected \`defaultLeaseMs\` to be an integer of at least 100, got ${this.#leaseMs}.`);
  }

  get jobs(): JobStore {
    return this.#jobs;
  }

  /** Looks for answers every `pollMs`, and at once on a hint from another instance. */
  async start(): Promise<void> {
    this.#timer = setInterval(() => this.kick(), this.#opts.pollMs ?? 500);
    this.#timer.unref();
    this.#stopHints = await this.#jobs.listenJobs?.((h) => {
      if (h.answered !== undefined) this.kick({ runId: h.answered });
      if (h.queue !== undefined) this.#opts.onQueued?.(h.queue);
    });
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#stopHints?.();
  }

  /** Jobs this instance waits for the answer of. */
  get waiting(): number {
    return this.#waiters.size;
  }

  /**
   * Looks for answers now, coalesced: of one job (a worker answered here), of one run's jobs
   * (a hint from another instance), or of every job waited for (the poll).
   */
  kick(which: { jobId?: number; runId?: string } = {}): void {
    if (which.jobId !== undefined) {
      if (this.#waiters.has(which.jobId)) this.#due.add(which.jobId);
    } else {
      for (const [id, w] of this.#waiters) if (which.runId === undefined || w.job.runId === which.runId) this.#due.add(id);
    }
    if (this.#due.size === 0) return;
    if (this.#checking) {
      this.#again = true;
      return;
    }
    this.#checking = true;
    this.#check()
      .catch((err: unknown) => this.#opts.logger.warn({ err }, 'looking for worker answers failed; trying again'))
      .finally(() => {
        this.#checking = false;
        if (this.#again) {
          this.#again = false;
          setImmediate(() => this.kick({ jobId: -1 }));
        }
      });
  }

  async #check(): Promise<void> {
    const ids = [...this.#due];
    this.#due.clear();
    for (const job of await this.#jobs.finished(ids)) {
      const w = this.#waiters.get(job.id);
      if (!w) continue;
      this.#waiters.delete(job.id);
      w.resolve(job);
    }
  }

  /**
   * A worker answered here a job this instance may wait on: the waiting attempt takes the answer
   * as it was stored, with no read back; the run's journal records the item with whatever else
   * finished in this turn of the event loop. A job waited on elsewhere is left to its owner.
   */
  answered(job: JobRecord, answer: JobAnswer): void {
    const w = this.#waiters.get(job.id);
    if (!w) return;
    this.#waiters.delete(job.id);
    this.#due.delete(job.id);
    w.resolve({
      ...job,
      state: answer.state,
      result: answer.result ?? null,
      error: answer.error ?? null,
      retryable: answer.retryable ?? null,
      finishedAt: Date.now(),
    });
  }

  /** A heartbeat's message for a job this instance waits on: one `activity_log` per new message. */
  message(jobId: number, message: string): void {
    const w = this.#waiters.get(jobId);
    if (!w || w.lastMessage === message) return;
    w.lastMessage = message;
    w.log(message);
  }

  /** What the run's events say about its jobs: a pause holds them; a resume lets them go again. */
  observe(run: RunRecord, events: readonly StoredEvent[]): void {
    for (const e of events) {
      if (e.event === 'command' && e.command === 'pause') this.#hold(run.runId);
      else if (e.event === 'command' && e.command === 'resume') this.#pausing.delete(run.runId);
      else if (e.event === 'command' && e.command === 'cancel') {
        // Every job of the run, held ones (a paused run has no attempt to abort) included.
        this.#pausing.delete(run.runId);
        this.#jobs.cancelRun(run.runId).catch((err: unknown) => this.#opts.logger.warn({ err, runId: run.runId }, 'cancelling the jobs of a run failed'));
      }
      else if (e.event === 'state_change' && e.machine_name === 'run') {
        const to = (e.payload as { to_state?: string } | undefined)?.to_state;
        if (to === 'completed' || to === 'cancelled' || to === 'failed') {
          this.#pausing.delete(run.runId);
          this.#runs.delete(run.runId);
        }
      }
    }
  }

  #hold(runId: string): void {
    this.#pausing.add(runId);
    this.#jobs.holdRun(runId).then(
      (ids) => {
        for (const id of ids) {
          const w = this.#waiters.get(id);
          if (!w) continue;
          this.#waiters.delete(id);
          w.reject(new AttemptReleasedError(`job ${id} was withdrawn unclaimed: the run is pausing`));
        }
      },
      (err: unknown) => this.#opts.logger.warn({ err, runId }, 'holding the jobs of a pausing run failed'),
    );
  }

  /** One attempt of a queue stage's item, as a job: resolves with the worker's result. */
  async processItem(def: StageDefinition<unknown>, item: Item, ctx: ItemContext<unknown>): Promise<ItemResult> {
    const state = await this.#opts.stageState?.(ctx.runId, ctx.stage);
    const held = state === undefined ? this.#pausing.has(ctx.runId) : state === 'pausing' || state === 'paused';
    let job = await this.#jobs.ensureJob(await this.#newJob(def, ctx, 'item', item, ctx.attempt, ctx.idempotencyKey), { held });
    if (held) {
      if (job.state === 'queued' || job.state === 'held') {
        if (job.state === 'queued') await this.#jobs.holdRun(ctx.runId);
        throw new AttemptReleasedError(`job ${job.id} is held: the run is pausing`);
      }
    } else if (job.state === 'held' && (await this.#jobs.requeue(job.id))) {
      job = { ...job, state: 'queued' };
    }
    if (job.state === 'queued') this.#queued(job.queue);
    const answered = await this.#await(job, ctx.signal, ctx.log);
    if (answered.state === 'done') {
      const cost = Number((answered.result as { cost?: unknown } | null)?.cost ?? 0);
      return { cost: Number.isFinite(cost) ? cost : 0 };
    }
    if (answered.state === 'failed') throw new WorkerJobError(answered.error ?? 'the worker failed the job', answered.retryable !== false);
    throw new Error(`job ${job.id} was cancelled`);
  }

  /** A queue stage's load, as a job: the newest load job, or a new one after a failed one. */
  async loadItems(def: StageDefinition<unknown>, ctx: LoadContext<unknown>): Promise<Item[]> {
    const latest = await this.#jobs.latestLoadJob(ctx.runId, ctx.stage);
    let job = latest;
    if (!job || job.state === 'failed' || job.state === 'cancelled') {
      const attempt = (latest?.attempt ?? 0) + 1;
      job = await this.#jobs.ensureJob(await this.#newJob(def, ctx, 'load', null, attempt, `${ctx.runId}:${ctx.stage}:load`));
    }
    if (job.state === 'held' && (await this.#jobs.requeue(job.id))) job = { ...job, state: 'queued' };
    if (job.state === 'queued') this.#queued(job.queue);
    const answered = await this.#await(job, ctx.signal, ctx.log);
    if (answered.state === 'done') return ((answered.result as { items?: Item[] } | null)?.items ?? []) as Item[];
    if (answered.state === 'failed') throw new WorkerJobError(`loading the items failed on a worker: ${answered.error ?? 'no reason given'}`, false);
    throw new Error(`load job ${job.id} was cancelled`);
  }

  #queued(queue: string): void {
    this.#opts.onQueued?.(queue);
    this.#jobs.notifyJobs?.({ queue }).catch(() => undefined);
  }

  async #newJob(def: StageDefinition<unknown>, ctx: LoadContext<unknown>, kind: 'load' | 'item', item: Item | null, attempt: number, key: string): Promise<NewJob> {
    const run = await this.#run(ctx.runId);
    return {
      runId: ctx.runId,
      stage: ctx.stage,
      stageKey: def.key,
      kind,
      itemId: item === null ? null : String(item.id),
      item,
      attempt,
      queue: def.queue!,
      siteId: run?.siteId ?? '',
      pipeline: run?.pipeline ?? '',
      options: ctx.options,
      idempotencyKey: key,
      leaseMs: def.leaseMs ?? this.#leaseMs,
    };
  }

  #run(runId: string): Promise<RunRecord | undefined> {
    let run = this.#runs.get(runId);
    if (!run) {
      run = this.#opts.store.getRun(runId);
      this.#runs.set(runId, run);
      run.catch(() => this.#runs.delete(runId));
    }
    return run;
  }

  /** Waits for the job's answer. Aborted: a cancel cancels the job; a stop (shutdown, lease lost) leaves it to the next owner. */
  #await(job: JobRecord, signal: AbortSignal, log: (message: string) => void): Promise<JobRecord> {
    if (job.state === 'done' || job.state === 'failed' || job.state === 'cancelled') return Promise.resolve(this.#settled(job));
    return new Promise<JobRecord>((resolve, reject) => {
      const onAbort = () => {
        this.#waiters.delete(job.id);
        reject(signal.reason ?? new Error('aborted'));
        // After the cascade that aborted it, the run's state says whether it was a cancel.
        setImmediate(() => {
          this.#opts
            .isCancelled(job.runId)
            .then((cancelled) => (cancelled ? this.#jobs.cancel(job.id) : false))
            .catch((err: unknown) => this.#opts.logger.warn({ err, jobId: job.id }, 'cancelling a job failed'));
        });
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      this.#waiters.set(job.id, {
        job,
        log,
        lastMessage: job.message,
        resolve: (j) => {
          signal.removeEventListener('abort', onAbort);
          resolve(this.#settled(j));
        },
        reject: (err) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      });
      // An answer may have come before the waiter was in place: a job handed out earlier, or one
      // another instance claimed (and answered) since it was queued. A job this call just queued
      // on a store with no other instance can only be answered through this process's door, which
      // finds the waiter (answered()).
      if (job.state !== 'queued' || this.#jobs.listenJobs !== undefined) this.kick({ jobId: job.id });
    });
  }

  #settled(job: JobRecord): JobRecord {
    this.#opts.onSettled?.(job);
    return job;
  }
}
