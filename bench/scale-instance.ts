// One service instance for the Postgres bench: an engine on the given store that starts
// `runs` runs of a no-op pipeline, waits until they are all done, and reports its numbers.
import { join } from 'node:path';
import { Engine } from '../service/engine/engine.js';
import type { PipelineDefinition } from '../service/pipelines/types.js';
import { PostgresStore } from '../service/store/postgres.js';
import { SqliteStore } from '../service/store/sqlite.js';
import type { Store } from '../service/store/store.js';

const [target, runsArg, itemsArg, name] = process.argv.slice(2) as [string, string, string, string];
const runs = Number(runsArg);
const items = Number(itemsArg);

const noop: PipelineDefinition<Record<string, never>> = {
  name: 'noop',
  parseOptions: () => ({}),
  concurrencyOf: () => 4,
  stages: [
    {
      key: 'work',
      name: 'Work',
      loadItems: async () => Array.from({ length: items }, (_, i) => ({ id: i + 1, title: `item ${i + 1}` })),
      processItem: async () => ({ cost: 0 }),
    },
  ],
};

const store: Store = target.startsWith('postgres')
  ? await PostgresStore.connect(target, { poolSize: 8 })
  : new SqliteStore({ filename: join(target, 'runstate.db') });
const writes: number[] = [];
const engine = new Engine({ store, pipelines: [noop], instanceId: name, onWritten: (s) => writes.push(s * 1000) });
// Every instance starts together: the parent says go on stdin.
process.stdout.write('ready\n');
await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
const t0 = performance.now();
const ids = await Promise.all(Array.from({ length: runs }, (_, i) => engine.startRun({ accountId: 'bench', siteId: 'bench', pipeline: 'noop', trigger: `${name}-${i}` }).then((r) => r.run_id)));
await Promise.all(ids.map((id) => engine.whenRetired(id)));
const ms = performance.now() - t0;
for (const id of ids) {
  const events = await store.readEvents(id, 0, 1_000_000);
  if (!events.every((e, i) => e.seq === i + 1)) throw new Error(`bench: run ${id} has a gap`);
  if ((await store.ledger(id)).length !== items) throw new Error(`bench: run ${id} is missing items`);
}
writes.sort((a, b) => a - b);
const pct = (p: number) => writes[Math.min(writes.length - 1, Math.floor((p / 100) * writes.length))] ?? NaN;
process.stdout.write(`${JSON.stringify({ ms, items: runs * items, writes: writes.length, p50: pct(50), p99: pct(99) })}\n`);
await engine.stop();
await store.close();
process.exit(0);
