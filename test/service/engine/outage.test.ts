// A run through a store outage, in one process: items that finish while the store refuses are
// held and written when it is back, with a snapshot that agrees with the ledger, and the run
// resumes from that snapshot elsewhere as from any other.
import { afterEach, describe, expect, it } from 'vitest';
import { Engine } from '../../../service/engine/engine.js';
import { RunstateError } from '../../../service/errors.js';
import { SqliteStore } from '../../../service/store/sqlite.js';
import { isTransition, tempDir } from '../../helpers/engine.js';
import { faultyStore } from '../../helpers/faulty-store.js';
import { gatedPipeline } from '../../helpers/gated.js';

describe('a run while the store is away', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('holds items finished meanwhile, writes them when the store is back, and resumes from there', async () => {
    const dir = tempDir('rs-outage-');
    cleanup.push(() => dir.remove());
    const real = new SqliteStore({ filename: `${dir.path}/runstate.db` });
    cleanup.push(() => real.close());
    const f = faultyStore(real);
    const gate = gatedPipeline('gated', [3, 2], { concurrency: 2 });
    const engine = new Engine({ store: f.store, pipelines: [gate.pipeline], leaseMs: 60_000 });
    cleanup.push(() => engine.stop());
    await engine.recover();
    const run = await engine.startRun({ accountId: 'acme', siteId: 'site-5', pipeline: 'gated' });
    await gate.finish();
    await expect.poll(async () => (await real.ledger(run.run_id)).length).toBe(1);

    // The store goes away; two more items finish, stage 1 completes in memory, stage 2 waits to load.
    f.refuse(true);
    await gate.finish();
    await gate.finish();
    await expect.poll(async () => (await engine.getRun(run.run_id))!.current_stage).toBe(2);
    const command = await engine.command(run.run_id, 'pause', { by: 'ops' }).catch((e: unknown) => e);
    expect(command).toBeInstanceOf(RunstateError);
    expect((command as RunstateError).code).toBe('DATABASE_UNAVAILABLE');
    expect(await real.ledger(run.run_id)).toHaveLength(1);

    // Back: the held items are written, stage 2 loads and starts by itself.
    f.refuse(false);
    await gate.inFlight(2);
    await expect.poll(async () => (await real.ledger(run.run_id)).length).toBe(3);
    await engine.settle();
    const record = (await real.getRun(run.run_id))!;
    const ledger = await real.ledger(run.run_id);
    expect(ledger.map((l) => l.itemId)).toEqual([101, 102, 103]);
    const stage1 = (record.snapshot as { children: Record<string, { snapshot: { context: { processed: number } } }> }).children['stage.1'];
    expect(stage1?.snapshot.context.processed).toBe(ledger.filter((l) => l.stage === 1).length);
    const events = await real.readEvents(run.run_id, 0);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.filter((e) => e.event === 'command')).toEqual([]);

    // Another process takes the run from that snapshot: stage 1 is not worked again.
    await engine.stop();
    const gate2 = gatedPipeline('gated', [3, 2], { concurrency: 2 });
    const again = new Engine({ store: real, pipelines: [gate2.pipeline], leaseMs: 60_000 });
    cleanup.push(() => again.stop());
    await again.recover();
    await gate2.finish();
    await gate2.finish();
    await again.whenRetired(run.run_id);
    expect(gate2.started.map((s) => s.stage)).toEqual([2, 2]);
    const all = await real.ledger(run.run_id);
    expect(all.map((l) => `${l.stage}:${String(l.itemId)}`)).toEqual(['1:101', '1:102', '1:103', '2:201', '2:202']);
    const final = await real.readEvents(run.run_id, 0);
    expect(final.map((e) => e.seq)).toEqual(final.map((_, i) => i + 1));
    expect(final.some(isTransition('run', 'completed'))).toBe(true);
  });

  it('lets its runs go before their leases can run out when it cannot renew them, and takes them up again after', async () => {
    const dir = tempDir('rs-outage-');
    cleanup.push(() => dir.remove());
    const real = new SqliteStore({ filename: `${dir.path}/runstate.db` });
    cleanup.push(() => real.close());
    const f = faultyStore(real);
    const gate = gatedPipeline('gated', [3], { concurrency: 1 });
    const leaseMs = 600;
    const engine = new Engine({ store: f.store, pipelines: [gate.pipeline], leaseMs });
    cleanup.push(() => engine.stop());
    await engine.recover();
    engine.start();
    const run = await engine.startRun({ accountId: 'acme', siteId: 'site-5', pipeline: 'gated' });
    await gate.finish();
    await expect.poll(async () => (await real.ledger(run.run_id)).length).toBe(1);
    await gate.inFlight(1);

    const refusedAt = performance.now();
    f.refuse(true);
    await expect.poll(() => engine.isHosted(run.run_id), { timeout: 5000, interval: 5 }).toBe(false);
    // Gone well within the lease that the last renewal (before the refusal) granted; the item in flight was stopped.
    expect(performance.now() - refusedAt).toBeLessThan(leaseMs);
    expect(gate.aborted).toHaveLength(1);

    f.refuse(false);
    await expect.poll(() => engine.isHosted(run.run_id), { timeout: 5000 }).toBe(true);
    await gate.finish();
    await gate.finish();
    await engine.whenRetired(run.run_id);
    expect((await real.getRun(run.run_id))!.status).toBe('completed');
    expect((await real.ledger(run.run_id)).map((l) => l.itemId)).toEqual([101, 102, 103]);
    const events = await real.readEvents(run.run_id, 0);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
  });
});
