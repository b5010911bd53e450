import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { StoredEvent } from './events.js';
import type { Store } from './store/store.js';

/**
 * The service's Prometheus metrics, in a registry of its own (several apps in one test
 * process must not share one). Served at `GET /metrics`.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly httpDuration: Histogram<'method' | 'route' | 'status_code'>;
  readonly appendSeconds: Histogram;
  readonly items: Counter<'outcome'>;
  readonly events: Counter<'event'>;

  constructor(store: Store) {
    collectDefaultMetrics({ register: this.registry, prefix: 'runstate_process_' });
    this.httpDuration = new Histogram({
      name: 'runstate_http_request_duration_seconds',
      help: 'HTTP request latency by route pattern',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [this.registry],
    });
    this.appendSeconds = new Histogram({
      name: 'runstate_event_append_seconds',
      help: 'Time to durably append one batch of events (snapshot and ledger rows included)',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
      registers: [this.registry],
    });
    this.items = new Counter({
      name: 'runstate_items_total',
      help: 'Items finished, by outcome (processed or failed after their last attempt)',
      labelNames: ['outcome'],
      registers: [this.registry],
    });
    this.events = new Counter({
      name: 'runstate_events_total',
      help: 'Events appended, by type',
      labelNames: ['event'],
      registers: [this.registry],
    });
    new Gauge({
      name: 'runstate_runs',
      help: 'Runs by status (closed runs included)',
      labelNames: ['status'],
      registers: [this.registry],
      async collect() {
        // With the database away, /metrics still answers (runstate_database_up says why), with the last counts.
        let counts: Record<string, number>;
        try {
          counts = await withTimeout(store.countRunsByStatus(), 1000);
        } catch {
          return;
        }
        this.reset();
        for (const [status, n] of Object.entries(counts)) this.set({ status }, n);
      },
    });
  }

  /** Counts what a durable batch holds. */
  observeEvents(events: readonly StoredEvent[]): void {
    for (const e of events) {
      this.events.inc({ event: e.event });
      if (e.event === 'stage_item_processed') this.items.inc({ outcome: 'processed' });
      else if (e.event === 'stage_item_failed') this.items.inc({ outcome: 'failed' });
    }
  }
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([work, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)))]).finally(() =>
    clearTimeout(timer),
  );
}
