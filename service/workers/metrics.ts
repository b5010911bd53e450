// The workers' Prometheus metrics, in the service's registry (docs/workers.md, "Metrics").
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { JobStore } from '../store/jobs.js';

export interface WorkerMetrics {
  jobSeconds: Histogram<'queue' | 'kind' | 'outcome'>;
  leasesLost: Counter<'queue'>;
}

export interface SeenWorker {
  worker_id: string;
  queues: string[];
  jobs_in_flight: number;
}

export function workerMetrics(registry: Registry, jobs: JobStore, seen: () => SeenWorker[]): WorkerMetrics {
  new Gauge({
    name: 'runstate_workers_connected',
    help: 'Workers seen by this instance in the last minute',
    registers: [registry],
    collect() {
      this.set(seen().length);
    },
  });
  new Gauge({
    name: 'runstate_worker_jobs_in_flight',
    help: 'Jobs each worker seen by this instance in the last minute holds, per worker and the queues it serves',
    labelNames: ['worker_id', 'queues'],
    registers: [registry],
    collect() {
      this.reset();
      for (const w of seen()) this.set({ worker_id: w.worker_id, queues: w.queues.join(',') }, w.jobs_in_flight);
    },
  });
  new Gauge({
    name: 'runstate_worker_jobs_waiting',
    help: 'Jobs waiting for a worker, per queue (a job whose lease ran out included)',
    labelNames: ['queue'],
    registers: [registry],
    async collect() {
      // The database may be away (docs/operations.md): /metrics still answers, with the last counts.
      let waiting: Record<string, number>;
      try {
        waiting = await within(jobs.waitingByQueue(), 1000);
      } catch {
        return;
      }
      this.reset();
      for (const [queue, n] of Object.entries(waiting)) this.set({ queue }, n);
    },
  });
  new Gauge({
    name: 'runstate_worker_queue_jobs_in_flight',
    help: 'Jobs workers hold under a live lease, per queue, whatever instance they claimed through',
    labelNames: ['queue'],
    registers: [registry],
    async collect() {
      let counts: Awaited<ReturnType<JobStore['queueCounts']>>;
      try {
        counts = await within(jobs.queueCounts(), 1000);
      } catch {
        return;
      }
      this.reset();
      for (const [queue, c] of Object.entries(counts)) this.set({ queue }, c.inFlight);
    },
  });
  return {
    jobSeconds: new Histogram({
      name: 'runstate_worker_job_seconds',
      help: 'From a claim to its completion or fail, per queue and job kind',
      labelNames: ['queue', 'kind', 'outcome'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    }),
    leasesLost: new Counter({
      name: 'runstate_worker_leases_lost_total',
      help: 'Job leases that ran out before an answer (the job was offered again), per queue',
      labelNames: ['queue'],
      registers: [registry],
    }),
  };
}

/** A database that hangs rather than fails must not hold /metrics either. */
function within<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)));
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}
