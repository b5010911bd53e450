// The limits' Prometheus gauges, in the service's registry (docs/operations.md, "Metrics").
import { Gauge, type Registry } from 'prom-client';
import { readForMetrics } from '../metrics.js';
import type { Limiter } from './limiter.js';
import { reportLimits } from './report.js';
import type { StageLimit } from '../pipelines/limit.js';

export function limitMetrics(registry: Registry, declared: ReadonlyMap<string, StageLimit>, limiter: Limiter): void {
  const gauge = (name: string, help: string, field: 'waiting' | 'in_use' | 'rate' | 'concurrency') =>
    new Gauge({
      name,
      help,
      labelNames: ['key'],
      registers: [registry],
      async collect() {
        const limits = await readForMetrics(() => reportLimits(declared, limiter));
        if (limits === undefined) return;
        this.reset();
        for (const l of limits) {
          const v = l[field];
          if (v !== null) this.set({ key: l.key }, v);
        }
      },
    });
  gauge('runstate_limit_waiting', 'Item attempts waiting for a limit, per key, over every instance', 'waiting');
  gauge('runstate_limit_in_use', 'Item attempts holding a limit (started, not finished), per key, over every instance', 'in_use');
  gauge('runstate_limit_rate_per_second', 'Attempts per second a limit lets start, per key (keys with a rate)', 'rate');
  gauge('runstate_limit_concurrency', 'Attempts a limit lets be in flight at once, per key (keys with a concurrency)', 'concurrency');
}
