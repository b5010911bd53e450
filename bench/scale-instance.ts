// One service instance for the Postgres part: `bench/scale-instance.ts <target> <runs> <items> <name>`.
// An engine on the store (SQLite dir or Postgres URL); on `go` it starts its runs of a no-op
// pipeline, waits until they are all retired and checked, and answers with its numbers.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { serve } from './harness/child.js';
import { Engine, noopPipeline, openStore, OWNER, verifyRun } from './harness/service.js';
import { percentile } from './harness/stats.js';

const [target, runsArg, itemsArg, name] = process.argv.slice(2) as [string, string, string, string];
const [runs, items] = [Number(runsArg), Number(itemsArg)];
const noop = noopPipeline(items, 4);
const store = await openStore(target);
const writes: number[] = [];
const engine = new Engine({ store, pipelines: [noop], instanceId: name, onWritten: (s) => writes.push(s * 1000) });

serve({
  go: async () => {
    // How long a turn of the loop took: every round trip of a Postgres commit waits for one.
    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    const t0 = performance.now();
    const ids = await Promise.all(Array.from({ length: runs }, (_, i) => engine.startRun({ ...OWNER, pipeline: noop.name, trigger: `${name}-${i}` }).then((r) => r.run_id)));
    await Promise.all(ids.map((id) => engine.whenRetired(id)));
    const ms = performance.now() - t0;
    loop.disable();
    for (const id of ids) await verifyRun(store, id, items);
    writes.sort((a, b) => a - b);
    return { ms, items: runs * items, p50: percentile(writes, 50), p99: percentile(writes, 99), loopP99: loop.percentile(99) / 1e6 };
  },
  stop: async () => {
    await engine.stop();
    await store.close();
    setImmediate(() => process.exit(0));
  },
});
