import { describe, expect, it } from 'vitest';
import { holdsLease, keysToLookUp, planAsExpected, planCommit, type CommitInput, type RunAtCommit } from '../../../service/store/commit-plan.js';
import { LedgerConflictError, LeaseLostError, SeqConflictError, StoreNotFoundError, type CommitBatch } from '../../../service/store/store.js';
import { activities, activity, at, done, messageOf, untyped } from './contract.js';

const NOW_MS = Date.UTC(2025, 11, 4, 19, 0, 0);
const idle: RunAtCommit = { lastSeq: 0, owner: null, leaseUntilMs: null };

function plan(batch: CommitBatch, over: Partial<CommitInput> = {}) {
  return planCommit({ runId: 'run_a', batch, run: idle, seen: new Map(), nowMs: NOW_MS, now: at(9), ...over });
}

describe('keysToLookUp', () => {
  it('names each key of the batch once and skips events without one', () => {
    expect(keysToLookUp({ events: activities(5), eventKeys: ['k1', null, 'k2', 'k1', null] })).toEqual(['k1', 'k2']);
  });

  it('ignores keys past the last event and batches without keys', () => {
    expect(keysToLookUp({ events: activities(1), eventKeys: ['k1', 'k2'] })).toEqual(['k1']);
    expect(keysToLookUp({ events: activities(3) })).toEqual([]);
  });
});

