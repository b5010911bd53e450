// The bench's touch points with service/ (stores, engines, the hub, the in-process service) and the bare
// loop on the store's schema: when service/ changes shape, adapt this.
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../../service/config.js';
import { Engine } from '../../service/engine/engine.js';
import type { PipelineDefinition, StageDefinition } from '../../service/pipelines/types.js';
import { PostgresStore } from '../../service/store/postgres.js';
import { SqliteStore } from '../../service/store/sqlite.js';
import type { NewEvent, RunRecord, StoredEvent, Store } from '../../service/store/store.js';
import { buildService } from '../../service/service.js';

export { Engine, SqliteStore, type NewEvent, type StoredEvent, type Store };
export { TokenRegistry } from '../../service/auth/tokens.js';
export { Hub } from '../../service/hub/hub.js';
export { TraceWriter } from '../../service/trace/trace-writer.js';
export { events } from '../../service/events.js';
export { createInspection } from '../../service/inspect.js';
export { WEBHOOK_EVENTS } from '../../service/store/outbox.js';
export { createTelemetry } from '../../service/telemetry/otel.js';
export { webhookStoreFor } from '../../service/webhooks/index.js';
export { WebhookSender } from '../../service/webhooks/sender.js';

export const BENCH_TOKEN = 'bench-admin-token-0123456789abcdef';
export const OWNER = { accountId: 'bench', siteId: 'bench' } as const;
/** Silent: a failure shows up in the bench's checks, and a logger writing to stdout would be the bench's cost. */
export const silent = pino({ level: 'silent' });

/** SQLite in `target` (a directory), or Postgres when `target` is a connection string. */
export async function openStore(target: string): Promise<Store> {
  return target.startsWith('postgres') ? PostgresStore.connect(target, { poolSize: 8 }) : new SqliteStore({ filename: join(target, 'runstate.db') });
}

/** A run row written straight to the store, for the baselines that append to it without an engine; `external` runs take `machineName`. */
export function createBenchRun(store: Store, runId: string, pipeline: string, machineName?: string): Promise<RunRecord> {
  return store.createRun({ runId, ...OWNER, pipeline, trigger: 'bench', options: {}, ...(machineName ? { machineName } : {}), createdAt: new Date().toISOString() });
}

/** Appends events to a run in one durable commit (what the engine's journal does per batch); `keys` deduplicate them. */
export async function appendEvents(store: Store, runId: string, events: NewEvent[], keys?: (string | null)[]): Promise<StoredEvent[]> {
  return (await store.commit(runId, { events, ...(keys ? { eventKeys: keys } : {}) })).events;
}

/** `stages` stages of `items` items whose work resolves at once; `stage` adds to (or overrides) each stage. */
export function noopPipeline(items: number, concurrency: number, { name = 'bench-noop', stages = 1, stage = {} }: { name?: string; stages?: number; stage?: Partial<StageDefinition<object>> } = {}): PipelineDefinition<object> {
  return {
    name,
    parseOptions: () => ({}),
    concurrencyOf: () => concurrency,
    stages: Array.from({ length: stages }, (_, s) => ({
      key: stages === 1 ? 'noop' : `s${s + 1}`,
      name: stages === 1 ? 'No-op' : `Stage ${s + 1}`,
      loadItems: async () => Array.from({ length: items }, (_, i) => ({ id: i + 1, title: `item ${i + 1}` })),
      processItem: async () => {},
      ...stage,
    })),
  };
}

/** The service as `npm start` builds it (buildService), on 127.0.0.1 (port 0) with the ingest socket, on `dir`. */
export async function startService(dir: string, pipelines: readonly PipelineDefinition<object>[]) {
  const socketPath = join(dir, 'ingest.sock');
  const config = loadConfig({ RUNSTATE_DATA: dir, PORT: '0', RUNSTATE_ADMIN_TOKEN: BENCH_TOKEN, RUNSTATE_INGEST_SOCKET: socketPath, RUNSTATE_LOG_LEVEL: 'silent' });
  const service = await buildService(config, { pipelines: [...pipelines], webRoot: null });
  const { port, url } = await service.start();
  return { port, url, socketPath, engine: service.engine, store: service.store, stop: () => service.stop() };
}

