import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { Engine } from '../service/engine/engine.js';
import type { PipelineDefinition } from '../service/pipelines/types.js';
import { SqliteStore } from '../service/store/sqlite.js';
import type { Store } from '../service/store/store.js';
import { TraceWriter } from '../service/trace/trace-writer.js';

export interface EngineRunOptions {
  items: number;
  concurrency: number;
  /** Attach the TraceWriter and include its flush in the timed region. */
  trace: boolean;
  /** Passed to the engine: the Stately inspector's observer, when measuring it. */
  inspect?: (ev: import('xstate').InspectionEvent) => void;
}

export interface EngineRunResult {
  ms: number;
  itemsPerSec: number;
  /** Bytes of the run's snapshot as written halfway through the stage: what the bare loop writes per item. */
  snapshotBytes: number;
  /** Durable batches (store transactions that appended events). */
  batches: number;
}

/** One stage of `items` items whose work resolves at once: what is left is the engine's own cost. */
function noopPipeline(items: number, concurrency: number): PipelineDefinition<object> {
  return {
    name: 'bench-noop',
    parseOptions: () => ({}),
    concurrencyOf: () => concurrency,
    stages: [
      {
        key: 'noop',
        name: 'No-op',
        loadItems: async () => Array.from({ length: items }, (_, i) => ({ id: i + 1, title: `item ${i + 1}` })),
        processItem: async () => {},
      },
    ],
  };
}

/** Runs one pipeline run of `items` no-op items through a fresh engine on a fresh database in `dir`. */
export async function measureEngine(dir: string, opts: EngineRunOptions): Promise<EngineRunResult> {
  const store = new SqliteStore({ filename: join(dir, 'runstate.db') });
  const pipeline = noopPipeline(opts.items, opts.concurrency);
  const engine = new Engine({ store, pipelines: [pipeline], inspect: opts.inspect });
  // Silent: a failed trace write shows up in the verification below instead.
  const traces = opts.trace ? new TraceWriter({ dataDir: dir, store, logger: pino({ level: 'silent' }) }) : undefined;
  let batches = 0;
  let snapshot: Promise<number> | undefined;
  const halfway = Math.ceil(opts.items / 2);
  engine.onEvents((run, events) => {
    batches += 1;
    traces?.write(run, events);
    // The snapshot of a running stage (items in flight) is what most batches write; sample one.
    if (!snapshot && events.some((e) => e.event === 'stage_item_processed' && Number(e.processed) >= halfway)) {
      snapshot = store.getRun(run.runId).then((r) => Buffer.byteLength(JSON.stringify(r?.snapshot ?? null)));
    }
  });
  try {
    const t0 = performance.now();
    const run = await engine.startRun({ accountId: 'bench', siteId: 'bench', pipeline: pipeline.name });
    await engine.whenRetired(run.run_id);
    await traces?.flush();
    const ms = performance.now() - t0;
    await verify(store, run.run_id, opts.items, traces ? TraceWriter.runDir(dir, { accountId: 'bench', siteId: 'bench', runId: run.run_id }) : undefined);
    if (!snapshot) throw new Error('bench: no stage_item_processed event reached the listener');
    return { ms, itemsPerSec: (opts.items / ms) * 1000, snapshotBytes: await snapshot, batches };
  } finally {
    await engine.stop();
    await store.close();
  }
}

/** The run must be complete and exact, or its speed means nothing. */
async function verify(store: Store, runId: string, items: number, traceDir: string | undefined): Promise<void> {
  const fail = (what: string) => {
    throw new Error(`bench: run ${runId}: ${what}`);
  };
  const run = await store.getRun(runId);
  if (run?.status !== 'completed') fail(`expected status completed, got ${run?.status}`);
  const ledger = await store.ledger(runId);
  if (ledger.length !== items) fail(`expected ${items} ledger entries, got ${ledger.length}`);
  if (ledger.some((l) => l.status !== 'done')) fail('some ledger entries are not done');
  let seq = 0;
  for (;;) {
    const events = await store.readEvents(runId, seq, 10_000);
    if (events.length === 0) break;
    for (const e of events) if (e.seq !== ++seq) fail(`seq gap: expected ${seq}, got ${e.seq}`);
  }
  if (seq !== run!.lastSeq) fail(`the log ends at seq ${seq} but the run says last_seq ${run!.lastSeq}`);
  if (seq < items) fail(`only ${seq} events for ${items} items`);
  if (traceDir) {
    let line = 0;
    const lines = createInterface({ input: createReadStream(join(traceDir, 'run_trace.jsonl')) });
    for await (const text of lines) {
      const traced = (JSON.parse(text) as { seq: number }).seq;
      if (traced !== ++line) fail(`run_trace.jsonl line ${line} has seq ${traced}`);
    }
    if (line !== seq) fail(`run_trace.jsonl has ${line} lines, the log ${seq} events`);
  }
}