describe('planCommit', () => {
  it('gives the appended events the seqs after the run’s last seq, in batch order', () => {
    const p = plan({ events: activities(3) }, { run: { ...idle, lastSeq: 41 } });
    expect(p.result.seqs).toEqual([42, 43, 44]);
    expect(p.events.map((e) => [e.seq, e.key])).toEqual([
      [42, null],
      [43, null],
      [44, null],
    ]);
    expect(p.run.lastSeq).toBe(44);
  });

  it('assigns run_id and seq itself, whatever the event carried, and stores the body as returned', () => {
    const p = plan({ events: [untyped({ event: 'activity_log', timestamp: at(1), run_id: 'forged', seq: 99, message: 'hi' })] });
    const stored = { event: 'activity_log', run_id: 'run_a', seq: 1, timestamp: at(1), message: 'hi' };
    expect(p.result.events).toEqual([stored]);
    expect(p.events[0]!.body).toBe(JSON.stringify(stored));
    expect(p.events[0]!.body.startsWith('{"event":"activity_log","run_id":"run_a","seq":1,')).toBe(true);
  });

  it('does not append a key seen before and returns the seq it was first appended with', () => {
    const p = plan(
      { events: [activity('x'), activity('y'), activity('z')], eventKeys: ['k2', 'k3', null] },
      { run: { ...idle, lastSeq: 5 }, seen: new Map([['k2', 2]]) },
    );
    expect(p.result.seqs).toEqual([2, 6, 7]);
    expect(p.result.events.map((e) => messageOf(e))).toEqual(['y', 'z']);
    expect(p.events.map((e) => e.key)).toEqual(['k3', null]);
    expect(p.run.lastSeq).toBe(7);
  });

  it('appends a key repeated inside the batch once', () => {
    const p = plan({ events: [activity('a'), activity('b'), activity('c'), activity('d')], eventKeys: ['k', 'k', null, 'k'] });
    expect(p.result.seqs).toEqual([1, 1, 2, 1]);
    expect(p.result.events.map((e) => [e.seq, messageOf(e)])).toEqual([
      [1, 'a'],
      [2, 'c'],
    ]);
  });

  it('appends nothing and keeps last seq when every event is a repeat', () => {
    const p = plan({ events: activities(2), eventKeys: ['k1', 'k1'] }, { run: { ...idle, lastSeq: 3 }, seen: new Map([['k1', 1]]) });
    expect(p.events).toEqual([]);
    expect(p.result).toEqual({ events: [], seqs: [1, 1] });
    expect(p.run.lastSeq).toBe(3);
  });

  it('plans the run row: given fields are written, left-out ones kept, error only when given', () => {
    const snapshot = { value: 'running', context: { n: 1 } };
    expect(plan({ events: [], snapshot, status: 'failed', error: 'boom', closedAt: at(7) }).run).toEqual({
      lastSeq: 0,
      snapshot: JSON.stringify(snapshot),
      status: 'failed',
      setError: true,
      error: 'boom',
      closedAt: at(7),
      updatedAt: at(9),
    });
    expect(plan({ events: [] }).run).toEqual({
      lastSeq: 0,
      snapshot: null,
      status: null,
      setError: false,
      error: null,
      closedAt: null,
      updatedAt: at(9),
    });
    expect(plan({ events: [], error: null }).run).toMatchObject({ setError: true, error: null });
  });

  it('plans ledger rows with the id as text for the unique key and as JSON for its type', () => {
    const entries = [done(1, 7), done(1, '8'), done(2, 'x', { status: 'failed', attempts: 3, cost: 0.5, error: 'timeout' }), done(2, 'y', { attempts: 4, retried: true })];
    const p = plan({ events: [], ledger: entries });
    expect(p.ledger.map(({ entry: _entry, ...row }) => row)).toEqual([
      { stage: 1, itemId: '7', item: '7', status: 'done', attempts: 1, cost: 0, error: null, retried: false },
      { stage: 1, itemId: '8', item: '"8"', status: 'done', attempts: 1, cost: 0, error: null, retried: false },
      { stage: 2, itemId: 'x', item: '"x"', status: 'failed', attempts: 3, cost: 0.5, error: 'timeout', retried: false },
      // A retried item replaces its failed row (retry_failed) rather than inserting one.
      { stage: 2, itemId: 'y', item: '"y"', status: 'done', attempts: 4, cost: 0, error: null, retried: true },
    ]);
    expect(p.ledger.map((l) => l.entry)).toEqual(entries);
  });

  it('throws StoreNotFoundError for an unknown run, before any other check', () => {
    expect(() => plan({ events: activities(1), owner: 'a', ledger: [done(1, 1), done(1, 1)] }, { run: undefined })).toThrow(
      StoreNotFoundError,
    );
  });

  it('throws LeaseLostError unless the writer holds an unexpired lease', () => {
    const held: RunAtCommit = { lastSeq: 0, owner: 'a', leaseUntilMs: NOW_MS + 1 };
    expect(plan({ events: activities(1), owner: 'a' }, { run: held }).result.seqs).toEqual([1]);
    expect(() => plan({ events: activities(1), owner: 'b' }, { run: held })).toThrow(LeaseLostError);
    expect(() => plan({ events: [], owner: 'a' }, { run: { ...held, leaseUntilMs: NOW_MS } })).toThrow(LeaseLostError);
    expect(() => plan({ events: [], owner: 'a' }, { run: { ...held, leaseUntilMs: null } })).toThrow(LeaseLostError);
    expect(() => plan({ events: [], owner: 'a' }, { run: idle })).toThrow(LeaseLostError);
    // A batch that names no owner is not fenced (a store one instance uses, tools).
    expect(plan({ events: activities(1) }, { run: { ...held, owner: 'b' } }).result.seqs).toEqual([1]);
  });

  it('throws SeqConflictError, with the run’s last seq, when expectLastSeq is not it (compare-and-set)', () => {
    const at7: RunAtCommit = { ...idle, lastSeq: 7 };
    expect(plan({ events: activities(2), expectLastSeq: 7 }, { run: at7 }).result.seqs).toEqual([8, 9]);
    let thrown: unknown;
    try {
      plan({ events: activities(1), expectLastSeq: 5 }, { run: at7 });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(SeqConflictError);
    expect((thrown as SeqConflictError).lastSeq).toBe(7);
    // A lost lease is the answer before a seq that moved: the writer is not the run's anymore.
    expect(() => plan({ events: [], owner: 'a', expectLastSeq: 5 }, { run: at7 })).toThrow(LeaseLostError);
  });

  it('checks the lease before the ledger', () => {
    expect(() => plan({ events: [], owner: 'b', ledger: [done(1, 1), done(1, 1)] })).toThrow(LeaseLostError);
  });

  it('throws LedgerConflictError for an item repeated in the batch, naming it', () => {
    const attempt = () => plan({ events: activities(1), ledger: [done(3, 'x'), done(2, 'x'), done(3, 'x')] });
    expect(attempt).toThrow(LedgerConflictError);
    expect(attempt).toThrow('item x of stage 3 is already recorded for run run_a');
    // The same id with another type is the same item: the unique key is the id as text.
    expect(() => plan({ events: [], ledger: [done(1, 5), done(1, '5')] })).toThrow(LedgerConflictError);
  });
});

describe('planAsExpected', () => {
  const journalBatch: CommitBatch = {
    events: [untyped({ event: 'stage_complete', timestamp: at(2), stage: 1 }), ...activities(2)],
    ledger: [done(1, 7), done(1, 'x', { status: 'failed', attempts: 3, error: 'timeout' })],
    snapshot: { value: 'running' },
    status: 'running',
    error: null,
    owner: 'a',
    expectLastSeq: 41,
  };

  it('plans what planCommit plans on a run at the expected seq, leased to the owner, and names what it expects', () => {
    const leased: RunAtCommit = { lastSeq: 41, owner: 'a', leaseUntilMs: NOW_MS + 1 };
    const p = planAsExpected('run_a', journalBatch, at(9));
    const { expected, ...planned } = p!;
    expect(planned).toEqual(plan(journalBatch, { run: leased }));
    expect(expected).toEqual({ lastSeq: 41, owner: 'a' });
    expect(planned.result.seqs).toEqual([42, 43, 44]);
  });

  it('plans nothing for a batch that is not fenced and compared, or that needs more than the run row', () => {
    const { owner: _owner, ...unfenced } = journalBatch;
    const { expectLastSeq: _expected, ...unchecked } = journalBatch;
    expect(planAsExpected('run_a', unfenced, at(9))).toBeUndefined();
    expect(planAsExpected('run_a', unchecked, at(9))).toBeUndefined();
    // Keys seen before are read under the lock; a retried item needs its failed row there.
    expect(planAsExpected('run_a', { ...journalBatch, eventKeys: [null, 'k', null] }, at(9))).toBeUndefined();
    expect(planAsExpected('run_a', { ...journalBatch, ledger: [done(1, 7, { retried: true })] }, at(9))).toBeUndefined();
    // Keys all null look nothing up.
    expect(planAsExpected('run_a', { ...journalBatch, eventKeys: [null, null, null] }, at(9))).toBeDefined();
  });

  it('plans nothing, rather than throwing, for an item repeated in the batch: which error comes first depends on the run', () => {
    expect(planAsExpected('run_a', { ...journalBatch, ledger: [done(1, 7), done(1, '7')] }, at(9))).toBeUndefined();
  });
});

describe('holdsLease', () => {
  it('holds for the owner until the instant the lease ends', () => {
    const run: RunAtCommit = { lastSeq: 0, owner: 'a', leaseUntilMs: 1000 };
    expect(holdsLease(run, 'a', 999)).toBe(true);
    expect(holdsLease(run, 'a', 1000)).toBe(false);
    expect(holdsLease(run, 'b', 0)).toBe(false);
  });
});
