// The service part's memory figure: `runs` runs of face_processor working at once (an item of 30 s in
// flight each) in one `runstate serve`, its RSS above its own baseline, and GET /runs/:id of each meanwhile.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { api, launch, startRun, type Served } from './harness/serve.js';
import { Histogram, pool, progress } from './harness/stats.js';

/** Requests in flight at once from the bench, for starting and for reading. */
const PARALLEL = 8;
const inParallel = <T>(n: number, work: (i: number) => Promise<T>) => pool(n, PARALLEL, work);
const OPTIONS = { seed: 1, delay_ms: 30_000, items_per_stage: 100, concurrency: 1 };

/** The process's resident set size in bytes, as the kernel counts it. */
function rssOf(svc: Served): number {
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${svc.child.pid}/status`, 'utf8'))?.[1];
  if (kb === undefined) throw new Error('bench: no VmRSS in /proc/<pid>/status');
  return Number(kb) * 1024;
}

/** The RSS before and with them working, the time to start them, GET /runs/:id of each meanwhile, and how many it found running (all should be). */
export async function measureMemory(runs: number) {
  const inst = await launch('memory');
  try {
    const start = (i: number) => startRun(inst, 'face_processor', { trigger: `mem-${i}`, options: OPTIONS });
    // Warm-up: every path the measured runs take is compiled and the pools are grown before the baseline.
    const warm = await inParallel(20, start);
    await inParallel(warm.length, (i) => api(inst, `/runs/${warm[i]}/cancel`, {}));
    await sleep(2000);
    const baselineRss = rssOf(inst);
    const t0 = performance.now();
    const ids = await inParallel(runs, (i) => start(i + warm.length));
    const startMs = performance.now() - t0;
    progress(`memory: ${runs} runs started in ${Math.round(startMs)} ms`);
    const hist = new Histogram();
    let running = 0;
    await inParallel(ids.length, async (k) => {
      const t = performance.now();
      const { status } = await api<{ status: string }>(inst, `/runs/${ids[k]}`);
      hist.record(performance.now() - t);
      if (status === 'running') running += 1;
    });
    const loadedRss = rssOf(inst);
    return { runs, baselineRss, loadedRss, startMs, getP50: hist.quantile(0.5), getP99: hist.quantile(0.99), running };
  } finally {
    // Stopping 10,000 runs may take longer than the shutdown timeout: it exits anyway, and the dir goes.
    await inst.stop();
  }
}
