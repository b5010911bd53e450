import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ItemStatus, ItemView } from '../../../service/engine/items.js';
import { contentPipeline } from '../../../service/pipelines/index.js';
import { ADMIN, OTHER, SITE5, appOn, auth } from '../../helpers/app.js';
import { isTransition, tempDir } from '../../helpers/engine.js';
import { gatedPipeline } from '../../helpers/gated.js';

const API = '/api/v1/automation';

interface ItemsAnswer {
  stage: number;
  total_items: number | null;
  data: ItemView[];
  counts: Record<ItemStatus, number>;
  next_after: string | null;
}

describe('GET /runs/:run_id/items', () => {
  let dir: ReturnType<typeof tempDir>;
  let h: Awaited<ReturnType<typeof appOn>>;
  let gate: ReturnType<typeof gatedPipeline>;
  let app: FastifyInstance;

  beforeEach(async () => {
    dir = tempDir();
    gate = gatedPipeline('gated', [4, 1], { concurrency: 2, attempts: 2 });
    h = await appOn(dir.path, [gate.pipeline, contentPipeline]);
    app = h.app;
  });
  afterEach(async () => {
    await app.close();
    await h.engine.stop();
    dir.remove();
  });

  async function start(body: Record<string, unknown>) {
    const res = await app.inject({ method: 'POST', url: `${API}/runs`, headers: auth(SITE5), payload: { site_id: 'site-5', ...body } });
    expect(res.statusCode, res.body).toBe(201);
    return (res.json() as { data: { run_id: string } }).data.run_id;
  }
  async function items(runId: string, query = '', token = SITE5): Promise<ItemsAnswer> {
    const res = await app.inject({ url: `${API}/runs/${runId}/items${query}`, headers: auth(token) });
    expect(res.statusCode, res.body).toBe(200);
    return res.json() as ItemsAnswer;
  }

  it('shows each item of the current stage where it is: in flight, pending, processed, failed', async () => {
    const runId = await start({ pipeline: 'gated' });
    await gate.inFlight(2);
    const first = await items(runId);
    expect(first).toMatchObject({ stage: 1, total_items: 4, next_after: null });
    expect(first.data.map((i) => [i.id, i.status, i.attempts])).toEqual([[101, 'in_flight', 1], [102, 'in_flight', 1], [103, 'pending', 0], [104, 'pending', 0]]);
    expect(first.counts).toMatchObject({ in_flight: 2, pending: 2, processed: 0, failed: 0 });

    await gate.finish(3);
    const landed = await h.next((e) => e.event === 'stage_item_processed');
    // The oldest in flight fails each time: 102, then 103 (both retried), then 102's last attempt.
    await gate.fail('upstream said no');
    await gate.inFlight(2);
    await gate.fail('upstream said no');
    await gate.inFlight(2);
    await gate.fail('upstream said no again');
    const failed = await h.next((e) => e.event === 'stage_item_failed');
    const now = await items(runId);
    const byId = new Map(now.data.map((i) => [i.id, i]));
    expect(byId.get(101)).toMatchObject({ status: 'processed', attempts: 1, cost: 3, error: null, finished_at: landed.timestamp });
    expect(byId.get(102)).toMatchObject({ status: 'failed', attempts: 2, error: 'upstream said no again', finished_at: failed.timestamp });
    expect(byId.get(103)).toMatchObject({ status: 'in_flight', attempts: 2, finished_at: null });
    expect(now.counts).toMatchObject({ processed: 1, failed: 1, in_flight: 2, pending: 0 });
    const onlyFailed = await items(runId, '?status=failed');
    expect(onlyFailed.data.map((i) => i.id)).toEqual([102]);
    // Another stage, picked: not loaded yet.
    expect(await items(runId, '?stage=2')).toMatchObject({ stage: 2, total_items: null, data: [] });
  });

  it('matches the ledger for a run with failures, and pages through every item', async () => {
    const options = { seed: 3, delay_ms: 0, items_per_stage: [40, 0, 0, 0, 0, 0, 0], fail_rate: 0.3, max_attempts: 2, backoff_ms: 0 };
    const runId = await start({ pipeline: 'content', options });
    await h.next(isTransition('run', 'completed'));
    const all = await items(runId, '?stage=1&limit=1000');
    const ledger = (await h.store.ledger(runId)).filter((l) => l.stage === 1);
    expect(all.data).toHaveLength(40);
    expect(ledger).toHaveLength(40);
    for (const l of ledger) {
      const item = all.data.find((i) => i.id === l.itemId)!;
      expect(item).toMatchObject({ status: l.status === 'done' ? 'processed' : 'failed', attempts: l.attempts, error: l.error, cost: l.cost });
      expect(item.finished_at).toEqual(expect.any(String));
      // The last attempt's time, from the item's event.
      expect(item.duration_ms).toEqual(expect.any(Number));
      expect(Date.parse(item.finished_at!) - Date.parse(item.started_at!)).toBe(item.duration_ms);
    }
    expect(all.counts.failed).toBeGreaterThan(0);
    expect(all.counts.processed + all.counts.failed).toBe(40);
    expect(all.data.filter((i) => i.status === 'failed').every((i) => i.attempts === 2 && /simulated failure/.test(i.error!))).toBe(true);
    // Page by page, with `after`, the same items in the same order.
    const paged: ItemView[] = [];
    let after: string | null = null;
    do {
      const page: ItemsAnswer = await items(runId, `?stage=1&limit=7${after ? `&after=${after}` : ''}`);
      expect(page.data.length).toBeLessThanOrEqual(7);
      paged.push(...page.data);
      after = page.next_after;
    } while (after);
    expect(paged).toEqual(all.data);
  });

  it('refuses bad input with 400 and the error shape, an unknown run with 404, another site’s run with 403', async () => {
    const runId = await start({ pipeline: 'gated' });
    await gate.inFlight(2);
    for (const q of ['?stage=0', '?stage=x', '?stage=3', '?status=done', '?limit=0', '?limit=5000', '?after=', '?page=2']) {
      const res = await app.inject({ url: `${API}/runs/${runId}/items${q}`, headers: auth(SITE5) });
      expect(res.statusCode, q).toBe(400);
      expect(res.json(), q).toEqual({ error: { code: 'BAD_REQUEST', message: expect.any(String) } });
    }
    const bad = await app.inject({ url: `${API}/runs/not-a-run/items`, headers: auth(SITE5) });
    expect(bad.json()).toMatchObject({ error: { code: 'INVALID_RUN_ID' } });
    const unknown = await app.inject({ url: `${API}/runs/run_20200101_000000_manual/items`, headers: auth(ADMIN) });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ error: { code: 'RUN_NOT_FOUND' } });
    const other = await app.inject({ url: `${API}/runs/${runId}/items`, headers: auth(OTHER) });
    expect(other.statusCode).toBe(403);
    expect(other.json()).toMatchObject({ error: { code: 'FORBIDDEN' } });
    const none = await app.inject({ url: `${API}/runs/${runId}/items` });
    expect(none.statusCode).toBe(401);
  });
});
