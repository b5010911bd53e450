// Three instances on one Postgres that is restarted under them: each lets its runs go before
// its leases can run out, the runs are claimed again once the database is back, and every run
// completes exactly once, never worked by two instances at a time.
import { Client } from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../../service/store/postgres.js';
import { tempDir } from '../../helpers/engine.js';
import { useControlledPostgres } from '../../helpers/pg-control.js';
import { startService, type ServiceProcess } from '../../helpers/service-process.js';
import { API, call, expectCleanLogs, expectWhole, health } from './helpers.js';
import { until } from '../../helpers/until.js';

const TOKEN = 'faults-admin-token-0123456789';
const PASSWORD = 'pw-S3cret-never-logged';
const LEASE_MS = 1500;
const DOWN_MS = 3000;
const ITEMS = [4, 4, 4, 4, 4];

const pg = useControlledPostgres();
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

interface LogLine {
  time: number;
  msg: string;
  runId?: string;
  owner?: string;
}

function logLines(svc: ServiceProcess): LogLine[] {
  return svc
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

describe('three instances on one Postgres that restarts', () => {
  it('never has two instances work one run, and completes every run exactly once', async () => {
    const name = await pg().createDatabase();
    const url = pg().url(name, PASSWORD);
    // Migrate, then keep a history of every lease change, stamped by the database's clock.
    const store = await PostgresStore.connect(url, { poolSize: 2 });
    cleanup.push(() => store.close());
    const admin = new Client({ connectionString: url });
    await admin.connect();
    cleanup.push(() => admin.end().catch(() => undefined));
    await admin.query(`
      CREATE TABLE lease_history (run_id text, owner text, lease_until timestamptz, at timestamptz NOT NULL DEFAULT clock_timestamp());
      CREATE FUNCTION log_lease() RETURNS trigger AS $$
        BEGIN INSERT INTO lease_history (run_id, owner, lease_until) VALUES (NEW.run_id, NEW.owner, NEW.lease_until); RETURN NEW; END
      $$ LANGUAGE plpgsql;
      CREATE TRIGGER lease_history AFTER INSERT OR UPDATE OF owner, lease_until ON runs FOR EACH ROW EXECUTE FUNCTION log_lease();`);
    await admin.end();

    const instances = await Promise.all(
      ['i1', 'i2', 'i3'].map(async (id) => {
        const dir = tempDir(`rs-${id}-`);
        cleanup.push(() => dir.remove());
        const svc = await startService(dir.path, { DATABASE_URL: url, RUNSTATE_ADMIN_TOKEN: TOKEN, RUNSTATE_LEASE_MS: String(LEASE_MS), RUNSTATE_INSTANCE_ID: id });
        cleanup.push(async () => {
          svc.child.kill('SIGKILL');
          await svc.exited;
        });
        return svc;
      }),
    );
    const runIds: string[] = [];
    for (let k = 0; k < 6; k++) {
      const res = await call(instances[k % 3]!, `${API}/runs`, {
        body: { site_id: 'site-5', pipeline: 'face_processor', options: { delay_ms: 150, items_per_stage: ITEMS, concurrency: 2, seed: k } },
      });
      expect(res.status).toBe(201);
      runIds.push((res.body.data as { run_id: string }).run_id);
    }
    await until('items recorded', async () => (await store.ledger(runIds[0]!)).length >= 3, 20_000);

    await pg().stop();
    await until('every instance degraded', async () => (await Promise.all(instances.map(health))).every((h) => h.status === 503), 5000);
    await new Promise((r) => setTimeout(r, DOWN_MS));
    await pg().start();
    await until('every instance healthy', async () => (await Promise.all(instances.map(health))).every((h) => h.status === 200), 10_000);

    for (const runId of runIds) {
      await until(`${runId} completed`, async () => (await store.getRun(runId))?.status === 'completed', 60_000).catch(async (err: unknown) => {
        const row = await store.getRun(runId);
        const said = instances.map((svc, i) => `i${i + 1}: ${logLines(svc).filter((l) => l.runId === runId).map((l) => `${l.time} ${l.msg}`).join(' | ')}`);
        throw new Error(`${(err as Error).message}; the run is ${row?.status} at seq ${row?.lastSeq}, owned by ${row?.owner}\n${said.join('\n')}`);
      });
      await expectWhole(store, runId, ITEMS.reduce((a, b) => a + b, 0));
    }
    for (const svc of instances) expect(svc.child.exitCode).toBeNull();

    // The lease history: a run passes to another instance only once the last lease expired or was released.
    const check = new Client({ connectionString: url });
    await check.connect();
    cleanup.push(() => check.end().catch(() => undefined));
    const history = (
      await check.query<{ run_id: string; owner: string | null; lease_until: Date | null; at: Date }>('SELECT * FROM lease_history ORDER BY at')
    ).rows;
    let handovers = 0;
    for (const runId of runIds) {
      let holder: { owner: string; until: number } | undefined;
      for (const row of history.filter((h) => h.run_id === runId)) {
        if (row.owner === null) holder = undefined;
        else if (holder === undefined || holder.owner === row.owner) holder = { owner: row.owner, until: row.lease_until!.getTime() };
        else {
          expect(row.at.getTime(), `${runId}: ${row.owner} took it from ${holder.owner} before that lease ran out`).toBeGreaterThanOrEqual(holder.until);
          handovers += 1;
          holder = { owner: row.owner, until: row.lease_until!.getTime() };
        }
      }
    }

    // The instances' own word: each let its runs go before its last lease of them ran out, and
    // none ever found out too late that another instance had one of its runs.
    const ids = ['i1', 'i2', 'i3'];
    let letGo = 0;
    instances.forEach((svc, i) => {
      const lines = logLines(svc);
      expect(lines.filter((l) => l.msg.startsWith('lease lost'))).toEqual([]);
      for (const l of lines.filter((x) => x.msg.startsWith('leases could not be renewed in time'))) {
        letGo += 1;
        const lastLease = history.filter((h) => h.run_id === l.runId && h.owner === ids[i] && h.at.getTime() <= l.time).at(-1);
        expect(lastLease, `${ids[i]} let ${l.runId} go without ever holding it`).toBeDefined();
        expect(l.time, `${ids[i]} let ${l.runId} go after its lease ran out`).toBeLessThan(lastLease!.lease_until!.getTime());
      }
      expectCleanLogs(svc.output(), PASSWORD);
    });
    console.log(`restart under three instances: ${letGo} runs let go in time, ${handovers} handovers, ${history.length} lease changes`);
    expect(letGo).toBeGreaterThan(0);
  }, 120_000);
});
