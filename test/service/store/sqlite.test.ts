import Database from 'better-sqlite3';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MIGRATIONS, SqliteStore } from '../../../service/store/sqlite.js';
import { LeaseLostError } from '../../../service/store/store.js';
import { activities, at, done, newRun, type OpenStore } from './contract.js';
import { ownershipContract } from './ownership.contract.js';
import { runStoreContract } from './run-store.contract.js';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'runstate-sqlite-'));
}

const openSqlite: OpenStore = async () => {
  const dir = tempDir();
  const store = new SqliteStore({ filename: path.join(dir, 'runstate.db') });
  return {
    store,
    async cleanup() {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
};

runStoreContract('sqlite', openSqlite);
ownershipContract('sqlite', openSqlite);

describe('SqliteStore', () => {
  let dir: string;
  let filename: string;
  const opened: SqliteStore[] = [];

  function open(): SqliteStore {
    const store = new SqliteStore({ filename });
    opened.push(store);
    return store;
  }

  beforeEach(() => {
    dir = tempDir();
    filename = path.join(dir, 'data', 'runstate.db');
  });

  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('renews 10,000 leases in one call, yielding between chunks, and counts a run leased meanwhile as held', async () => {
    const store = open();
    const ids = Array.from({ length: 10_000 }, (_, i) => `run_${String(i).padStart(5, '0')}`);
    for (const id of ids) await store.createRun(newRun(id, { lease: { owner: 'a', ms: 60_000 } }));
    const renewing = store.renewLeases('a', 60_000);
    // Between two chunks a start leases one more run here (were the renewal one statement, it would
    // be over by now and not name it): its lease reaches past this renewal's, so it counts as held.
    await new Promise((resolve) => setImmediate(resolve));
    await store.createRun(newRun('run_0000x', { lease: { owner: 'a', ms: 120_000 } }));
    const renewed = await renewing;
    expect(renewed.length).toBe(10_001);
    expect(new Set(renewed)).toEqual(new Set([...ids, 'run_0000x']));
  });

  function leaseRows(store: SqliteStore): string[] {
    return store.connection
      .prepare<[], { run_id: string }>('SELECT run_id FROM run_leases ORDER BY run_id')
      .all()
      .map((r) => r.run_id);
  }

  it('keeps no lease row of a released run, a run deleted, or a finished run whose lease ran out', async () => {
    const store = open();
    for (const id of ['run_1', 'run_2', 'run_3', 'run_4']) await store.createRun(newRun(id, { lease: { owner: 'a', ms: 60_000 } }));
    await store.createRun(newRun('run_5', { lease: { owner: 'a', ms: 1 } }));
    await store.commit('run_5', { events: [], status: 'completed' });
    await store.releaseLeases('a', ['run_1']);
    store.connection.prepare('DELETE FROM runs WHERE run_id = ?').run('run_2');
    await expect.poll(() => Date.now() > (store.connection.prepare<[], { u: number }>("SELECT lease_until AS u FROM run_leases WHERE run_id = 'run_5'").get()?.u ?? 0)).toBe(true);
    expect(await store.renewLeases('a', 60_000)).toEqual(expect.arrayContaining(['run_3', 'run_4']));
    expect(leaseRows(store)).toEqual(['run_3', 'run_4']);
    expect((await store.getRun('run_5'))?.owner).toBeNull();
    await store.releaseLeases('a');
    expect(leaseRows(store)).toEqual([]);
  });

  it('migrates a database of the previous schema: leases move to their own table and keep holding', async () => {
    // The file as the schema before the lease table left it: leases in the runs row.
    fs.mkdirSync(path.dirname(filename), { recursive: true });
    const raw = new Database(filename);
    raw.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)');
    const before = MIGRATIONS.findIndex((sql) => sql.includes('CREATE TABLE run_leases'));
    expect(before).toBeGreaterThan(0);
    MIGRATIONS.slice(0, before).forEach((sql, i) => {
      raw.exec(sql);
      raw.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(i + 1, at(0));
    });
    const insert = raw.prepare(
      `INSERT INTO runs (run_id, account_id, site_id, pipeline, trigger, options, status, created_at, updated_at, owner, lease_until)
       VALUES (?, 'acct_1', 'site_1', 'content', 'manual', '{}', ?, ?, ?, ?, ?)`,
    );
    const until = Date.now() + 60_000;
    insert.run('run_held', 'running', at(1), at(1), 'a', until);
    insert.run('run_free', 'running', at(2), at(2), null, null);
    insert.run('run_done', 'completed', at(3), at(3), 'a', until);
    raw.close();

    const store = open();
    expect(store.connection.prepare<[], { name: string }>('SELECT name FROM pragma_table_info(\'runs\')').all().map((c) => c.name)).not.toContain('owner');
    expect((await store.getRun('run_held'))?.owner).toBe('a');
    expect((await store.getRun('run_done'))?.owner).toBeNull();
    await expect(store.commit('run_held', { events: activities(1), owner: 'b' })).rejects.toBeInstanceOf(LeaseLostError);
    await store.commit('run_held', { events: activities(1), owner: 'a' });
    expect(await store.renewLeases('a', 60_000)).toEqual(['run_held']);
    expect((await store.claimRuns('b', 60_000, 10)).map((r) => [r.runId, r.owner])).toEqual([['run_free', 'b']]);
  });

  it('creates the directory of its database file', () => {
    open();
    expect(fs.existsSync(filename)).toBe(true);
  });

  it('keeps runs, events, ledger, stage items and snapshot across a reopen', async () => {
    const first = open();
    await first.createRun(newRun('run_a', { createdAt: at(1) }));
    await first.createRun(newRun('run_b', { createdAt: at(2) }));
    await first.saveStageItems('run_a', 1, [{ id: 1, title: 'One' }, { id: 'x', title: 'X' }]);
    await first.commit('run_a', {
      events: activities(3),
      eventKeys: ['k1', null, null],
      snapshot: { value: 'running', context: { stage: 1 } },
      status: 'running',
      ledger: [done(1, 1), done(1, 'x', { status: 'failed', attempts: 3, error: 'timeout' })],
    });
    await first.markTraced('run_a', 3);
    await first.commit('run_b', { events: activities(1), status: 'completed', closedAt: at(9) });
    const eventsBefore = await first.readEvents('run_a', 0);
    const runBefore = await first.getRun('run_a');
    await first.close();

    const second = open();
    expect(await second.getRun('run_a')).toEqual(runBefore);
    expect(runBefore).toMatchObject({ status: 'running', lastSeq: 3, snapshot: { value: 'running', context: { stage: 1 } } });
    expect(await second.readEvents('run_a', 0)).toEqual(eventsBefore);
    expect(await second.ledger('run_a')).toEqual([
      done(1, 1),
      done(1, 'x', { status: 'failed', attempts: 3, error: 'timeout' }),
    ]);
    expect(await second.getStageItems('run_a', 1)).toEqual([{ id: 1, title: 'One' }, { id: 'x', title: 'X' }]);
    expect((await second.listUntraced()).map((r) => r.runId)).toEqual(['run_b']);
    expect((await second.listRuns({ open: true })).map((r) => r.runId)).toEqual(['run_a']);

    // Seqs and event keys carry on from the file, not from a fresh counter.
    const res = await second.commit('run_a', { events: activities(2, 'after'), eventKeys: ['k1', 'k2'] });
    expect(res.seqs).toEqual([1, 4]);
  });

  it('migrates a database of the previous schema: runs with a machine name (external) are not hosted', async () => {
    const first = open();
    await first.createRun(newRun('run_internal', { createdAt: at(1) }));
    await first.createRun(newRun('run_external', { pipeline: 'external', machineName: 'face-processor', createdAt: at(2) }));
    await first.close();
    // Back to schema 2: no `hosted` column, migration 3 not applied.
    const raw = new Database(filename);
    raw.exec('ALTER TABLE runs DROP COLUMN hosted; DELETE FROM schema_migrations WHERE version = 3;');
    raw.close();

    const second = open();
    expect((await second.listRuns({})).map((r) => [r.runId, r.hosted])).toEqual([
      ['run_external', false],
      ['run_internal', true],
    ]);
    expect((await second.claimRuns('a', 60_000, 10, { all: true })).map((r) => r.runId)).toEqual(['run_internal']);
  });

  it('runs in WAL mode', async () => {
    const store = open();
    await store.createRun(newRun('run_a'));
    const other = new Database(filename, { readonly: true });
    try {
      expect(other.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      other.close();
    }
  });
});
