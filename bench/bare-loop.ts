import Database from 'better-sqlite3';
import { join } from 'node:path';
import { SqliteStore } from '../service/store/sqlite.js';

export interface BareRunResult {
  ms: number;
  itemsPerSec: number;
}

const RUN_ID = 'run_20250101_000000_bench';

/**
 * The floor the engine is measured against: per item, one transaction with the durable writes
 * the engine makes for that item (a ledger row, a `stage_item_processed` event with the next
 * seq, the run row's last_seq and snapshot), and nothing else: no actors, no batching.
 */
export async function measureBare(dir: string, items: number, snapshotBytes: number, perTxn = 1): Promise<BareRunResult> {
  const filename = join(dir, 'runstate.db');
  // The store creates the schema, so both sides write into the same tables and indexes.
  const store = new SqliteStore({ filename });
  await store.createRun({
    runId: RUN_ID,
    accountId: 'bench',
    siteId: 'bench',
    pipeline: 'bench-noop',
    trigger: 'bench',
    options: {},
    createdAt: new Date().toISOString(),
  });
  await store.close();

  const db = new Database(filename);
  try {
    // The pragmas of service/store/sqlite.ts.
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 5000');
    const insertLedger = db.prepare(
      `INSERT INTO ledger (run_id, stage, item_id, item, status, attempts, cost, error)
       VALUES (?, 1, ?, ?, 'done', 1, 0, NULL)`,
    );
    const insertEvent = db.prepare('INSERT INTO events (run_id, seq, body, event_key) VALUES (?, ?, ?, NULL)');
    const updateRun = db.prepare(`UPDATE runs SET last_seq = ?, snapshot = ?, status = 'running', updated_at = ? WHERE run_id = ?`);
    const pad = 'x'.repeat(Math.max(0, snapshotBytes - JSON.stringify({ value: 'running', processed: items, pad: '' }).length));
    // `perTxn` items per transaction: 1 is the plain floor; more is group commit, the way the
    // engine writes items that finish in the same event-loop turn.
    const step = db.transaction((first: number, last: number) => {
      const timestamp = new Date().toISOString();
      for (let i = first; i <= last; i++) {
        const event = { event: 'stage_item_processed', run_id: RUN_ID, seq: i, stage: 1, processed: i, total: items, item: { id: i, title: `item ${i}` }, timestamp };
        insertLedger.run(RUN_ID, String(i), JSON.stringify(i));
        insertEvent.run(RUN_ID, i, JSON.stringify(event));
      }
      updateRun.run(last, JSON.stringify({ value: 'running', processed: last, pad }), timestamp, RUN_ID);
    });

    const t0 = performance.now();
    for (let i = 1; i <= items; i += perTxn) step(i, Math.min(items, i + perTxn - 1));
    const ms = performance.now() - t0;

    const count = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM ledger').get()!.n;
    if (count !== items) throw new Error(`bench: bare loop wrote ${count} ledger rows, expected ${items}`);
    return { ms, itemsPerSec: (items / ms) * 1000 };
  } finally {
    db.close();
  }
}
