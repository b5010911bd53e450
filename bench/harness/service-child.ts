// The service in a process of its own for the ingest and watchers parts: `service-child.ts <dataDir>
// <items> <concurrency>`, ready with {port, socketPath}; its no-op runs wait until `go`, so watchers subscribe first.
import { serve } from './child.js';
import { noopPipeline, OWNER, startService } from './service.js';

const [dir, items, concurrency] = process.argv.slice(2) as [string, string, string];
// Every item of the held run awaits `open`; once it is resolved that costs a microtask.
let open: Promise<void> = Promise.resolve();
let release = () => {};
let held = () => {};
const pipeline = noopPipeline(Number(items), Number(concurrency), { name: 'bench-fast', stage: { processItem: () => (held(), open) } });
const svc = await startService(dir, [pipeline]);

serve(
  {
    /** Starts `n` external runs: what the ingest socket appends to. */
    external: ({ n }) => {
      const start = async (i: number) => (await svc.engine.startRun({ ...OWNER, pipeline: 'external', machineName: 'face_processor', trigger: `bench-${i}` })).run_id;
      return Promise.all(Array.from({ length: Number(n) }, (_, i) => start(i)));
    },
    /** Starts a fast run, held at its first item; answers with its id. */
    prepare: async () => {
      open = new Promise<void>((resolve) => (release = resolve));
      const waiting = new Promise<void>((resolve) => (held = resolve));
      const run = await svc.engine.startRun({ ...OWNER, pipeline: pipeline.name });
      await waiting;
      return run.run_id;
    },
    /** Lets the run go; answers with its events and the time from go to retired. */
    go: async ({ runId }) => {
      const t0 = performance.now();
      release();
      await svc.engine.whenRetired(String(runId));
      const ms = performance.now() - t0;
      const run = await svc.store.getRun(String(runId));
      if (run?.status !== 'completed') throw new Error(`bench: run ${String(runId)} ended ${run?.status}`);
      return { ms, events: run.lastSeq };
    },
    stop: () => svc.stop(),
  },
  { port: svc.port, socketPath: svc.socketPath },
);
