import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { TokenRegistry } from '../service/auth/tokens.js';
import { Hub } from '../service/hub/hub.js';
import type { StoredEvent } from '../service/store/store.js';
import type { Broadcaster } from './hub-baselines.js';
import type { EventSource } from './hub-source.js';

export const BENCH_TOKEN = 'bench-token-0123456789abcdef';

/** C: the real hub with its default options, fed the same durable batches as A and B. */
export class HubBroadcaster implements Broadcaster {
  readonly hub: Hub;
  readonly registry = new Registry();
  readonly backlog = 0;
  readonly #source: EventSource;

  constructor(source: EventSource) {
    this.#source = source;
    const tokens = new TokenRegistry([{ token: BENCH_TOKEN, principal: { name: 'bench', admin: true, accountId: null, siteIds: null } }]);
    // Silent: every eviction logs a warning, and 100 of them to stdout would be the bench's cost.
    this.hub = new Hub({ engine: source.engine, tokens, logger: pino({ level: 'silent' }), registry: this.registry });
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.hub.handleUpgrade(req, socket, head);
  }

  publish(events: readonly StoredEvent[]): void {
    this.hub.publish(this.#source.record, events);
  }

  /** The hub's own gauge: its queues plus its sockets' unwritten buffers, over all clients. */
  async heldBytes(): Promise<number> {
    const metric = await this.registry.getSingleMetric('runstate_ws_queued_bytes')?.get();
    return metric?.values[0]?.value ?? 0;
  }

  /** Evictions by reason, from the hub's own counter. */
  async evictions(): Promise<Record<string, number>> {
    const metric = await this.registry.getSingleMetric('runstate_ws_evictions_total')?.get();
    return Object.fromEntries((metric?.values ?? []).map((v) => [String(v.labels.reason), v.value]));
  }

  close(): Promise<void> {
    return this.hub.close();
  }
}
