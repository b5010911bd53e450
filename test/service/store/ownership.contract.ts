// The `OwnershipStore` contract: leases (claim, renew, release, fencing) and the command queue
// for runs another instance holds.
import { beforeEach, describe, expect, it } from 'vitest';
import { LIVE_RUN_STATUSES } from '../../../machines/statuses.js';
import { LeaseLostError, StoreNotFoundError, type NewRun, type Store } from '../../../service/store/store.js';
import { activities, at, newRun, useStore, type OpenStore } from './contract.js';

export function ownershipContract(name: string, open: OpenStore): void {
  describe(`ownership contract: ${name}`, () => {
    const current = useStore(open);
    let store: Store;

    beforeEach(() => {
      store = current();
    });

    describe('leases', () => {
      const live = async (id: string, status: string, extra: Partial<NewRun> = {}) => {
        await store.createRun(newRun(id, { createdAt: at(Number(id.replace(/\D/g, '')) || 0), ...extra }));
        await store.commit(id, { events: [], status });
      };

      it('leases a new run to the instance that creates it, and fences writes by others', async () => {
        const run = await store.createRun(newRun('run_1', { lease: { owner: 'a', ms: 60_000 } }));
        expect(run.owner).toBe('a');
        await store.commit('run_1', { events: activities(1), owner: 'a' });
        await expect(store.commit('run_1', { events: activities(1), owner: 'b', snapshot: { b: 1 } })).rejects.toBeInstanceOf(LeaseLostError);
        const after = await store.getRun('run_1');
        expect(after).toMatchObject({ lastSeq: 1, snapshot: null });
        await expect(store.commit('run_ghost', { events: activities(1), owner: 'a' })).rejects.toBeInstanceOf(StoreNotFoundError);
      });

      it('claims live runs nobody holds, each once, and leaves others’ leases alone', async () => {
        await live('run_1', 'running');
        await live('run_2', 'paused');
        await live('run_3', 'completed');
        await live('run_4', 'running', { pipeline: 'external', machineName: 'm', hosted: false });
        await store.createRun(newRun('run_5', { createdAt: at(5), lease: { owner: 'b', ms: 60_000 } }));
        const claimed = await store.claimRuns('a', 60_000, 10);
        expect(claimed.map((r) => r.runId).sort()).toEqual(['run_1', 'run_2']);
        expect(claimed.every((r) => r.owner === 'a')).toBe(true);
        expect(await store.claimRuns('c', 60_000, 10)).toEqual([]);
        // `all` takes every live run, held or not: for the only instance on a store.
        const all = await store.claimRuns('c', 60_000, 10, { all: true });
        expect(all.map((r) => r.runId).sort()).toEqual(['run_1', 'run_2', 'run_5']);
      });

      it('claims runs in every live status and in no other', async () => {
        const statuses = [...LIVE_RUN_STATUSES, 'completed', 'cancelled'];
        for (const [i, status] of statuses.entries()) await live(`run_${i}_${status}`, status, { createdAt: at(i) });
        const claimed = await store.claimRuns('a', 60_000, 100);
        expect(claimed.map((r) => r.status).sort()).toEqual([...LIVE_RUN_STATUSES].sort());
        expect((await store.renewLeases('a', 60_000)).sort()).toEqual(claimed.map((r) => r.runId).sort());
        expect(await store.claimRuns('b', 60_000, 100, { all: true })).toHaveLength(LIVE_RUN_STATUSES.length);
      });

      it('renews every lease of an owner however many it holds, and no other owner’s', async () => {
        const ids = Array.from({ length: 350 }, (_, i) => `run_${String(i).padStart(4, '0')}`);
        for (const id of ids) await store.createRun(newRun(id, { lease: { owner: 'a', ms: 60_000 } }));
        await store.createRun(newRun('run_b', { lease: { owner: 'b', ms: 60_000 } }));
        expect((await store.renewLeases('a', 60_000)).sort()).toEqual(ids);
        expect(await store.renewLeases('b', 60_000)).toEqual(['run_b']);
      });

      it('renews no lease of a finished run, nor counts it as held', async () => {
        for (const [id, status] of [['run_1', 'running'], ['run_2', 'completed'], ['run_3', 'cancelled']] as const) {
          await live(id, status, { lease: { owner: 'a', ms: 60_000 } });
        }
        expect(await store.renewLeases('a', 60_000)).toEqual(['run_1']);
      });

      it('leases a completed run back for retry_failed, unless another instance holds it or it is closed', async () => {
        await live('run_1', 'completed');
        await live('run_2', 'running');
        await live('run_3', 'completed', { hosted: false, machineName: 'm' });
        await live('run_4', 'completed');
        await store.commit('run_4', { events: [], closedAt: at(9) });
        const leased = await store.leaseFinishedRun('run_1', 'a', 60_000);
        expect(leased).toMatchObject({ runId: 'run_1', status: 'completed', owner: 'a' });
        expect(await store.leaseFinishedRun('run_1', 'b', 60_000)).toBeUndefined();
        // Its owner may take it again; a write by it goes through, one by the other is fenced.
        expect(await store.leaseFinishedRun('run_1', 'a', 60_000)).toMatchObject({ owner: 'a' });
        await store.commit('run_1', { events: activities(1), status: 'running', owner: 'a' });
        await expect(store.commit('run_1', { events: activities(1), owner: 'b' })).rejects.toBeInstanceOf(LeaseLostError);
        // Back at work it is a live run like any other: renewed with the rest of the owner's leases.
        expect(await store.renewLeases('a', 60_000)).toEqual(['run_1']);
        for (const id of ['run_2', 'run_3', 'run_4', 'run_ghost']) expect(await store.leaseFinishedRun(id, 'a', 60_000), id).toBeUndefined();
      });

      it('leases a completed run whose earlier lease expired', async () => {
        await live('run_1', 'completed');
        expect(await store.leaseFinishedRun('run_1', 'a', 0)).toMatchObject({ owner: 'a' });
        expect(await store.leaseFinishedRun('run_1', 'b', 60_000)).toMatchObject({ owner: 'b' });
      });

      it('never claims a run that is not hosted, not even with all', async () => {
        await live('run_1', 'running', { hosted: false, machineName: 'm' });
        await live('run_2', 'idle', { hosted: false });
        await live('run_3', 'running');
        expect((await store.claimRuns('a', 60_000, 10)).map((r) => r.runId)).toEqual(['run_3']);
        expect((await store.claimRuns('b', 60_000, 10, { all: true })).map((r) => r.runId)).toEqual(['run_3']);
        expect((await store.getRun('run_1'))?.owner).toBeNull();
      });

      it('fences the owner of an expired lease even while nobody else has claimed the run', async () => {
        await live('run_1', 'running');
        // A lease of 0 ms has run out by the next statement: no waiting needed.
        await store.claimRuns('a', 0, 10);
        expect((await store.getRun('run_1'))?.owner).toBe('a');
        await expect(store.commit('run_1', { events: activities(1), snapshot: { a: 1 }, owner: 'a' })).rejects.toBeInstanceOf(
          LeaseLostError,
        );
        expect(await store.getRun('run_1')).toMatchObject({ lastSeq: 0, snapshot: null });
      });

      it('lets a lease expire, then another instance claims the run and the old owner is fenced', async () => {
        await live('run_1', 'running');
        await store.claimRuns('a', 0, 10);
        expect(await store.renewLeases('a', 60_000)).toEqual([]);
        expect((await store.claimRuns('b', 60_000, 10)).map((r) => r.runId)).toEqual(['run_1']);
        await expect(store.commit('run_1', { events: activities(1), owner: 'a' })).rejects.toBeInstanceOf(LeaseLostError);
        await store.commit('run_1', { events: activities(1), owner: 'b' });
        expect(await store.renewLeases('b', 60_000)).toEqual(['run_1']);
      });

      it('releases leases so another instance can claim at once', async () => {
        await live('run_1', 'running');
        await live('run_2', 'running');
        await store.claimRuns('a', 60_000, 10);
        await store.releaseLeases('a', ['run_1']);
        expect((await store.claimRuns('b', 60_000, 10)).map((r) => r.runId)).toEqual(['run_1']);
        await store.releaseLeases('a');
        expect((await store.claimRuns('b', 60_000, 10)).map((r) => r.runId)).toEqual(['run_2']);
        expect((await store.getRun('run_2'))?.owner).toBe('b');
      });

      it('claims a limited number at a time', async () => {
        for (let i = 1; i <= 5; i++) await live(`run_${i}`, 'running');
        expect(await store.claimRuns('a', 60_000, 2)).toHaveLength(2);
        expect(await store.claimRuns('b', 60_000, 10)).toHaveLength(3);
      });
    });

    describe('commands for a run’s owner', () => {
      beforeEach(async () => {
        await store.createRun(newRun('run_1', { lease: { owner: 'a', ms: 60_000 } }));
        await store.createRun(newRun('run_2', { lease: { owner: 'b', ms: 60_000 } }));
      });

      it('hands queued commands to the owner only, once, in order, and carries the outcome back', async () => {
        const first = await store.enqueueCommand({ runId: 'run_1', command: 'pause', by: 'ops', reason: 'outage' });
        const second = await store.enqueueCommand({ runId: 'run_1', command: 'resume', by: 'ops' });
        await store.enqueueCommand({ runId: 'run_2', command: 'cancel', by: 'ops' });
        expect(await store.commandOutcome(first)).toBe('pending');
        const taken = await store.takeCommands('a');
        expect(taken).toEqual([
          { id: first, runId: 'run_1', command: 'pause', by: 'ops', reason: 'outage' },
          { id: second, runId: 'run_1', command: 'resume', by: 'ops', reason: null },
        ]);
        expect(await store.takeCommands('a')).toEqual([]);
        await store.finishCommand(first, { accepted: true });
        await store.finishCommand(second, { error: { code: 'COMMAND_NOT_ALLOWED', message: 'no' } });
        expect(await store.commandOutcome(first)).toEqual({ accepted: true });
        expect(await store.commandOutcome(second)).toEqual({ error: { code: 'COMMAND_NOT_ALLOWED', message: 'no' } });
        expect((await store.takeCommands('b')).map((c) => c.command)).toEqual(['cancel']);
      });

      it('expires a command nobody took, so it is never applied; a taken one cannot expire', async () => {
        const lonely = await store.enqueueCommand({ runId: 'run_1', command: 'pause', by: 'ops' });
        expect(await store.expireCommand(lonely)).toBe(true);
        expect(await store.commandOutcome(lonely)).toBe('expired');
        expect(await store.takeCommands('a')).toEqual([]);
        const taken = await store.enqueueCommand({ runId: 'run_1', command: 'pause', by: 'ops' });
        await store.takeCommands('a');
        expect(await store.expireCommand(taken)).toBe(false);
        expect(await store.commandOutcome(999_999)).toBe('expired');
      });
    });
  });
}
