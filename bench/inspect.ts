// Inspector part: the engine part's measured run at concurrency 4 with the Stately inspector's
// observer streaming to a local relay with a viewer, against the same run with it off.
import { createInspectorServer } from '@statelyai/inspect/server';
import { WebSocket } from 'ws';
import { freePort } from '../test/helpers/net.js';
import { rateTable, ratio, report, type BenchPart, type PartReport } from './harness/report.js';
import { createInspection, measureEngine, silent } from './harness/service.js';
import { fmtInt, REPS, rounds, size } from './harness/stats.js';

async function run(): Promise<PartReport> {
  const items = size('ITEMS', 20_000, 300);
  const port = await freePort();
  const relay = createInspectorServer({ port, autoOpen: false });
  const viewer = new WebSocket(`ws://127.0.0.1:${port}`);
  await new Promise((r, j) => viewer.once('open', r).once('error', j));
  const counts = { received: 0, forwarded: 0, dropped: 0 };
  viewer.on('message', () => (counts.received += 1));
  const on = async (dir: string) => {
    const inspection = createInspection({ url: `ws://127.0.0.1:${port}`, logger: silent });
    const r = await measureEngine(dir, { items, concurrency: 4, inspect: (ev) => inspection.observe(ev) });
    counts.forwarded += inspection.forwarded;
    counts.dropped += inspection.dropped;
    inspection.stop();
    return r;
  };
  const samples = await rounds({ off: (dir) => measureEngine(dir, { items, concurrency: 4 }), 'on (relay + a viewer)': on }).finally(() => {
    viewer.terminate();
    relay.stop();
  });
  const rows = rateTable(samples, ['inspector', 'items/s'], (med) => [['vs off', (v) => ratio(med(v), med('off'))]]);
  const note = `Over all runs with it on: ${fmtInt(counts.forwarded)} inspection events forwarded, ${fmtInt(counts.dropped)} dropped
by the rate bound (2,000 a second), ${fmtInt(counts.received)} received by the viewer; ${REPS} rounds.`;
  return report(`### Engine throughput, ${fmtInt(items)} no-op items at concurrency 4`, { title: 'Inspector', rows }, note);
}

export const inspectPart: BenchPart = { key: 'inspector', title: 'Stately inspector', source: 'bench/inspect.ts', run };
