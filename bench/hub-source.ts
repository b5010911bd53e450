import { join } from 'node:path';
import { Engine } from '../service/engine/engine.js';
import type { PipelineDefinition } from '../service/pipelines/types.js';
import { SqliteStore } from '../service/store/sqlite.js';
import { events as make, type NewEvent, type StoredEvent } from '../service/events.js';
import type { RunRecord } from '../service/store/store.js';
import { monoMs } from './hub-clock.js';

export const RUN_ID = 'run_20250101_000000_bench';
export const SITE_ID = 'bench';
export const TOPIC = `run:${RUN_ID}`;

/** Registered so the engine can describe the run (snapshots, replay); it never runs. */
const pipeline: PipelineDefinition<object> = {
  name: 'bench-hub',
  parseOptions: () => ({}),
  concurrencyOf: () => 1,
  stages: [{ key: 'fanout', name: 'Fan-out', loadItems: async () => [], processItem: async () => {} }],
};

const TITLE = 'Image prompt for a long-form article about fan-out under load'.padEnd(96, '.');

/**
 * The events every variant broadcasts: appended durably through the real store, so each gets
 * its seq the way the engine's do and the hub can replay them. Each carries `appended_at`
 * (monotonic ms, taken just before the append) for the clients' latency, `ph`, the bench
 * phase it belongs to, so a late delivery is still counted against the phase that sent it,
 * and `w`, the second of that phase it was appended in.
 */
export class EventSource {
  readonly store: SqliteStore;
  readonly engine: Engine;
  record!: RunRecord;
  #n = 0;

  constructor(dir: string) {
    this.store = new SqliteStore({ filename: join(dir, 'runstate.db') });
    this.engine = new Engine({ store: this.store, pipelines: [pipeline] });
  }

  async open(): Promise<void> {
    this.record = await this.store.createRun({
      runId: RUN_ID,
      accountId: 'bench',
      siteId: SITE_ID,
      pipeline: pipeline.name,
      trigger: 'bench',
      options: {},
      createdAt: new Date().toISOString(),
    });
  }

  get lastSeq(): number {
    return this.#n;
  }

  /** Appends `count` `stage_item_processed` events (about 300 bytes framed) in one commit; `w` is the second of the phase. */
  async append(count: number, ph: number, w: number): Promise<StoredEvent[]> {
    const appendedAt = monoMs();
    const timestamp = new Date().toISOString();
    const events: NewEvent[] = [];
    for (let i = 0; i < count; i++) {
      const n = ++this.#n;
      const event = { ...make.itemProcessed({ stage: 6, processed: n, total: 1_000_000, item: { id: n, title: TITLE } }, timestamp), appended_at: appendedAt, ph, w };
      events.push(event);
    }
    return (await this.store.commit(RUN_ID, { events })).events;
  }

  async close(): Promise<void> {
    await this.engine.stop();
    await this.store.close();
  }
}
