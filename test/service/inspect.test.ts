import { createInspectorServer } from '@statelyai/inspect/server';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { Engine } from '../../service/engine/engine.js';
import { createInspection } from '../../service/inspect.js';
import type { PipelineDefinition } from '../../service/pipelines/types.js';
import { SqliteStore } from '../../service/store/sqlite.js';
import { tempDir } from '../helpers/engine.js';
import { freePort } from '../helpers/net.js';


const SECRET = 'SECRET-TITLE-do-not-leak';
const pipeline: PipelineDefinition<Record<string, never>> = {
  name: 'p',
  parseOptions: () => ({}),
  stages: [1, 2].map((n) => ({
    key: `s${n}`,
    name: `Stage ${n}`,
    loadItems: async () => [{ id: 1, title: `${SECRET} ${n}`, body: SECRET }],
    processItem: async () => ({ cost: 1 }),
  })),
};

describe('Stately inspector', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('streams the run and its stages to a local relay: actors, events, snapshots, and no item payload', async () => {
    const port = await freePort();
    const relay = createInspectorServer({ port, autoOpen: false });
    cleanup.push(() => relay.stop());
    const viewer = new WebSocket(`ws://127.0.0.1:${port}`);
    await new Promise((r, j) => viewer.once('open', r).once('error', j));
    cleanup.push(() => viewer.terminate());
    const received: string[] = [];
    viewer.on('message', (d) => received.push(String(d)));

    const dir = tempDir();
    cleanup.push(() => dir.remove());
    const inspection = createInspection({ url: `ws://127.0.0.1:${port}`, logger: pino({ level: 'silent' }) });
    cleanup.push(() => inspection.stop());
    const store = new SqliteStore({ filename: `${dir.path}/db.sqlite` });
    const engine = new Engine({ store, pipelines: [pipeline], inspect: (ev) => inspection.observe(ev) });
    cleanup.push(() => engine.stop());
    const { run_id } = await engine.startRun({ accountId: 'a', siteId: 's', pipeline: 'p' });
    await engine.whenRetired(run_id);

    await vi.waitFor(() => expect(received.some((m) => m.includes('"completed"'))).toBe(true), { timeout: 10_000 });
    const messages = received.map((m) => JSON.parse(m) as { type: string; sessionId: string; rootId?: string; name?: string });
    const types = new Set(messages.map((m) => m.type));
    expect([...types].sort()).toEqual(['@xstate.actor', '@xstate.event', '@xstate.snapshot']);
    // The run and its two stages, and nothing else (no item, loader or timer actors).
    const actors = messages.filter((m) => m.type === '@xstate.actor');
    expect(actors).toHaveLength(3);
    expect(new Set(messages.map((m) => m.sessionId)).size).toBe(3);
    for (const m of received) {
      expect(m).not.toContain(SECRET);
      expect(m).not.toMatch(/token/i);
    }
    expect(inspection.forwarded).toBeGreaterThan(0);
    expect(inspection.dropped).toBe(0);
  });

  it('drops what passes its rate bound instead of queuing it', async () => {
    const inspection = createInspection({ url: 'ws://127.0.0.1:9', logger: pino({ level: 'silent' }), maxPerSecond: 5 });
    cleanup.push(() => inspection.stop());
    const dir = tempDir();
    cleanup.push(() => dir.remove());
    const engine = new Engine({ store: new SqliteStore({ filename: `${dir.path}/db.sqlite` }), pipelines: [pipeline], inspect: (ev) => inspection.observe(ev) });
    cleanup.push(() => engine.stop());
    const { run_id } = await engine.startRun({ accountId: 'a', siteId: 's', pipeline: 'p' });
    await engine.whenRetired(run_id);
    // At most 5 a second: the run lasts well under two seconds.
    expect(inspection.forwarded).toBeGreaterThanOrEqual(5);
    expect(inspection.forwarded).toBeLessThanOrEqual(10);
    expect(inspection.dropped).toBeGreaterThan(0);
  });
});
