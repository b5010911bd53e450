import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { demoPipelines } from '../../../service/pipelines/index.js';
import { ADMIN, appOn, auth } from '../../helpers/app.js';
import { tempDir } from '../../helpers/engine.js';

const API = '/api/v1/automation';
const ITEMS = 20_000;

describe('a run of instant items (delay_ms 0) over HTTP', () => {
  let dir: ReturnType<typeof tempDir>;
  let h: Awaited<ReturnType<typeof appOn>>;
  beforeEach(async () => {
    dir = tempDir();
    h = await appOn(dir.path, demoPipelines);
  });
  afterEach(async () => {
    await h.stop();
    dir.remove();
  });

  const run = async (id: string) => (await h.app.inject({ url: `${API}/runs/${id}`, headers: auth(ADMIN) })).json().data as { status: string; stages: { processed_items: number }[] };

  it('takes a pause at an item boundary mid-stage, and resumes it with every item recorded once', async () => {
    const started = await h.app.inject({
      method: 'POST',
      url: `${API}/runs`,
      headers: auth(ADMIN),
      payload: { site_id: 'site-5', pipeline: 'face_processor', options: { delay_ms: 0, items_per_stage: [ITEMS, 0, 0, 0, 0], concurrency: 16 } },
    });
    expect(started.statusCode).toBe(201);
    const id = (started.json().data as { run_id: string }).run_id;
    const paused = await h.app.inject({ method: 'POST', url: `${API}/runs/${id}/pause`, headers: auth(ADMIN), payload: { reason: 'test' } });
    expect(paused.statusCode).toBe(200);
    await vi.waitFor(async () => expect((await run(id)).status).toBe('paused'), { timeout: 60_000, interval: 20 });
    // Items never wait on a timer, yet the command got its turn before the stage was done.
    // The view is the actor as it stands; its last batch is durable a moment later.
    await h.engine.settle();
    const atPause = (await run(id)).stages[0]!.processed_items;
    expect(atPause).toBeLessThan(ITEMS);
    expect((await h.store.ledger(id)).length).toBe(atPause);

    expect((await h.app.inject({ method: 'POST', url: `${API}/runs/${id}/resume`, headers: auth(ADMIN) })).statusCode).toBe(200);
    await h.engine.whenRetired(id);
    const ledger = await h.store.ledger(id);
    expect(ledger).toHaveLength(ITEMS);
    expect(new Set(ledger.map((l) => String(l.itemId))).size).toBe(ITEMS);
    const events = await h.store.readEvents(id, 0, 100_000);
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: events.length }, (_, i) => i + 1));
    expect(events.filter((e) => e.event === 'stage_item_processed')).toHaveLength(ITEMS);
  }, 120_000);
});
