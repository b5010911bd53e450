// The service side of the ingest bench, in a process of its own: store, engine, hub and the
// ingest socket, as server.ts wires them. Prints one JSON line with what the bench needs.
import { join } from 'node:path';
import { pino } from 'pino';
import { buildApp } from '../service/app.js';
import { TokenRegistry } from '../service/auth/tokens.js';
import { Engine } from '../service/engine/engine.js';
import { Hub } from '../service/hub/hub.js';
import { IngestSocket } from '../service/ingest/socket.js';
import { Metrics } from '../service/metrics.js';
import { SqliteStore } from '../service/store/sqlite.js';

const dir = process.argv[2]!;
const runs = Number(process.argv[3] ?? 1);
const token = 'bench-admin-token-0123456789';
const logger = pino({ level: 'silent' });
const store = new SqliteStore({ filename: join(dir, 'runstate.db') });
const engine = new Engine({ store, pipelines: [] });
const tokens = new TokenRegistry([{ token, principal: { name: 'bench', admin: true, accountId: null, siteIds: null } }]);
const metrics = new Metrics(store);
const hub = new Hub({ engine, tokens, logger, registry: metrics.registry });
engine.onEvents((run, events) => hub.publish(run, events));
const app = await buildApp({ bodyLimit: 65536 }, { engine, store, tokens, metrics, logger, hub });
await app.listen({ port: 0, host: '127.0.0.1' });
const socketPath = join(dir, 'ingest.sock');
const door = new IngestSocket({ path: socketPath, engine, tokens, logger });
await door.start();
const runIds: string[] = [];
for (let i = 0; i < runs; i++) {
  runIds.push((await engine.startRun({ accountId: 'bench', siteId: 'bench', pipeline: 'external', machineName: 'face_processor', trigger: `bench-${i}` })).run_id);
}
const { port } = app.server.address() as { port: number };
process.stdout.write(`${JSON.stringify({ port, token, socketPath, runIds })}\n`);
process.on('SIGTERM', () => {
  void (async () => {
    await door.stop();
    await app.close();
    await engine.stop();
    await store.close();
    process.exit(0);
  })();
});
