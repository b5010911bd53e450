// The service part's memory figure: `runs` runs working at once in one `runstate serve` process
// (demo face_processor, one item in flight each, items of 30 s on average), its RSS above the
// baseline of the same process before them, and GET /runs/:id for every one of them meanwhile.
import { setTimeout as sleep } from 'node:timers/promises';
import { api, rssOf, startInstance, stopInstance } from './service-instance.js';
import { Histogram, progress } from './harness/stats.js';

export interface MemoryResult {
  runs: number;
  baselineRss: number;
  loadedRss: number;
  /** Wall time to start them all over HTTP. */
  startMs: number;
  /** GET /runs/:id, every run once, while they work. */
  getP50: number;
  getP99: number;
  /** Runs GET found running (the rest had finished or failed: none should have). */
  running: number;
}

/** Requests in flight at once from the bench, for starting and for reading. */
const PARALLEL = 8;
const OPTIONS = { seed: 1, delay_ms: 30_000, items_per_stage: 100, concurrency: 1 };

async function inParallel<T>(n: number, work: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await work(i);
      }
    }),
  );
  return out;
}

export async function measureMemory(runs: number): Promise<MemoryResult> {
  const inst = await startInstance('memory', {});
  try {
    const start = (i: number) =>
      api<{ data: { run_id: string } }>(inst, 'POST', '/runs', { site_id: 'bench', pipeline: 'face_processor', trigger: `mem-${i}`, options: OPTIONS }).then((r) => r.data.run_id);
    // Warm-up: every path the measured runs take is compiled and the pools are grown before the baseline.
    const warm = await inParallel(20, start);
    await inParallel(warm.length, (i) => api(inst, 'POST', `/runs/${warm[i]}/cancel`, {}));
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
      const { data } = await api<{ data: { status: string } }>(inst, 'GET', `/runs/${ids[k]}`);
      hist.record(performance.now() - t);
      if (data.status === 'running') running += 1;
    });
    const loadedRss = rssOf(inst);
    return { runs, baselineRss, loadedRss, startMs, getP50: hist.quantile(0.5), getP99: hist.quantile(0.99), running };
  } finally {
    // Stopping 10,000 runs may take longer than the shutdown timeout: it exits anyway, and the dir goes.
    await stopInstance(inst);
  }
}
