// The floor the engine and service parts measure against: the durable writes the engine makes for
// an item, straight through better-sqlite3 on the store's own schema, with nothing else around them.
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { createBenchRun, SqliteStore } from './service.js';

export interface BareLoopOptions {
  /** Items per transaction. */
  perTxn?: number;
  /** When set, each transaction also updates the run row: its last_seq and a snapshot of about this many bytes. */
  snapshotBytes?: number;
  pipeline?: string;
  title?: (i: number) => string;
}

/** Items/s of `items` items, each a ledger row and a `stage_item_processed` event with the next seq, `perTxn` to a transaction. */
export async function bareLoop(dir: string, items: number, { perTxn = 1, snapshotBytes, pipeline = 'bench-noop', title = (i) => `item ${i}` }: BareLoopOptions = {}): Promise<number> {
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
