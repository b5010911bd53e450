// `npm run bench`, inspector part: engine items/s with the Stately inspector off and on (a
// local relay with a viewer connected), measured in the same run.
import { createInspectorServer } from '@statelyai/inspect/server';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { createInspection } from '../service/inspect.js';
import { freePort } from '../test/helpers/net.js';
import { measureEngine } from './engine-run.js';
import type { BenchPart, PartReport } from './part.js';
import { envInt, fmtInt, inTempDir, median } from './stats.js';
import { markdownTable, type Table } from './table.js';

const REPETITIONS = 3;


async function run(): Promise<PartReport> {
  const items = envInt('BENCH_ITEMS', 20_000);
  const port = await freePort();
  const relay = createInspectorServer({ port, autoOpen: false });
  const viewer = new WebSocket(`ws://127.0.0.1:${port}`);
  await new Promise((r, j) => viewer.once('open', r).once('error', j));
  let received = 0;
  viewer.on('message', () => (received += 1));
  const samples: Record<string, number[]> = { off: [], on: [] };
  let forwarded = 0;
  let dropped = 0;
  try {
    for (let rep = 0; rep <= REPETITIONS; rep++) {
      for (const mode of rep % 2 ? ['off', 'on'] : ['on', 'off']) {
        const inspection = mode === 'on' ? createInspection({ url: `ws://127.0.0.1:${port}`, logger: pino({ level: 'silent' }) }) : null;
        const r = await inTempDir((dir) => measureEngine(dir, { items, concurrency: 4, trace: false, inspect: inspection ? (ev) => inspection.observe(ev) : undefined }));
        if (inspection) {
          forwarded += inspection.forwarded;
          dropped += inspection.dropped;
          inspection.stop();
        }
        if (rep > 0) samples[mode]!.push(r.itemsPerSec);
      }
      process.stderr.write(`  inspector rep ${rep}/${REPETITIONS}\n`);
    }
  } finally {
    viewer.terminate();
    relay.stop();
  }
  const off = median(samples.off!);
  const on = median(samples.on!);
  const table: Table = [
    ['inspector', 'items/s (median)', 'vs off'],
    ['off', fmtInt(off), '1.00'],
    ['on (relay + a viewer)', fmtInt(on), (on / off).toFixed(2)],
  ];
  const markdown = `### Engine throughput, ${fmtInt(items)} no-op items at concurrency 4

${markdownTable(table)}

Over all runs with it on: ${fmtInt(forwarded)} inspection events forwarded, ${fmtInt(dropped)} dropped
by the rate bound (2,000 a second), ${fmtInt(received)} received by the viewer.

### Method

The engine part's no-op pipeline (bench/engine-run.ts), with \`RUNSTATE_INSPECT\`'s observer
(service/inspect.ts) on or off; on, it streams to the relay of \`npm run inspect\`
(\`@statelyai/inspect/server\`, on loopback) with one viewer connected. Only run and stage
actors are forwarded, at most 2,000 events a second; what passes the bound is dropped, not
queued, which is why the cost stays small at high event rates. ${REPETITIONS} repetitions after a
warm-up, alternating order; medians.
`;
  return { tables: [{ title: 'Inspector', rows: table }], markdown };
}

export const inspectPart: BenchPart = { key: 'inspector', title: 'Stately inspector', source: 'bench/inspect.ts', run };
