// The `RunStore` contract: runs, the event log, the ledger, stage items and traces.
import { beforeEach, describe, expect, it } from 'vitest';
import {
  IdempotencyKeyTakenError,
  LedgerConflictError,
  StoreConflictError,
  StoreNotFoundError,
  type Item,
  type Store,
} from '../../../service/store/store.js';
import { activities, activity, at, done, messageOf, newRun, range, seqsOf, untyped, useStore, type OpenStore } from './contract.js';

export function runStoreContract(name: string, open: OpenStore): void {
  describe(`run store contract: ${name}`, () => {
    const current = useStore(open);
    let store: Store;

    beforeEach(() => {
      store = current();
    });

    describe('createRun with an idempotency key', () => {
      const DAY = 24 * 60 * 60 * 1000;
      const claim = (fingerprint: string, atMs: number) => ({ scope: 'ops', key: 'k-1', fingerprint, atMs, windowMs: DAY });

      it('makes one run per key and scope, naming the holder to every other claim', async () => {
        await store.createRun({ ...newRun('run_a'), idempotency: claim('f1', 1000) });
        const err = await store.createRun({ ...newRun('run_b'), idempotency: claim('f2', 2000) }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(IdempotencyKeyTakenError);
        expect(err).toMatchObject({ runId: 'run_a', fingerprint: 'f1' });
        // Nothing of the refused run was written.
        expect(await store.getRun('run_b')).toBeUndefined();
        // Another scope's key of the same name is another key.
        await store.createRun({ ...newRun('run_c'), idempotency: { ...claim('f1', 2000), scope: 'other' } });
        expect((await store.listRuns({})).map((r) => r.runId).sort()).toEqual(['run_a', 'run_c']);
      });

      it('makes exactly one run of many concurrent claims of one key', async () => {
        const ids = range(0, 19).map((i) => `run_${String(i).padStart(2, '0')}`);
        const outcomes = await Promise.allSettled(ids.map((id) => store.createRun({ ...newRun(id), idempotency: claim('f1', 1000) })));
        const made = outcomes.filter((o) => o.status === 'fulfilled');
        expect(made).toHaveLength(1);
        const holder = (made[0] as PromiseFulfilledResult<{ runId: string }>).value.runId;
        for (const o of outcomes) {
          if (o.status === 'rejected') expect(o.reason).toMatchObject({ runId: holder, fingerprint: 'f1' });
        }
        expect(await store.listRuns({})).toHaveLength(1);
      });

      it('frees a key once its window has passed', async () => {
        await store.createRun({ ...newRun('run_a'), idempotency: claim('f1', 1000) });
        await expect(store.createRun({ ...newRun('run_b'), idempotency: claim('f1', 1000 + DAY - 1) })).rejects.toBeInstanceOf(IdempotencyKeyTakenError);
        const again = await store.createRun({ ...newRun('run_b'), idempotency: claim('f2', 1000 + DAY) });
        expect(again.runId).toBe('run_b');
        await expect(store.createRun({ ...newRun('run_c'), idempotency: claim('f1', 2000 + DAY) })).rejects.toMatchObject({ runId: 'run_b' });
      });

      it('keeps the key free when the run cannot be made', async () => {
        await store.createRun(newRun('run_a'));
        await expect(store.createRun({ ...newRun('run_a'), idempotency: claim('f1', 1000) })).rejects.toBeInstanceOf(StoreConflictError);
        expect((await store.createRun({ ...newRun('run_b'), idempotency: claim('f1', 1000) })).runId).toBe('run_b');
      });
    });

    describe('createRun and getRun', () => {
      it('creates an idle run with no events, no snapshot and no error', async () => {
        const created = await store.createRun(newRun('run_a', { createdAt: at(5) }));
        expect(created).toMatchObject({
          runId: 'run_a',
          accountId: 'acct_1',
          siteId: 'site_1',
          pipeline: 'content',
          trigger: 'manual',
          options: { stages: [1, 2, 3], dryRun: false },
          machineName: null,
          status: 'idle',
          error: null,
          snapshot: null,
          lastSeq: 0,
          createdAt: at(5),
          closedAt: null,
        });
        expect(typeof created.updatedAt).toBe('string');
        expect(await store.getRun('run_a')).toEqual(created);
      });

      it('keeps the machine name of an external run', async () => {
        await store.createRun(newRun('run_ext', { machineName: 'face-processor', hosted: false }));
        expect((await store.getRun('run_ext'))?.machineName).toBe('face-processor');
      });

      it('keeps whether the run is hosted, true unless told otherwise', async () => {
        expect((await store.createRun(newRun('run_a'))).hosted).toBe(true);
        expect((await store.createRun(newRun('run_b', { hosted: true }))).hosted).toBe(true);
        expect((await store.createRun(newRun('run_c', { hosted: false, machineName: 'm' }))).hosted).toBe(false);
        expect((await store.getRun('run_a'))?.hosted).toBe(true);
        expect((await store.getRun('run_c'))?.hosted).toBe(false);
        expect((await store.listRuns({})).map((r) => [r.runId, r.hosted])).toEqual([
          ['run_c', false],
          ['run_b', true],
          ['run_a', true],
        ]);
      });

      it('throws StoreConflictError on a duplicate id and keeps the first run', async () => {
        await store.createRun(newRun('run_a', { accountId: 'acct_1' }));
        const dup = store.createRun(newRun('run_a', { accountId: 'acct_2' }));
        await expect(dup).rejects.toBeInstanceOf(StoreConflictError);
        await expect(dup).rejects.toMatchObject({ code: 'STORE_CONFLICT' });
        expect((await store.getRun('run_a'))?.accountId).toBe('acct_1');
      });

      it('returns undefined for an unknown id', async () => {
        await store.createRun(newRun('run_a'));
        expect(await store.getRun('run_unknown')).toBeUndefined();
      });
    });

    describe('listRuns', () => {
      beforeEach(async () => {
        // Created out of order, so "newest first" cannot come from insertion order.
        await store.createRun(newRun('r2', { siteId: 's2', accountId: 'a1', createdAt: at(2) }));
        await store.createRun(newRun('r4', { siteId: 's1', accountId: 'a2', createdAt: at(4) }));
        await store.createRun(newRun('r1', { siteId: 's1', accountId: 'a1', createdAt: at(1) }));
        await store.createRun(newRun('r3', { siteId: 's3', accountId: 'a2', createdAt: at(3) }));
        await store.commit('r2', { events: [], status: 'running' });
        await store.commit('r3', { events: [], status: 'completed', closedAt: at(10) });
      });

      const ids = (runs: { runId: string }[]): string[] => runs.map((r) => r.runId);

      it('lists every run newest first', async () => {
        expect(ids(await store.listRuns({}))).toEqual(['r4', 'r3', 'r2', 'r1']);
      });

      it('filters by site ids', async () => {
        expect(ids(await store.listRuns({ siteIds: ['s1', 's3'] }))).toEqual(['r4', 'r3', 'r1']);
        expect(ids(await store.listRuns({ siteIds: ['s2'] }))).toEqual(['r2']);
        expect(ids(await store.listRuns({ siteIds: ['s9'] }))).toEqual([]);
      });

      it('returns no runs for an empty list of site ids', async () => {
        expect(await store.listRuns({ siteIds: [] })).toEqual([]);
      });

      it('filters by status', async () => {
        expect(ids(await store.listRuns({ status: 'running' }))).toEqual(['r2']);
        expect(ids(await store.listRuns({ status: 'idle' }))).toEqual(['r4', 'r1']);
      });

      it('pages newest first after a given run, ties on the time broken by run id', async () => {
        await store.createRun(newRun('r5', { siteId: 's1', accountId: 'a1', createdAt: at(4) }));
        const all = ids(await store.listRuns({}));
        expect(all).toEqual(['r5', 'r4', 'r3', 'r2', 'r1']);
        const pages: string[] = [];
        let before: { createdAt: string; runId: string } | undefined;
        for (;;) {
          const page = await store.listRuns({ limit: 2, ...(before ? { before } : {}) });
          if (page.length === 0) break;
          pages.push(...ids(page));
          const last = page[page.length - 1]!;
          before = { createdAt: last.createdAt, runId: last.runId };
        }
        expect(pages).toEqual(all);
        expect(ids(await store.listRuns({ siteIds: ['s1'], before: { createdAt: at(4), runId: 'r5' } }))).toEqual(['r4', 'r1']);
      });

      it('hides closed runs when open is true', async () => {
        expect(ids(await store.listRuns({ open: true }))).toEqual(['r4', 'r2', 'r1']);
        expect(ids(await store.listRuns({ open: false }))).toEqual(['r4', 'r3', 'r2', 'r1']);
      });

      it('returns at most limit runs, the newest', async () => {
        expect(ids(await store.listRuns({ limit: 2 }))).toEqual(['r4', 'r3']);
      });

      it('combines filters', async () => {
        expect(ids(await store.listRuns({ siteIds: ['s1', 's2', 's3'], open: true, limit: 2 }))).toEqual(['r4', 'r2']);
        expect(ids(await store.listRuns({ siteIds: ['s1', 's3'], open: true }))).toEqual(['r4', 'r1']);
        expect(ids(await store.listRuns({ siteIds: ['s1', 's2'], status: 'idle', limit: 1 }))).toEqual(['r4']);
        expect(ids(await store.listRuns({ siteIds: ['s2', 's3'], status: 'completed', open: true }))).toEqual([]);
      });
    });

    describe('countRunsByStatus', () => {
      it('counts runs per status and leaves out statuses with none', async () => {
        expect(await store.countRunsByStatus()).toEqual({});
        const statuses = ['running', 'running', 'paused', 'completed'];
        for (const [i, status] of statuses.entries()) {
          await store.createRun(newRun(`run_${i}`, { createdAt: at(i) }));
          await store.commit(`run_${i}`, { events: [], status });
        }
        await store.createRun(newRun('run_new', { createdAt: at(9) }));
        expect(await store.countRunsByStatus()).toEqual({ running: 2, paused: 1, completed: 1, idle: 1 });
      });
    });

    describe('commit', () => {
      beforeEach(async () => {
        await store.createRun(newRun('run_a'));
      });

      it('assigns seqs 1..n in batch order', async () => {
        const res = await store.commit('run_a', { events: activities(3) });
        expect(res.seqs).toEqual([1, 2, 3]);
        expect(res.events.map((e) => [e.seq, messageOf(e)])).toEqual([
          [1, 'm0'],
          [2, 'm1'],
          [3, 'm2'],
        ]);
        expect((await store.getRun('run_a'))?.lastSeq).toBe(3);
      });

      it('assigns gap-free seqs across batches', async () => {
        const sizes = [1, 4, 0, 2, 7, 1, 3];
        let next = 1;
        for (const size of sizes) {
          const res = await store.commit('run_a', { events: activities(size) });
          expect(res.seqs).toEqual(range(next, next + size - 1));
          next += size;
        }
        const total = sizes.reduce((a, b) => a + b, 0);
        expect(await seqsOf(store, 'run_a')).toEqual(range(1, total));
        expect((await store.getRun('run_a'))?.lastSeq).toBe(total);
      });

      it('stores the event with run_id and seq and keeps every field', async () => {
        const event = untyped({
          event: 'stage_item_processed',
          timestamp: '2025-12-04T19:03:32.123Z',
          stage: 4,
          processed: 7,
          total: 10,
          item: { id: 123, title: 'Ünïcode “title”', tags: ['a', 'b'], nested: { ok: true, none: null } },
          ratio: 0.25,
          note: null,
        });
        const res = await store.commit('run_a', { events: [event] });
        const expected = { ...event, run_id: 'run_a', seq: 1 };
        expect(res.events).toEqual([expected]);
        expect(await store.readEvents('run_a', 0)).toEqual([expected]);
      });

      it('updates snapshot, status, error and closedAt', async () => {
        const snapshot = { value: { running: 'stage_1' }, context: { items: [1, 'two'] }, children: {} };
        await store.commit('run_a', { events: activities(1), snapshot, status: 'failed', error: 'provider outage' });
        expect(await store.getRun('run_a')).toMatchObject({
          snapshot,
          status: 'failed',
          error: 'provider outage',
          closedAt: null,
          lastSeq: 1,
        });
        await store.commit('run_a', { events: [], status: 'cancelled', closedAt: at(30) });
        expect(await store.getRun('run_a')).toMatchObject({ status: 'cancelled', closedAt: at(30) });
      });

      it('replaces the snapshot whole rather than merging it', async () => {
        await store.commit('run_a', { events: [], snapshot: { a: 1, b: { c: 2 } } });
        await store.commit('run_a', { events: [], snapshot: { b: { d: 3 } } });
        expect((await store.getRun('run_a'))?.snapshot).toEqual({ b: { d: 3 } });
      });

      it('keeps the snapshot, status and closedAt when the batch leaves them out', async () => {
        await store.commit('run_a', { events: [], snapshot: { step: 1 }, status: 'running', closedAt: at(20) });
        await store.commit('run_a', { events: activities(2) });
        expect(await store.getRun('run_a')).toMatchObject({
          snapshot: { step: 1 },
          status: 'running',
          closedAt: at(20),
          lastSeq: 2,
        });
      });

      it('keeps the error when error is undefined and clears it when error is null', async () => {
        await store.commit('run_a', { events: [], status: 'failed', error: 'boom' });
        await store.commit('run_a', { events: activities(1), status: 'failed' });
        expect((await store.getRun('run_a'))?.error).toBe('boom');
        await store.commit('run_a', { events: [], error: undefined });
        expect((await store.getRun('run_a'))?.error).toBe('boom');
        await store.commit('run_a', { events: [], status: 'running', error: null });
        expect(await store.getRun('run_a')).toMatchObject({ status: 'running', error: null });
      });

      it('throws StoreNotFoundError for an unknown run and writes nothing', async () => {
        const attempt = store.commit('run_ghost', {
          events: activities(2),
          eventKeys: ['k1', null],
          snapshot: { x: 1 },
          status: 'running',
          ledger: [done(1, 1)],
        });
        await expect(attempt).rejects.toBeInstanceOf(StoreNotFoundError);
        await expect(attempt).rejects.toMatchObject({ code: 'STORE_NOT_FOUND' });
        expect(await store.getRun('run_ghost')).toBeUndefined();
        expect(await store.readEvents('run_ghost', 0)).toEqual([]);
        expect(await store.ledger('run_ghost')).toEqual([]);

        // Once the run exists, nothing of the failed commit is there: seq starts at 1, the key
        // and the ledger entry are unused.
        await store.createRun(newRun('run_ghost'));
        const res = await store.commit('run_ghost', { events: activities(1), eventKeys: ['k1'], ledger: [done(1, 1)] });
        expect(res.seqs).toEqual([1]);
        expect(res.events).toHaveLength(1);
        expect(await store.ledger('run_ghost')).toEqual([done(1, 1)]);
        expect((await store.getRun('run_a'))?.lastSeq).toBe(0);
      });
    });

    describe('event keys', () => {
      beforeEach(async () => {
        await store.createRun(newRun('run_a'));
      });

      it('returns the first seq for a repeated key and appends nothing', async () => {
        const first = await store.commit('run_a', { events: [activity('original')], eventKeys: ['item:1'] });
        expect(first.seqs).toEqual([1]);
        await store.commit('run_a', { events: activities(2) });

        const again = await store.commit('run_a', { events: [activity('retry')], eventKeys: ['item:1'] });
        expect(again.seqs).toEqual([1]);
        expect(again.events).toEqual([]);
        expect((await store.getRun('run_a'))?.lastSeq).toBe(3);
        const events = await store.readEvents('run_a', 0);
        expect(events.map((e) => messageOf(e))).toEqual(['original', 'm0', 'm1']);
      });

      it('appends a key repeated inside one batch once', async () => {
        const res = await store.commit('run_a', {
          events: [activity('a'), activity('b'), activity('c'), activity('d')],
          eventKeys: ['k', 'k', null, 'k'],
        });
        expect(res.seqs).toEqual([1, 1, 2, 1]);
        expect(res.events.map((e) => [e.seq, messageOf(e)])).toEqual([
          [1, 'a'],
          [2, 'c'],
        ]);
        expect(await seqsOf(store, 'run_a')).toEqual([1, 2]);
      });

      it('keeps seqs gap-free in a batch that mixes new and repeated keys', async () => {
        await store.commit('run_a', { events: activities(2, 'old'), eventKeys: ['k1', 'k2'] });
        const res = await store.commit('run_a', {
          events: [activity('x'), activity('y'), activity('z'), activity('w'), activity('v')],
          eventKeys: ['k2', 'k3', null, 'k1', 'k4'],
        });
        expect(res.seqs).toEqual([2, 3, 4, 1, 5]);
        expect(res.events.map((e) => [e.seq, messageOf(e)])).toEqual([
          [3, 'y'],
          [4, 'z'],
          [5, 'v'],
        ]);
        expect(await seqsOf(store, 'run_a')).toEqual([1, 2, 3, 4, 5]);
        expect((await store.getRun('run_a'))?.lastSeq).toBe(5);
        const next = await store.commit('run_a', { events: activities(1) });
        expect(next.seqs).toEqual([6]);
      });

      it('never deduplicates events without a key', async () => {
        const res = await store.commit('run_a', { events: [activity('same'), activity('same')], eventKeys: [null, null] });
        expect(res.seqs).toEqual([1, 2]);
        const again = await store.commit('run_a', { events: [activity('same')] });
        expect(again.seqs).toEqual([3]);
      });

      it('scopes keys to their run', async () => {
        await store.createRun(newRun('run_b'));
        await store.commit('run_a', { events: activities(2) });
        await store.commit('run_a', { events: [activity('a')], eventKeys: ['item:7'] });
        const res = await store.commit('run_b', { events: [activity('b')], eventKeys: ['item:7'] });
        expect(res.seqs).toEqual([1]);
        expect(res.events.map((e) => e.run_id)).toEqual(['run_b']);
      });

      it('lists a run’s keys with the seq each was first appended with', async () => {
        await store.createRun(newRun('run_b'));
        expect(await store.eventKeys('run_a')).toEqual(new Map());
        await store.commit('run_a', { events: activities(3), eventKeys: ['k1', null, 'k2'] });
        await store.commit('run_a', { events: activities(1), eventKeys: ['k1'] });
        await store.commit('run_b', { events: activities(1), eventKeys: ['k9'] });
        expect(await store.eventKeys('run_a')).toEqual(new Map([['k1', 1], ['k2', 3]]));
      });
    });

    describe('ledger', () => {
      beforeEach(async () => {
        await store.createRun(newRun('run_a'));
      });

      it('returns entries in the order they were recorded, across stages', async () => {
        const entries = [
          done(2, 'b'),
          done(1, 'z', { status: 'failed', attempts: 3, error: 'timeout' }),
          done(2, 'a', { cost: 1.5 }),
        ];
        await store.commit('run_a', { events: activities(1), ledger: entries.slice(0, 2) });
        await store.commit('run_a', { events: [], ledger: [entries[2]!] });
        await store.commit('run_a', { events: activities(1), ledger: [done(1, 'a')] });
        expect(await store.ledger('run_a')).toEqual([...entries, done(1, 'a')]);
      });

      it('returns an empty ledger for a run without entries', async () => {
        await store.commit('run_a', { events: activities(1) });
        expect(await store.ledger('run_a')).toEqual([]);
      });

      it('rejects a recorded item with LedgerConflictError and rolls back the whole batch', async () => {
        await store.commit('run_a', {
          events: activities(2),
          snapshot: { step: 1 },
          status: 'running',
          ledger: [done(1, 1)],
        });
        const before = await store.getRun('run_a');

        const attempt = store.commit('run_a', {
          events: activities(3, 'lost'),
          eventKeys: ['k-lost', null, null],
          snapshot: { step: 2 },
          status: 'failed',
          error: 'should not stick',
          closedAt: at(40),
          ledger: [done(1, 2), done(1, 1, { attempts: 2 })],
        });
        await expect(attempt).rejects.toBeInstanceOf(LedgerConflictError);
        await expect(attempt).rejects.toMatchObject({ code: 'LEDGER_CONFLICT' });

        expect(await store.getRun('run_a')).toEqual(before);
        expect(await seqsOf(store, 'run_a')).toEqual([1, 2]);
        expect(await store.ledger('run_a')).toEqual([done(1, 1)]);

        // The rolled-back key and item were never recorded, and seq carries on without a gap.
        const res = await store.commit('run_a', { events: [activity('retry')], eventKeys: ['k-lost'], ledger: [done(1, 2)] });
        expect(res.seqs).toEqual([3]);
        expect(await store.ledger('run_a')).toEqual([done(1, 1), done(1, 2)]);
      });

      it('replaces a failed row with a retried entry (failed → done), in place, and nothing else', async () => {
        await store.commit('run_a', {
          events: activities(1),
          ledger: [done(1, 'a', { status: 'failed', attempts: 3, error: 'timeout' }), done(1, 'b')],
        });
        // Failed again: the row keeps failing, with the attempts it has made now.
        await store.commit('run_a', { events: activities(1), ledger: [done(1, 'a', { status: 'failed', attempts: 4, error: 'again', retried: true })] });
        await store.commit('run_a', { events: activities(1), ledger: [done(1, 'a', { attempts: 5, cost: 2, retried: true })] });
        expect(await store.ledger('run_a')).toEqual([done(1, 'a', { attempts: 5, cost: 2 }), done(1, 'b')]);
        const before = await store.getRun('run_a');

        // A done row is never replaced, nor is a row that is not there; the whole batch rolls back.
        for (const entry of [done(1, 'a', { attempts: 6, retried: true }), done(1, 'b', { attempts: 2, retried: true }), done(2, 'new', { retried: true })]) {
          const attempt = store.commit('run_a', { events: activities(1), snapshot: { x: 1 }, ledger: [done(3, 'fresh'), entry] });
          await expect(attempt).rejects.toBeInstanceOf(LedgerConflictError);
        }
        expect(await store.getRun('run_a')).toEqual(before);
        expect(await store.ledger('run_a')).toEqual([done(1, 'a', { attempts: 5, cost: 2 }), done(1, 'b')]);
      });

      it('rejects an item repeated inside one batch and records neither', async () => {
        const attempt = store.commit('run_a', { events: activities(1), ledger: [done(3, 'x'), done(3, 'x')] });
        await expect(attempt).rejects.toBeInstanceOf(LedgerConflictError);
        expect(await store.ledger('run_a')).toEqual([]);
        expect((await store.getRun('run_a'))?.lastSeq).toBe(0);
      });

      it('accepts the same item id in two different stages', async () => {
        await store.commit('run_a', { events: [], ledger: [done(1, 42)] });
        await store.commit('run_a', { events: [], ledger: [done(2, 42)] });
        expect(await store.ledger('run_a')).toEqual([done(1, 42), done(2, 42)]);
      });

      it('reads one stage’s rows alone, in the order recorded', async () => {
        await store.commit('run_a', { events: [], ledger: [done(2, 'z'), done(1, 'a'), done(2, 'y')] });
        expect(await store.ledger('run_a', 2)).toEqual([done(2, 'z'), done(2, 'y')]);
        expect(await store.ledger('run_a', 1)).toEqual([done(1, 'a')]);
        expect(await store.ledger('run_a', 3)).toEqual([]);
      });

      it('accepts the same item in two different runs', async () => {
        await store.createRun(newRun('run_b'));
        await store.commit('run_a', { events: [], ledger: [done(1, 42)] });
        await store.commit('run_b', { events: [], ledger: [done(1, 42)] });
        expect(await store.ledger('run_a')).toEqual([done(1, 42)]);
        expect(await store.ledger('run_b')).toEqual([done(1, 42)]);
      });

      it('round-trips numeric and string item ids with their type', async () => {
        await store.commit('run_a', { events: [], ledger: [done(1, 7), done(1, 'abc'), done(1, '8'), done(1, 0)] });
        const ids = (await store.ledger('run_a')).map((e) => e.itemId);
        expect(ids).toEqual([7, 'abc', '8', 0]);
        expect(ids.map((id) => typeof id)).toEqual(['number', 'string', 'string', 'number']);
      });
    });

    describe('readEvents', () => {
      beforeEach(async () => {
        await store.createRun(newRun('run_a'));
        await store.commit('run_a', { events: activities(4) });
        await store.commit('run_a', { events: activities(3, 'n') });
      });

      it('returns every event in seq order from seq 0', async () => {
        expect(await seqsOf(store, 'run_a')).toEqual([1, 2, 3, 4, 5, 6, 7]);
      });

      it('returns only events after afterSeq', async () => {
        const events = await store.readEvents('run_a', 4);
        expect(events.map((e) => [e.seq, messageOf(e)])).toEqual([
          [5, 'n0'],
          [6, 'n1'],
          [7, 'n2'],
        ]);
        expect(await store.readEvents('run_a', 7)).toEqual([]);
        expect(await store.readEvents('run_a', 100)).toEqual([]);
      });

      it('returns at most limit events, the lowest seqs first', async () => {
        expect((await store.readEvents('run_a', 0, 2)).map((e) => e.seq)).toEqual([1, 2]);
        expect((await store.readEvents('run_a', 3, 3)).map((e) => e.seq)).toEqual([4, 5, 6]);
        expect((await store.readEvents('run_a', 6, 3)).map((e) => e.seq)).toEqual([7]);
      });

      it('returns nothing for an unknown run', async () => {
        expect(await store.readEvents('run_unknown', 0)).toEqual([]);
      });
    });

    describe('stage items', () => {
      const first: Item[] = [
        { id: 1, title: 'One', keyword: 'alpha' },
        { id: 'two', title: 'Two', meta: { rank: 2, tags: ['x'] } },
      ];
      const second: Item[] = [{ id: 3, title: 'Three' }];

      beforeEach(async () => {
        await store.createRun(newRun('run_a'));
      });

      it('returns undefined before any save', async () => {
        expect(await store.getStageItems('run_a', 1)).toBeUndefined();
      });

      it('returns the saved list with every field and id type', async () => {
        expect(await store.saveStageItems('run_a', 1, first)).toEqual(first);
        const got = await store.getStageItems('run_a', 1);
        expect(got).toEqual(first);
        expect(got?.map((i) => typeof i.id)).toEqual(['number', 'string']);
      });

      it('keeps the first list: a second save returns the first list', async () => {
        await store.saveStageItems('run_a', 1, first);
        expect(await store.saveStageItems('run_a', 1, second)).toEqual(first);
        expect(await store.getStageItems('run_a', 1)).toEqual(first);
      });

      it('keeps a list per stage and per run', async () => {
        await store.createRun(newRun('run_b'));
        await store.saveStageItems('run_a', 1, first);
        expect(await store.saveStageItems('run_a', 2, second)).toEqual(second);
        expect(await store.saveStageItems('run_b', 1, second)).toEqual(second);
        expect(await store.getStageItems('run_a', 1)).toEqual(first);
        expect(await store.getStageItems('run_a', 2)).toEqual(second);
        expect(await store.getStageItems('run_b', 1)).toEqual(second);
        expect(await store.getStageItems('run_b', 2)).toBeUndefined();
      });

      it('keeps an empty list as saved', async () => {
        expect(await store.saveStageItems('run_a', 3, [])).toEqual([]);
        expect(await store.getStageItems('run_a', 3)).toEqual([]);
        expect(await store.saveStageItems('run_a', 3, second)).toEqual([]);
      });
    });

    describe('markTraced and listUntraced', () => {
      const untracedIds = async (): Promise<string[]> => (await store.listUntraced()).map((r) => r.runId).sort();

      beforeEach(async () => {
        await store.createRun(newRun('run_a', { createdAt: at(1) }));
        await store.createRun(newRun('run_b', { createdAt: at(2) }));
      });

      it('does not list a run without events', async () => {
        expect(await untracedIds()).toEqual([]);
      });

      it('lists a run until it is marked traced up to its last seq', async () => {
        await store.commit('run_a', { events: activities(3) });
        await store.commit('run_b', { events: activities(1) });
        expect(await untracedIds()).toEqual(['run_a', 'run_b']);

        await store.markTraced('run_a', 2);
        expect(await untracedIds()).toEqual(['run_a', 'run_b']);
        await store.markTraced('run_a', 3);
        expect(await untracedIds()).toEqual(['run_b']);
        const listed = await store.listUntraced();
        expect(listed[0]).toMatchObject({ runId: 'run_b', lastSeq: 1 });
      });

      it('lists a traced run again once it has new events', async () => {
        await store.commit('run_a', { events: activities(2) });
        await store.markTraced('run_a', 2);
        expect(await untracedIds()).toEqual([]);
        await store.commit('run_a', { events: activities(1) });
        expect(await untracedIds()).toEqual(['run_a']);
      });

      it('never moves the traced seq backwards', async () => {
        await store.commit('run_a', { events: activities(3) });
        await store.markTraced('run_a', 3);
        await store.markTraced('run_a', 1);
        await store.markTraced('run_a', 0);
        expect(await untracedIds()).toEqual([]);
        await store.commit('run_a', { events: activities(1) });
        await store.markTraced('run_a', 2);
        expect(await untracedIds()).toEqual(['run_a']);
        await store.markTraced('run_a', 4);
        expect(await untracedIds()).toEqual([]);
      });
    });

    describe('concurrency and isolation', () => {
      beforeEach(async () => {
        await store.createRun(newRun('run_a', { createdAt: at(1) }));
        await store.createRun(newRun('run_b', { createdAt: at(2) }));
      });

      it('gives gap-free seqs to 20 concurrent commits on one run', async () => {
        const sizes = Array.from({ length: 20 }, (_, i) => (i % 3) + 1);
        const results = await Promise.all(sizes.map((size, i) => store.commit('run_a', { events: activities(size, `c${i}-`) })));
        const total = sizes.reduce((a, b) => a + b, 0);

        const all = results.flatMap((r) => r.seqs).sort((a, b) => a - b);
        expect(all).toEqual(range(1, total));
        // Each batch is appended as one block of consecutive seqs.
        for (const [i, res] of results.entries()) {
          expect(res.seqs).toHaveLength(sizes[i]!);
          const from = res.seqs[0]!;
          expect(res.seqs).toEqual(range(from, from + sizes[i]! - 1));
        }
        expect(await seqsOf(store, 'run_a')).toEqual(range(1, total));
        expect((await store.getRun('run_a'))?.lastSeq).toBe(total);
      });

      it('appends a key once when concurrent commits repeat it', async () => {
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => store.commit('run_a', { events: [activity(`try${i}`)], eventKeys: ['item:1'] })),
        );
        expect(results.map((r) => r.seqs)).toEqual(Array.from({ length: 20 }, () => [1]));
        expect(results.flatMap((r) => r.events)).toHaveLength(1);
        expect(await seqsOf(store, 'run_a')).toEqual([1]);
      });

      it('numbers each run separately', async () => {
        const writes: Promise<unknown>[] = [];
        for (let i = 0; i < 10; i += 1) {
          writes.push(store.commit('run_a', { events: activities(2, `a${i}-`) }));
          writes.push(store.commit('run_b', { events: activities(1, `b${i}-`) }));
        }
        await Promise.all(writes);
        const a = await store.readEvents('run_a', 0);
        const b = await store.readEvents('run_b', 0);
        expect(a.map((e) => e.seq)).toEqual(range(1, 20));
        expect(b.map((e) => e.seq)).toEqual(range(1, 10));
        expect(new Set(a.map((e) => e.run_id))).toEqual(new Set(['run_a']));
        expect(new Set(b.map((e) => e.run_id))).toEqual(new Set(['run_b']));
        expect(b.every((e) => String(messageOf(e)).startsWith('b'))).toBe(true);
        expect((await store.getRun('run_a'))?.lastSeq).toBe(20);
        expect((await store.getRun('run_b'))?.lastSeq).toBe(10);
      });

      it('leaves other runs untouched by a commit', async () => {
        await store.commit('run_b', { events: activities(1), snapshot: { b: true }, status: 'running' });
        await store.commit('run_a', { events: activities(2), snapshot: { a: true }, status: 'failed', error: 'x', closedAt: at(9) });
        expect(await store.getRun('run_b')).toMatchObject({
          snapshot: { b: true },
          status: 'running',
          error: null,
          closedAt: null,
          lastSeq: 1,
        });
      });
    });
  });
}