/** Fails with `bench: <what> …` unless `seqs` are 1…n in order, n being `last`. */
export function checkSeqs(seqs: readonly number[], what: string, last: number): void {
  const at = seqs.findIndex((seq, i) => seq !== i + 1);
  if (at >= 0) throw new Error(`bench: ${what}: seq ${at + 1} is ${seqs[at]}`);
  if (seqs.length !== last) throw new Error(`bench: ${what} ends at seq ${seqs.length}, expected ${last}`);
}

/** A run must be complete and exact, or its speed means nothing: completed, every item done in the ledger, seqs 1…last_seq. */
export async function verifyRun(store: Store, runId: string, items: number): Promise<void> {
  const run = await store.getRun(runId);
  if (run?.status !== 'completed') throw new Error(`bench: run ${runId}: expected status completed, got ${run?.status}`);
  const ledger = await store.ledger(runId);
  if (ledger.length !== items || ledger.some((l) => l.status !== 'done')) throw new Error(`bench: run ${runId}: expected ${items} done ledger entries, got ${ledger.length}`);
  if (run.lastSeq < items) throw new Error(`bench: run ${runId}: last_seq ${run.lastSeq} for ${items} items`);
  checkSeqs((await store.readEvents(runId, 0, run.lastSeq + 1)).map((e) => e.seq), `run ${runId}'s log`, run.lastSeq);
}

/** The floor of the engine and service parts, better-sqlite3 on the store's schema: `items` ledger rows and events, `perTxn` to a transaction (and the run row when `snapshotBytes` is set); items/s. */
export async function bareLoop(
  dir: string,
  items: number,
  { perTxn = 1, snapshotBytes, pipeline = 'bench-noop', title = (i: number) => `item ${i}` }: { perTxn?: number; snapshotBytes?: number; pipeline?: string; title?: (i: number) => string } = {},
): Promise<number> {
  const filename = join(dir, 'runstate.db');
  const runId = 'run_20250101_000000_bench';
  const store = new SqliteStore({ filename });
  await createBenchRun(store, runId, pipeline);
  await store.close();
  const db = new Database(filename);
  try {
    // The pragmas of service/store/sqlite.ts.
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    const ledger = db.prepare(`INSERT INTO ledger (run_id, stage, item_id, item, status, attempts, cost, error) VALUES (?, 1, ?, ?, 'done', 1, 0, NULL)`);
    const event = db.prepare('INSERT INTO events (run_id, seq, body, event_key) VALUES (?, ?, ?, NULL)');
    const run = db.prepare(`UPDATE runs SET last_seq = ?, snapshot = ?, status = 'running', updated_at = ? WHERE run_id = ?`);
    const pad = 'x'.repeat(Math.max(0, (snapshotBytes ?? 0) - JSON.stringify({ value: 'running', processed: items, pad: '' }).length));
    const step = db.transaction((first: number, last: number) => {
      const timestamp = new Date().toISOString();
      for (let i = first; i <= last; i++) {
        ledger.run(runId, String(i), JSON.stringify(i));
        event.run(runId, i, JSON.stringify({ event: 'stage_item_processed', run_id: runId, seq: i, stage: 1, processed: i, total: items, item: { id: i, title: title(i) }, timestamp }));
      }
      if (snapshotBytes !== undefined) run.run(last, JSON.stringify({ value: 'running', processed: last, pad }), timestamp, runId);
    });
    const t0 = performance.now();
    for (let i = 1; i <= items; i += perTxn) step(i, Math.min(items, i + perTxn - 1));
    const ms = performance.now() - t0;
    const count = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM ledger').get()!.n;
    if (count !== items) throw new Error(`bench: the bare loop wrote ${count} ledger rows, expected ${items}`);
    return (items / ms) * 1000;
  } finally {
    db.close();
  }
}
