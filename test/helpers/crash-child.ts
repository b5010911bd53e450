// A service process for the crash test, built as server.ts builds it (buildService) with a
// pipeline of its own: starts (or recovers) one run on the data dir it is given, reports what
// it does on stdout, and exits when the run is finished. The test kills it with SIGKILL at
// chosen points and starts it again on the same data.
//
// env: DATA (the data dir), PAUSE_AFTER (pause once this many items are processed),
//      RESUME=1 (resume the run if it was recovered paused).
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../../service/config.js';
import { latency, uniform } from '../../service/pipelines/random.js';
import type { PipelineDefinition } from '../../service/pipelines/types.js';
import { buildService } from '../../service/service.js';

const dataDir = process.env.DATA!;
const pauseAfter = process.env.PAUSE_AFTER ? Number(process.env.PAUSE_AFTER) : undefined;
export const ITEMS_PER_STAGE = [8, 0, 8];

const say = (line: string) => process.stdout.write(`${line}\n`);

const pipeline: PipelineDefinition<Record<string, never>> = {
  name: 'crashy',
  parseOptions: () => ({}),
  concurrencyOf: () => 2,
  retry: { attempts: 4, backoffMs: 2, backoffMaxMs: 10 },
  stages: ITEMS_PER_STAGE.map((count, i) => ({
    key: `stage_${i + 1}`,
    name: `Stage ${i + 1}`,
    async loadItems({ stage }) {
      return Array.from({ length: count }, (_, k) => ({ id: stage * 100 + k + 1, title: `item ${stage}.${k + 1}` }));
    },
    async processItem(item, ctx) {
      // The invariant under test: an item already in the ledger is never processed again.
      const recorded = (await service.store.ledger(ctx.runId)).some((l) => l.stage === ctx.stage && l.itemId === item.id);
      if (recorded) appendFileSync(join(dataDir, 'violations.log'), `${ctx.idempotencyKey} attempt ${ctx.attempt}\n`);
      say(`STARTED ${ctx.idempotencyKey} ${ctx.attempt}`);
      await sleep(2 + latency(6, ctx.idempotencyKey, ctx.attempt), undefined, { signal: ctx.signal });
      if (uniform('fail', ctx.idempotencyKey, ctx.attempt) < 0.15) throw new Error('flaky');
      return { cost: 1 };
    },
  })),
};

const service = await buildService(loadConfig({ RUNSTATE_DATA: dataDir, PORT: '0' }), { pipelines: [pipeline], webRoot: null });
const { engine, store } = service;
let processed = 0;
let pauseSent = false;
engine.onEvents((run, events) => {
  for (const e of events) {
    const to = e.event === 'state_change' ? e.payload.to_state : '';
    const who = e.event === 'state_change' ? e.machine_name : 'stage' in e ? e.stage : undefined;
    say(`EVENT ${e.seq} ${e.event} ${String(who ?? '')} ${to}`);
    if (e.event === 'stage_item_processed' || e.event === 'stage_item_failed') processed += 1;
    if (process.env.RESUME === '1' && e.event === 'state_change' && e.machine_name === 'run' && to === 'paused') {
      engine.command(run.runId, 'resume', { by: 'crash-test' }).catch((err: unknown) => say(`RESUME_FAILED ${String(err)}`));
    }
  }
  if (pauseAfter !== undefined && !pauseSent && processed >= pauseAfter) {
    pauseSent = true;
    engine.command(run.runId, 'pause', { by: 'crash-test' }).catch((err: unknown) => say(`PAUSE_FAILED ${String(err)}`));
  }
});

// Repairs the traces and recovers the run, as a service start does.
await service.start();
let runId: string;
const existing = (await store.listRuns({}))[0];
if (existing && engine.isHosted(existing.runId)) {
  runId = existing.runId;
  say(`RECOVERED ${runId} ${existing.status}`);
} else if (existing) {
  runId = existing.runId;
  say(`FINISHED_BEFORE ${runId} ${existing.status}`);
} else {
  runId = (await engine.startRun({ accountId: 'acme', siteId: 'site-5', pipeline: 'crashy' })).run_id;
  say(`STARTED_RUN ${runId}`);
}

const view = await engine.getRun(runId);
if (view?.status === 'paused') {
  say('PAUSED');
  if (process.env.RESUME === '1') await engine.command(runId, 'resume', { by: 'crash-test' });
}
await engine.whenRetired(runId);
await service.traces.flush();
const final = await engine.getRun(runId);
say(`DONE ${final!.status}`);
await service.stop();
