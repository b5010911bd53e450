// The TypeScript SDK (sdk/ts/runstate-worker.ts) against a real service: the answers its handlers
// finish together go out in one POST /answers (docs/workers.md, "Answering several jobs at once").
import { afterEach, describe, expect, it } from 'vitest';
import type { AnyPipeline } from '../../service/pipelines/types.js';
import { Worker } from '../../sdk/ts/runstate-worker.js';
import { ADMIN, appOn, auth } from '../helpers/app.js';
import { tempDir } from '../helpers/engine.js';

const ITEMS = 8;

const pipeline: AnyPipeline = {
  name: 'ts_sdk',
  stages: [
    {
      key: 'only',
      name: 'only',
      queue: 'sdk',
      concurrency: ITEMS,
      loadsInProcess: true,
      loadItems: async () => Array.from({ length: ITEMS }, (_, i) => ({ id: i + 1, title: `item ${i + 1}` })),
      processItem: async () => {
        throw new Error('runs on a worker');
      },
    },
  ],
};

/** How many requests each workers route answered, from the service's own metrics. */
async function requestsByRoute(base: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${base}/metrics`, { headers: auth(ADMIN) })).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^runstate_http_request_duration_seconds_count\{([^}]*)\} (\d+)$/gm)) {
    const route = /route="([^"]*)"/.exec(m[1]!)?.[1];
    if (route?.startsWith('/api/v1/workers/')) out[route] = (out[route] ?? 0) + Number(m[2]);
  }
  return out;
}

describe('the TypeScript worker SDK', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it('answers the jobs its handlers finish together in one request, and every item is recorded once', async () => {
    const dir = tempDir('rs-ts-sdk-');
    const svc = await appOn(dir.path, [pipeline]);
    cleanup.push(async () => dir.remove(), () => svc.stop());
    const base = (await svc.start()).url.replace(/\/$/, '');
    const run = await svc.engine.startRun({ accountId: 'acme', siteId: '5', pipeline: 'ts_sdk' });

    // Every handler waits until all of them have their job, then all finish in one turn.
    let started = 0;
    let release!: () => void;
    const allIn = new Promise<void>((r) => (release = r));
    const worker = new Worker({ url: base, token: ADMIN, queue: 'sdk', concurrency: ITEMS, maxClaim: ITEMS, waitMs: 200, handleSignals: false });
    worker.item(null, async () => {
      if (++started === ITEMS) release();
      await allIn;
      return { cost: 1 };
    });
    const running = worker.run();
    cleanup.push(async () => {
      worker.stop();
      await running;
    });
    await svc.engine.whenRetired(run.run_id);

    const view = (await svc.engine.getRun(run.run_id))!;
    expect(view.status).toBe('completed');
    const processed = svc.events.filter((e) => e.run_id === run.run_id && e.event === 'stage_item_processed');
    expect(processed.map((e) => (e as { item?: { id: number } }).item?.id).sort((a, b) => a! - b!)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const routes = await requestsByRoute(base);
    expect(routes['/api/v1/workers/jobs/:job_id/complete'] ?? 0).toBe(0);
    // The jobs may come in more than one claim; their answers, finished in one turn, in one request.
    expect(routes['/api/v1/workers/answers']).toBe(1);
  });
});
