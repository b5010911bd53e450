// The worker jobs contract (docs/workers.md): every adapter keeps the jobs of queue
// stages in the run's database, so a worker may claim from any instance while the run's owner
// alone records what the workers answered. jobs-sqlite.ts and jobs-postgres.ts implement it;
// test/service/store/jobs.contract.ts holds the suite both pass.
import type { Item } from './store.js';

export type JobKind = 'load' | 'item';

/**
 * `queued`: waiting for a worker; `held`: withdrawn while its run pauses (not handed out);
 * `claimed`: a worker holds its lease (an expired lease is offered again, same attempt);
 * `done`, `failed`: a worker answered, the owner records it; `cancelled`: the run was cancelled.
 */
export type JobState = 'queued' | 'held' | 'claimed' | 'done' | 'failed' | 'cancelled';

export interface NewJob {
  runId: string;
  stage: number;
  stageKey: string;
  kind: JobKind;
  /** The item's id as text; null for a load job. */
  itemId: string | null;
  item: Item | null;
  attempt: number;
  queue: string;
  siteId: string;
  pipeline: string;
  options: unknown;
  idempotencyKey: string;
  leaseMs: number;
}

export interface JobRecord extends NewJob {
  id: number;
  state: JobState;
  /** How many times it was claimed: the lease's number, part of the job id a worker is given. */
  claims: number;
  workerId: string | null;
  /** Epoch ms of the last claim, by this process's clock. */
  claimedAt: number | null;
  /** The worker's answer: `{items}` for a load, `{cost?, output?}` for an item. */
  result: unknown;
  error: string | null;
  retryable: boolean | null;
  /** The last heartbeat's message. */
  message: string | null;
  /** Epoch ms of the answer, by this process's clock. */
  finishedAt: number | null;
}

/** A claim as handed out: the job, and whether a lost lease was taken over to give it. */
export interface ClaimedJob {
  job: JobRecord;
  /** The previous claim's lease had run out (its worker died or hung). */
  leaseWasLost: boolean;
}

export type HeartbeatAnswer = 'ok' | 'cancel' | 'lost' | 'finished' | 'not_found';
export type FinishAnswer = 'ok' | 'duplicate' | 'lost' | 'cancelled' | 'not_found';

export interface JobAnswer {
  state: 'done' | 'failed';
  result?: unknown;
  error?: string;
  retryable?: boolean;
}

/** A worker as the job store knows it: seen by any instance, with what it holds now. */
export interface SeenWorker {
  workerId: string;
  /** The queues it claimed from or heartbeated for since the time asked about, sorted. */
  queues: string[];
  /** Jobs it holds with a lease still running. */
  jobsInFlight: number;
  /** Epoch ms it was last seen, by the clock of the instance that saw it. */
  lastSeen: number;
}

/** Per queue, the jobs waiting for a worker and those workers hold. */
export interface QueueCounts {
  waiting: number;
  inFlight: number;
}

/** Rows of workers not seen for this long are deleted when another is noted. */
export const FORGET_WORKERS_MS = 24 * 60 * 60 * 1000;

/** One answer of a batch: the job, the claim it answers, and what the worker said. */
export interface JobAnswerOf {
  id: number;
  claims: number;
  answer: JobAnswer;
}

export interface JobStore {
  /**
   * The job of `(run, stage, kind, item, attempt)`: inserted `queued` (or `held`) when there is
   * none, otherwise the one there, whatever its state: an owner that restarts finds its jobs.
   */
  ensureJob(job: NewJob, opts?: { held?: boolean }): Promise<JobRecord>;
  /** The newest load job of a stage, if any. */
  latestLoadJob(runId: string, stage: number): Promise<JobRecord | undefined>;
  /** Puts a held job back in the queue; false if it is not held. */
  requeue(id: number): Promise<boolean>;
  /** Withdraws the run's queued item jobs (a pause; a load runs on): returns their ids. */
  holdRun(runId: string): Promise<number[]>;
  /** Cancels every job of the run not yet answered (the run was cancelled); returns how many. */
  cancelRun(runId: string): Promise<number>;
  /** Cancels a job not yet answered; false if it was answered. */
  cancel(id: number): Promise<boolean>;
  /**
   * Up to `max` jobs of `queue`, oldest first: queued ones, and claimed ones whose lease ran out.
   * Each is claimed by one caller, from whatever instance.
   */
  claim(queue: string, workerId: string, max: number): Promise<ClaimedJob[]>;
  getJob(id: number): Promise<JobRecord | undefined>;
  /** As `getJob` for each, in one read (the jobs of one `POST /answers`): those found, in no order. */
  getJobs(ids: readonly number[]): Promise<JobRecord[]>;
  /** Extends the lease of claim `claims` of the job. */
  heartbeat(id: number, claims: number, message: string | null): Promise<HeartbeatAnswer>;
  /** Stores the worker's answer for claim `claims`, if that claim still holds its lease. */
  finish(id: number, claims: number, answer: JobAnswer): Promise<FinishAnswer>;
  /** As `finish` for each, in one transaction (answers that arrive together): the verdicts in order. */
  finishAll(answers: readonly JobAnswerOf[]): Promise<FinishAnswer[]>;
  /** Gives claim `claims` back unanswered (a worker stopping): offered again at once, same attempt. */
  release(id: number, claims: number): Promise<FinishAnswer>;
  /** Of these jobs, the ones answered or cancelled. */
  finished(ids: readonly number[]): Promise<JobRecord[]>;
  /** Jobs waiting for a worker, per queue (held ones not counted). */
  waitingByQueue(): Promise<Record<string, number>>;
  /** Per queue with any: jobs waiting (as `waitingByQueue`) and jobs held under a live lease. */
  queueCounts(): Promise<Record<string, QueueCounts>>;
  /**
   * Notes that `workerId` talked about `queue` (a claim, a heartbeat) at `at` ms, for every
   * instance to see (`workersSeen`); rows older than FORGET_WORKERS_MS go.
   */
  sawWorker(workerId: string, queue: string, at: number): Promise<void>;
  /** Workers seen by any instance since `since` (epoch ms), newest first. */
  workersSeen(since: number): Promise<SeenWorker[]>;
  /**
   * Hints from other instances (Postgres LISTEN/NOTIFY): a job of `runId` was answered, or a job
   * of `queue` became claimable. Absent where one instance is all.
   */
  listenJobs?(hint: (h: { answered?: string; queue?: string }) => void): Promise<() => Promise<void>>;
  /** Sends the hint to the other instances, after the write it describes. */
  notifyJobs?(h: { answered?: string; queue?: string }): Promise<void>;
}

/** The job id a worker is given: the job's row and the number of its claim, `<id>.<claims>`. */
export function jobRef(job: Pick<JobRecord, 'id' | 'claims'>): string {
  return `${job.id}.${job.claims}`;
}

export function parseJobRef(ref: string): { id: number; claims: number } | undefined {
  const m = /^(\d{1,15})\.(\d{1,9})$/.exec(ref);
  if (!m) return undefined;
  return { id: Number(m[1]), claims: Number(m[2]) };
}
