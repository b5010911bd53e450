import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { EvictionReason } from './client.js';

/** The hub's metrics (docs/protocol.md): delivery latency, queue bytes, evictions, clients. */
export class HubMetrics {
  readonly delivery: Histogram;
  readonly evictions: Counter<'reason'>;

  constructor(registry: Registry, clients: () => number, queuedBytes: () => number) {
    this.delivery = new Histogram({
      name: 'runstate_ws_delivery_seconds',
      help: 'From an event being durably appended to its frame being handed to the client socket',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    });
    this.evictions = new Counter({
      name: 'runstate_ws_evictions_total',
      help: 'Clients closed as slow consumers, by reason',
      labelNames: ['reason'],
      registers: [registry],
    });
    for (const reason of ['queue_full', 'send_timeout', 'pong_missed'] satisfies EvictionReason[]) this.evictions.inc({ reason }, 0);
    new Gauge({
      name: 'runstate_ws_clients',
      help: 'Connected WebSocket clients',
      registers: [registry],
      collect() {
        this.set(clients());
      },
    });
    new Gauge({
      name: 'runstate_ws_queued_bytes',
      help: 'Bytes held for clients that their peers have not taken (hub queues and socket buffers)',
      registers: [registry],
      collect() {
        this.set(queuedBytes());
      },
    });
  }
}
