// A runstate pipeline that does real local work: every `.jsonl` file of a folder is read and
// checked, its records upserted into a SQLite database, and a count per `type` written.
// Copy this folder anywhere, `npm install`, and point RUNSTATE_PIPELINES at it (README.md).
import { createReadStream, existsSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { definePipeline, type ItemContext } from 'runstate';

interface Options {
  source: string;
  database: string;
  skip_invalid: boolean;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS staging (file TEXT NOT NULL, line INTEGER NOT NULL, record_id TEXT NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (file, line));
  CREATE TABLE IF NOT EXISTS records (id TEXT PRIMARY KEY, type TEXT NOT NULL, body TEXT NOT NULL, source_file TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS imports (idempotency_key TEXT PRIMARY KEY, file TEXT NOT NULL, rows INTEGER NOT NULL, imported_at TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS summary (type TEXT PRIMARY KEY, count INTEGER NOT NULL);
`;

/** One connection per item: items of a stage may run at once, and SQLite (WAL) serialises the writes. */
function open(options: Options): Database.Database {
  const db = new Database(options.database);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 5000');
  db.exec(SCHEMA);
  return db;
}

function withDb<T>(options: Options, work: (db: Database.Database) => T): T {
  const db = open(options);
  try {
    return work(db);
  } finally {
    db.close();
  }
}

/** Stage 1: parse and check one file, line by line, into `staging`. */
async function readFile(file: string, { options, signal, log }: ItemContext<Options>): Promise<{ cost: number }> {
  const rows: { line: number; record_id: string; type: string; body: string }[] = [];
  const input = createReadStream(join(options.source, file), { encoding: 'utf8', signal });
  const lines = createInterface({ input, crlfDelay: Infinity });
  let n = 0;
  let skipped = 0;
  for await (const text of lines) {
    n += 1;
    if (text.trim() === '') continue;
    let record: unknown;
    try {
      record = JSON.parse(text);
    } catch {
      record = undefined;
    }
    const id = (record as { id?: unknown } | undefined)?.id;
    if (typeof record !== 'object' || record === null || (typeof id !== 'string' && typeof id !== 'number')) {
      if (options.skip_invalid) {
        skipped += 1;
        continue;
      }
      // Thrown: the attempt fails, and after the last attempt the file is recorded as failed.
      throw new Error(`${file} line ${n}: expected a JSON object with an \`id\``);
    }
    const type = typeof (record as { type?: unknown }).type === 'string' ? (record as { type: string }).type : 'untyped';
    rows.push({ line: n, record_id: String(id), type, body: text });
  }
  // Aborted (cancel, shutdown) while reading: stop here and write nothing; the file is read
  // again, whole, when the run goes on.
  signal.throwIfAborted();
  withDb(options, (db) => {
    const put = db.prepare('INSERT OR REPLACE INTO staging (file, line, record_id, type, body) VALUES (?, ?, ?, ?, ?)');
    db.transaction(() => {
      db.prepare('DELETE FROM staging WHERE file = ?').run(file);
      for (const r of rows) put.run(file, r.line, r.record_id, r.type, r.body);
    })();
  });
  if (skipped > 0) log(`${file}: skipped ${skipped} invalid lines`);
  return { cost: 0 };
}

/** Stage 2: upsert one file's staged records into `records`, once per idempotency key. */
function importFile(file: string, { options, idempotencyKey, signal }: ItemContext<Options>): void {
  signal.throwIfAborted();
  withDb(options, (db) => {
    db.transaction(() => {
      // The key is the same on every attempt and after a crash: a file imported once is not imported again.
      if (db.prepare('SELECT 1 FROM imports WHERE idempotency_key = ?').get(idempotencyKey)) return;
      const info = db
        .prepare(
          `INSERT INTO records (id, type, body, source_file) SELECT record_id, type, body, file FROM staging WHERE file = ? ORDER BY line
           ON CONFLICT (id) DO UPDATE SET type = excluded.type, body = excluded.body, source_file = excluded.source_file`,
        )
        .run(file);
      db.prepare('INSERT INTO imports (idempotency_key, file, rows, imported_at) VALUES (?, ?, ?, ?)').run(idempotencyKey, file, info.changes, new Date().toISOString());
    })();
  });
}

export default definePipeline<Options>({
  name: 'jsonl_import',
  description: 'A folder of JSONL files into SQLite: read and check, upsert, count by type',
  options_schema: {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    type: 'object',
    additionalProperties: false,
    required: ['source', 'database'],
    properties: {
      source: { type: 'string', minLength: 1, title: 'Source folder', description: 'Absolute path of a folder of .jsonl files, one JSON object with an `id` per line' },
      database: { type: 'string', minLength: 1, title: 'SQLite database', description: 'Absolute path of the SQLite file to import into; created when missing' },
      skip_invalid: { type: 'boolean', default: false, title: 'Skip invalid lines', description: 'Skip lines that are not an object with an `id`, rather than failing their file' },
    },
  },
  retry: { attempts: 2, backoffMs: 100 },
  stages: [
    {
      key: 'read',
      name: 'Read and check files',
      concurrency: 2,
      loadItems: ({ options }) => {
        if (!existsSync(options.source)) throw new Error(`no folder ${options.source}`);
        const files = readdirSync(options.source).filter((f) => f.endsWith('.jsonl')).sort();
        return files.map((f) => ({ id: f, title: basename(f) }));
      },
      processItem: (item, ctx) => readFile(String(item.id), ctx),
    },
    {
      key: 'import',
      name: 'Upsert records',
      loadItems: ({ options }) =>
        withDb(options, (db) => (db.prepare('SELECT DISTINCT file FROM staging ORDER BY file').all() as { file: string }[]).map((r) => ({ id: r.file, title: r.file }))),
      processItem: (item, ctx) => importFile(String(item.id), ctx),
    },
    {
      key: 'summarize',
      name: 'Count by type',
      loadItems: ({ options }) =>
        withDb(options, (db) => (db.prepare('SELECT DISTINCT type FROM records ORDER BY type').all() as { type: string }[]).map((r) => ({ id: r.type, title: r.type }))),
      processItem: (item, { options }) =>
        withDb(options, (db) => {
          const { n } = db.prepare('SELECT count(*) AS n FROM records WHERE type = ?').get(item.id) as { n: number };
          db.prepare('INSERT INTO summary (type, count) VALUES (?, ?) ON CONFLICT (type) DO UPDATE SET count = excluded.count').run(item.id, n);
        }),
    },
  ],
});
