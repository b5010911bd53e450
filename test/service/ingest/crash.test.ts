import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IngestClient } from '../../../service/ingest/client.js';
import { SqliteStore } from '../../../service/store/sqlite.js';
import { fieldOf, tempDir } from '../../helpers/engine.js';
import { startService } from '../../helpers/service-process.js';

const service = (dataDir: string, socketPath: string) => startService(dataDir, { RUNSTATE_INGEST_SOCKET: socketPath });

describe('ingest across a crash of the service', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('ends with a complete, gap-free log after kill -9 mid-stream and the engine resending', async () => {
    const dir = tempDir('rs-icrash-');
    cleanup.push(() => dir.remove());
    const socketPath = join(dir.path, 'in.sock');
    let svc = await service(dir.path, socketPath);
    cleanup.push(() => svc.child.kill('SIGKILL'));
    const res = await fetch(`${svc.base}/api/v1/automation/runs`, {
      method: 'POST',
      headers: { authorization: `Token ${svc.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ site_id: 'site-5', pipeline: 'external', machine_name: 'face_processor' }),
    });
    const runId = ((await res.json()) as { data: { run_id: string } }).data.run_id;

    const client = new IngestClient({ socketPath, minReconnectMs: 50, maxReconnectMs: 200, maxInFlight: 500 });
    cleanup.push(() => client.close());
    const total = 3000;
    let acked = 0;
    let killed: Promise<void> | null = null;
    const sends = Array.from({ length: total }, (_, i) =>
      client
        .send({ run_id: runId, event_id: `e-${i}`, machine_name: 'face_processor', event_type: 'item_processed', payload: { processed: i + 1, total, item: { id: i, title: `image ${i}` } } })
        .then((seq) => {
          acked += 1;
          // Mid-stream: a third acknowledged, the rest in flight or not yet sent.
          if (acked === 1000 && !killed) {
            killed = (async () => {
              svc.child.kill('SIGKILL');
              await new Promise((r) => svc.child.once('exit', r));
              svc = await service(dir.path, socketPath);
            })();
          }
          return seq;
        }),
    );
    const seqs = await Promise.all(sends);
    await killed;
    expect(seqs).toEqual(seqs.map((_, i) => i + 2));

    svc.child.kill('SIGTERM');
    await new Promise((r) => svc.child.once('exit', r));
    const store = new SqliteStore({ filename: join(dir.path, 'runstate.db') });
    cleanup.push(() => store.close());
    const log = await store.readEvents(runId, 0, 10_000);
    expect(log.map((e) => e.seq)).toEqual(Array.from({ length: total + 1 }, (_, i) => i + 1));
    expect(log.slice(1).map((e) => fieldOf(e, 'event_id'))).toEqual(Array.from({ length: total }, (_, i) => `e-${i}`));
  });
});
