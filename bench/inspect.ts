// Inspector part. Method: the engine part's measured run at concurrency 4, with the Stately
// inspector's observer streaming to a local relay with a viewer. Baseline: the same run with it
// off, interleaved in the same rounds. Full method: docs/benchmarks.md.
import { createInspectorServer } from '@statelyai/inspect/server';
import { WebSocket } from 'ws';
import { freePort } from '../test/helpers/net.js';
import { ratio, report, type BenchPart, type Table } from './harness/report.js';
import { createInspection, measureEngine, silent } from './harness/service.js';
import { fmtInt, inTempDir, interleaved, median, progress, REPS, size } from './harness/stats.js';

export const inspectPart: BenchPart = {
  key: 'inspector',
  title: 'Stately inspector',
  source: 'bench/inspect.ts',
  async run() {
    const items = size('ITEMS', 20_000, 300);
    const port = await freePort();
    const relay = createInspectorServer({ port, autoOpen: false });
    const viewer = new WebSocket(`ws://127.0.0.1:${port}`);
    await new Promise((r, j) => viewer.once('open', r).once('error', j));
    let received = 0;
    viewer.on('message', () => (received += 1));
    let forwarded = 0;
    let dropped = 0;
    let samples: Record<'off' | 'on', number[]>;
    try {
      samples = await interleaved(['off', 'on'] as const, REPS, async (mode, tag) => {
        const inspection = mode === 'on' ? createInspection({ url: `ws://127.0.0.1:${port}`, logger: silent }) : null;
        const r = await inTempDir((dir) => measureEngine(dir, { items, concurrency: 4, inspect: inspection ? (ev) => inspection.observe(ev) : undefined }));
        if (inspection) {
          forwarded += inspection.forwarded;
          dropped += inspection.dropped;
          inspection.stop();
        }
        progress(`${tag} inspector ${mode}: ${fmtInt(r.itemsPerSec)} items/s`);
        return r.itemsPerSec;
      });
    } finally {
      viewer.terminate();
      relay.stop();
    }
    const [off, on] = [median(samples.off), median(samples.on)];
    const table: Table = [
      ['inspector', 'items/s (median)', 'vs off'],
      ['off', fmtInt(off), '1.00'],
      ['on (relay + a viewer)', fmtInt(on), ratio(on, off)],
    ];
    const note = `Over all runs with it on: ${fmtInt(forwarded)} inspection events forwarded, ${fmtInt(dropped)} dropped
by the rate bound (2,000 a second), ${fmtInt(received)} received by the viewer; ${REPS} rounds.`;
    return report(`### Engine throughput, ${fmtInt(items)} no-op items at concurrency 4`, { title: 'Inspector', rows: table }, note);
  },
};
