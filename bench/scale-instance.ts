// One instance for the Postgres part: `scale-instance.ts <target> <runs> <items> <name>`, an engine on SQLite (a dir)
// or Postgres (a URL); on `go` it starts its no-op runs, waits until all are retired and checked, and reports.
import { serve } from './harness/child.js';
import { Engine, noopPipeline, openStore, OWNER, verifyRun } from './harness/service.js';
import { percentile, timed } from './harness/stats.js';

const [target, runsArg, itemsArg, name] = process.argv.slice(2) as [string, string, string, string];
const [runs, items] = [Number(runsArg), Number(itemsArg)];
const noop = noopPipeline(items, 4);
const store = await openStore(target);
const writes: number[] = [];
const engine = new Engine({ store, pipelines: [noop], instanceId: name, onWritten: (s) => writes.push(s * 1000) });

async function go() {
  // The event-loop delay matters: every round trip of a Postgres commit waits for a turn of the loop.
  const { result: ids, ms, eldP99 } = await timed(async () => {
    const started = await Promise.all(Array.from({ length: runs }, (_, i) => engine.startRun({ ...OWNER, pipeline: noop.name, trigger: `${name}-${i}` })));
    await Promise.all(started.map((r) => engine.whenRetired(r.run_id)));
    return started.map((r) => r.run_id);
  });
  for (const id of ids) await verifyRun(store, id, items);
  writes.sort((a, b) => a - b);
  return { ms, items: runs * items, p50: percentile(writes, 50), p99: percentile(writes, 99), loopP99: eldP99 };
}

serve({
  go,
  stop: async () => {
    await engine.stop();
    await store.close();
  },
});
