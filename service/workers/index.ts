// The workers feature wired as one piece: the job store beside the runs, the owner's queue, the
// HTTP door and the metrics. buildService (service/service.ts) makes one and plugs it in.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { AnyPipeline } from '../pipelines/types.js';
import type { JobStore } from '../store/jobs.js';
import { PostgresJobStore } from '../store/jobs-postgres.js';
import { SqliteJobStore } from '../store/jobs-sqlite.js';
import { PostgresStore } from '../store/postgres.js';
import { SqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/store.js';
import { bindQueueStages } from './bind.js';
import { WorkerDoor } from './door.js';
import { workerMetrics } from './metrics.js';
import { JobQueue } from './queue.js';

export interface Workers {
  jobs: JobStore;
  queue: JobQueue;
  door: WorkerDoor;
  /** The pipelines with their queue stages served by jobs. */
  bind(pipelines: readonly AnyPipeline[]): AnyPipeline[];
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface WorkersOptions {
  store: Store;
  registry: Registry;
  logger: Logger;
  /** [30000] RUNSTATE_JOB_LEASE_MS */
  defaultLeaseMs: number;
  isCancelled: (runId: string) => Promise<boolean>;
  stageState?: (runId: string, stage: number) => Promise<string | undefined>;
}

/** The job store in the run store's own database. */
export async function openJobStore(store: Store): Promise<JobStore> {
  if (store instanceof SqliteStore) return new SqliteJobStore(store.connection);
  if (store instanceof PostgresStore) return PostgresJobStore.open(store.connection.pool, store.connection.url);
  throw new TypeError('Expected a SqliteStore or a PostgresStore for worker jobs.');
}

export async function createWorkers(opts: WorkersOptions): Promise<Workers> {
  const jobs = await openJobStore(opts.store);
  const queues: { queue?: JobQueue } = {};
  const metrics = workerMetrics(opts.registry, jobs, () => door.workers());
  const door = new WorkerDoor({ jobs, metrics, onAnswered: (job, answer) => queues.queue?.answered(job, answer),
    onMessage: (job, message) => queues.queue?.message(job.id, message),
  });
  const queue = new JobQueue({
    jobs,
    store: opts.store,
    defaultLeaseMs: opts.defaultLeaseMs,
    isCancelled: opts.isCancelled,
    ...(opts.stageState ? { stageState: opts.stageState } : {}),
    logger: opts.logger,
    onQueued: (q) => door.queued(q),
  });
  queues.queue = queue;
  return {
    jobs,
    queue,
    door,
    bind: (pipelines) => bindQueueStages(pipelines, queue),
    start: () => queue.start(),
    async stop() {
      door.close();
      await queue.stop();
    },
  };
}
