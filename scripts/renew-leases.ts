// How long `renewLeases` takes at many leased runs with realistic snapshots, and the longest
// stretch it holds the event loop (docs/operations.md, "ownership"). Not a benchmark: a probe to
// run by hand, `npx tsx scripts/renew-leases.ts [runs] [snapshotBytes]`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { SqliteStore } from '../service/store/sqlite.js';

const runs = Number(process.argv[2] ?? 10_000);
const snapshotBytes = Number(process.argv[3] ?? 3_000);
const rounds = 5;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'runstate-renew-'));
const store = new SqliteStore({ filename: path.join(dir, 'runstate.db') });
const pad = 'x'.repeat(snapshotBytes);
for (let i = 0; i < runs; i += 1) {
  const runId = `run_${String(i).padStart(6, '0')}`;
  await store.createRun({
    runId, accountId: 'acct_1', siteId: 'site_1', pipeline: 'content', trigger: 'manual',
    options: { stages: [1, 2, 3] }, createdAt: new Date().toISOString(), lease: { owner: 'a', ms: 600_000 },
  });
  await store.commit(runId, { events: [], status: 'running', snapshot: { value: 'running', context: { stage: 1, pad } }, owner: 'a' });
}

/** Times one call, with the longest gap between two turns of the event loop while it ran. */
async function timed(): Promise<{ ms: number; blockMs: number; held: number }> {
  let longest = 0;
  let last = performance.now();
  let done = false;
  const tick = (): void => {
    const t = performance.now();
    longest = Math.max(longest, t - last);
    last = t;
    if (!done) setImmediate(tick);
  };
  setImmediate(tick);
  const start = performance.now();
  const held = await store.renewLeases('a', 600_000);
  const ms = performance.now() - start;
  done = true;
  longest = Math.max(longest, performance.now() - last);
  return { ms, blockMs: longest, held: held.length };
}

for (let r = 0; r < rounds; r += 1) {
  const { ms, blockMs, held } = await timed();
  console.log(`round ${r + 1}: ${held} held, ${ms.toFixed(1)} ms total, longest block ${blockMs.toFixed(1)} ms`);
}
await store.close();
fs.rmSync(dir, { recursive: true, force: true });
