import { afterEach, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../../service/store/postgres.js';
import { tempDir } from '../../helpers/engine.js';
import { usePostgres } from '../../helpers/postgres.js';
import { callApi, startService, type ServiceProcess } from '../../helpers/service-process.js';
import { wsClient, type WsClient } from '../../helpers/ws-client.js';
import { until } from '../../helpers/until.js';

const TOKEN = 'shared-admin-token-0123456789';
const LEASE_MS = 1500;

const pg = usePostgres();

interface Instance extends ServiceProcess {
  name: string;
}

async function instance(name: string, databaseUrl: string, dataDir: string): Promise<Instance> {
  const svc = await startService(dataDir, {
    DATABASE_URL: databaseUrl,
    RUNSTATE_ADMIN_TOKEN: TOKEN,
    RUNSTATE_LEASE_MS: String(LEASE_MS),
    RUNSTATE_INSTANCE_ID: name,
  });
  return { ...svc, name };
}

async function api(i: Instance, path: string, body?: unknown) {
  const res = await callApi<{ data: Record<string, unknown>; accepted?: boolean }>(i, path, { body });
  return { status: res.status, json: res.body };
}

describe('several instances on one Postgres', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('shares runs, forwards commands to the owner, and takes a killed owner’s run over with nothing lost', async () => {
    const db = await pg.createDatabase();
    cleanup.push(() => db.drop());
    const dirs = [tempDir('rs-i1-'), tempDir('rs-i2-'), tempDir('rs-i3-')];
    cleanup.push(() => dirs.forEach((d) => d.remove()));
    const [i1, i2, i3] = await Promise.all(['i1', 'i2', 'i3'].map((n, k) => instance(n, db.url, dirs[k]!.path)));
    const all = [i1!, i2!, i3!];
    cleanup.push(async () => {
      for (const i of all) i.child.kill('SIGKILL');
      await Promise.all(all.map((i) => i.exited));
    });
    const store = await PostgresStore.connect(db.url, { poolSize: 2 });
    cleanup.push(() => store.close());

    // Runs started on different instances are owned by them.
    const options = { delay_ms: 60, items_per_stage: 6, concurrency: 1, seed: 3 };
    const r1 = (await api(i1!, '/runs', { site_id: 'site-5', pipeline: 'face_processor', options })).json.data.run_id as string;
    const r2 = (await api(i2!, '/runs', { site_id: 'site-5', pipeline: 'face_processor', options: { ...options, delay_ms: 5 } })).json.data.run_id as string;
    expect((await store.getRun(r1))!.owner).toBe('i1');
    expect((await store.getRun(r2))!.owner).toBe('i2');

    // A socket on i3 follows r1, which i1 runs.
    const ws: WsClient = await wsClient(`${i3!.base.replace('http', 'ws')}/ws?token=${TOKEN}`);
    cleanup.push(() => ws.close());
    ws.send({ type: 'subscribe', topic: `run:${r1}`, after_seq: 0 });
    // Another on i3 watches r2, which i2 runs, in view mode, and every site's runs.
    const screen: WsClient = await wsClient(`${i3!.base.replace('http', 'ws')}/ws?token=${TOKEN}`);
    cleanup.push(() => screen.close());
    screen.send({ type: 'subscribe', topic: `run:${r2}`, mode: 'view', max_hz: 20 });
    screen.send({ type: 'subscribe', topic: 'site:*' });
    await ws.until((m) => m.some((x) => x.event?.event === 'stage_item_processed'));
    // Every instance lists every run.
    const listed = (await api(i3!, '/runs?site_id=site-5')).json.data as unknown as { run_id: string }[];
    expect(listed.map((r) => r.run_id).sort()).toEqual([r1, r2].sort());

    // A pause sent to an instance that does not own the run pauses it.
    const pause = await api(i2!, `/runs/${r1}/pause`, { reason: 'from i2' });
    expect(pause.status).toBe(200);
    expect(pause.json.accepted).toBe(true);
    await until('r1 paused', async () => (await api(i3!, `/runs/${r1}`)).json.data.status === 'paused');
    const command = (await store.readEvents(r1, 0)).find((e) => e.event === 'command');
    expect(command).toMatchObject({ command: 'pause', by: 'admin', reason: 'from i2' });
    const refused = await api(i3!, `/runs/${r1}/retry`, {});
    expect(refused.status).toBe(409);
    expect((await api(i3!, `/runs/${r1}/resume`, {})).json.accepted).toBe(true);

    // Kill the owner mid-run: another instance takes the run over within the lease, and the
    // killed one, back again, leaves it where it is.
    await until('r1 in stage 2', async () => ((await api(i2!, `/runs/${r1}`)).json.data.current_stage as number) >= 2);
    const killedAt = Date.now();
    i1!.child.kill('SIGKILL');
    await i1!.exited;
    const taker = await until('r1 taken over', async () => {
      const owner = (await store.getRun(r1))!.owner;
      return owner !== 'i1' && owner !== null ? owner : undefined;
    });
    expect(['i2', 'i3']).toContain(taker);
    expect(Date.now() - killedAt).toBeLessThan(LEASE_MS * 4);
    const back = await instance('i1', db.url, dirs[0]!.path);
    all[0] = back;
    await until('r1 completed', async () => (await api(back, `/runs/${r1}`)).json.data.status === 'completed', 60_000);
    expect((await store.getRun(r1))!.owner).toBe(taker);
    await until('r2 completed', async () => (await api(i3!, `/runs/${r2}`)).json.data.status === 'completed', 60_000);

    for (const runId of [r1, r2]) {
      const ledger = await store.ledger(runId);
      const keys = ledger.map((l) => `${l.stage}:${String(l.itemId)}`);
      expect(keys).toHaveLength(30);
      expect(new Set(keys).size).toBe(30);
      const events = await store.readEvents(runId, 0);
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      expect(events.filter((e) => e.event === 'stage_item_processed')).toHaveLength(30);
    }
    // The screen on i3 ends on r2's view as i3's API answers it, and saw both runs on site:*.
    const last2 = (await store.getRun(r2))!.lastSeq;
    await screen.until((m) => m.some((x) => x.type === 'view' && x.seq === last2));
    const view = screen.messages.findLast((x) => x.type === 'view')!;
    expect(view.run).toEqual((await api(i3!, `/runs/${r2}`)).json.data);
    await screen.until((m) => [r1, r2].every((r) => m.some((x) => x.topic === 'site:*' && x.type === 'run' && x.run!.run_id === r && x.run!.status === 'completed')));

    // The socket on i3 saw every event of r1, in order, whoever ran it.
    const last = (await store.getRun(r1))!.lastSeq;
    await ws.until((m) => m.at(-1)?.seq === last);
    expect(ws.events(`run:${r1}`).map((m) => m.seq)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
  });
});
