// The disk under SQLite and the trace files fills mid-run (a small tmpfs), then grows: the
// process stays up, /healthz says `disk full`, the run holds or goes on, and once there is
// room it completes and run_trace.jsonl equals the log, without a restart.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../../service/store/sqlite.js';
import { TraceWriter } from '../../../service/trace/trace-writer.js';
import { startService } from '../../helpers/service-process.js';
import { API, call, expectWhole, health } from './helpers.js';
import { until } from '../../helpers/until.js';

const ITEMS = [120, 120, 120];
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** Writes zeros into `path` until the file system has no room left; returns the bytes written. */
function fill(path: string): number {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024);
  let written = 0;
  try {
    for (;;) written += writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
  return written;
}

describe('the disk fills mid-run', () => {
  it('holds, says disk full, and catches up by itself once there is room', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rs-tmpfs-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', dir]);
    cleanup.push(() => {
      execFileSync('umount', ['-l', dir]);
      rmSync(dir, { recursive: true, force: true });
    });
    const svc = await startService(dir, { RUNSTATE_ADMIN_TOKEN: 'faults-admin-token-0123456789' });
    cleanup.push(async () => {
      svc.child.kill('SIGKILL');
      await svc.exited;
    });
    let exited = false;
    void svc.exited.then(() => (exited = true));

    const started = await call(svc, `${API}/runs`, {
      body: { site_id: 'site-5', pipeline: 'face_processor', options: { delay_ms: 10, items_per_stage: [...ITEMS, 0, 0], concurrency: 2, seed: 1 } },
    });
    expect(started.status).toBe(201);
    const runId = (started.body.data as { run_id: string }).run_id;
    const processed = async () => ((await call(svc, `${API}/runs/${runId}`)).body.data as { stages: { processed_items: number }[] }).stages.reduce((n, s) => n + s.processed_items, 0);
    await until('items processed', async () => (await processed()) >= 40, 20_000);

    const filler = join(dir, 'filler');
    const filledAt = performance.now();
    fill(filler);
    const full = await until('/healthz says disk full', async () => {
      const h = await health(svc);
      return h.status === 503 && h.body.reason === 'disk full' ? h : undefined;
    }, 10_000);
    const toDegraded = performance.now() - filledAt;
    expect(full.body.status).toBe('degraded');
    // Held, not lost: a while on a full disk, and the process is still there.
    const metrics = await (await fetch(`${svc.base}/metrics`)).text();
    expect(metrics).toMatch(/runstate_degraded 1/);
    await new Promise((r) => setTimeout(r, 1500));
    expect(exited).toBe(false);

    const grownAt = performance.now();
    execFileSync('mount', ['-o', 'remount,size=64m', dir]);
    await until('/healthz 200', async () => (await health(svc)).status === 200, 15_000);
    const toHealthy = performance.now() - grownAt;
    unlinkSync(filler);
    // Completed in the log, not only in memory (the API shows a hosted run as it stands).
    const store = new SqliteStore({ filename: join(dir, 'runstate.db') });
    cleanup.push(() => store.close());
    await until('run completed', async () => (await store.getRun(runId))?.status === 'completed', 60_000);
    const last = await expectWhole(store, runId, ITEMS.reduce((a, b) => a + b, 0));
    // The trace file catches up by itself: poll it, no restart.
    const tracePath = join(TraceWriter.runDir(dir, (await store.getRun(runId))!), 'run_trace.jsonl');
    const expected = (await store.readEvents(runId, 0)).map((e) => JSON.stringify(e)).join('\n') + '\n';
    await until('run_trace.jsonl equals the log', () => readFileSync(tracePath, 'utf8') === expected, 15_000);
    expect(readFileSync(tracePath, 'utf8').split('\n').length - 1).toBe(last);
    await until('no trace lag', async () => /runstate_trace_lag_events 0/.test(await (await fetch(`${svc.base}/metrics`)).text()), 5000);
    expect(exited).toBe(false);
    if (process.env.SHOW_LOGS) console.log(svc.output());
    expect(svc.output()).toMatch(/degraded: disk full/);
    expect(svc.output()).not.toMatch(/"client":\{|connectionParameters/);
    console.log(`disk full: 503 "disk full" after ${Math.round(toDegraded)} ms, 200 ${Math.round(toHealthy)} ms after it grew, ${last} events traced`);
  }, 120_000);
});
