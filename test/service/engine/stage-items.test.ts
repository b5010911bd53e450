import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Engine } from '../../../service/engine/engine.js';
import { StageItems } from '../../../service/engine/stage-items.js';
import { SqliteStore } from '../../../service/store/sqlite.js';
import { recordEvents, tempDir } from '../../helpers/engine.js';
import { gatedPipeline } from '../../helpers/gated.js';

const items = (n: number, tag = 'x') => Array.from({ length: n }, (_, k) => ({ id: k + 1, title: `${tag} ${k + 1}` }));

describe('StageItems', () => {
  it('keeps lists up to the bound, letting the least recently used go first', () => {
    const kept = new StageItems({ maxItems: 10 });
    const a = items(4, 'a');
    const b = items(4, 'b');
    kept.set('run_a', 1, a);
    kept.set('run_b', 1, b);
    expect(kept.get('run_a', 1)).toBe(a);
    kept.set('run_c', 2, items(4, 'c'));
    // run_b's list was used least recently: it went; run_a's, read just before, stayed.
    expect(kept.get('run_b', 1)).toBeUndefined();
    expect(kept.get('run_a', 1)).toBe(a);
    expect(kept.size).toBe(8);
  });

  it('keeps the order of use through repeated reads of the newest list', () => {
    const kept = new StageItems({ maxItems: 10 });
    const a = items(4, 'a');
    const b = items(4, 'b');
    kept.set('run_a', 1, a);
    kept.set('run_b', 1, b);
    kept.get('run_a', 1);
    kept.get('run_a', 1);
    kept.get('run_b', 1);
    kept.set('run_c', 1, items(4, 'c'));
    // Read last: run_b stays; run_a, read before it, goes.
    expect(kept.get('run_a', 1)).toBeUndefined();
    expect(kept.get('run_b', 1)).toBe(b);
    kept.drop('run_b', 1);
    kept.set('run_d', 1, items(4, 'd'));
    kept.get('run_c', 1);
    kept.set('run_e', 1, items(4, 'e'));
    expect(kept.get('run_d', 1)).toBeUndefined();
    expect(kept.get('run_c', 1)).toBeDefined();
  });

  it('keeps a list bigger than the bound alone, and replaces a list set again', () => {
    const kept = new StageItems({ maxItems: 5 });
    kept.set('run_a', 1, items(3));
    const big = items(8);
    kept.set('run_b', 1, big);
    expect(kept.get('run_a', 1)).toBeUndefined();
    expect(kept.get('run_b', 1)).toBe(big);
    kept.set('run_b', 1, items(2));
    expect(kept.size).toBe(2);
  });

  it("forgets a run's lists when it is dropped", () => {
    const kept = new StageItems();
    kept.set('run_a', 1, items(3));
    kept.set('run_a', 2, items(3));
    kept.set('run_b', 1, items(3));
    kept.drop('run_a', 2);
    expect(kept.get('run_a', 1)).toBeUndefined();
    expect(kept.get('run_a', 2)).toBeUndefined();
    expect(kept.size).toBe(3);
  });

  it('refuses a bound that is not a positive integer, naming it', () => {
    expect(() => new StageItems({ maxItems: 0 })).toThrow(/`maxItems`/);
  });
});

describe('runs whose stage items left memory', () => {
  let dir: ReturnType<typeof tempDir>;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => dir.remove());

  it('read them from the store: their items run, are recorded by name and show on the processing card', async () => {
    const gate = gatedPipeline('gated', [3], { concurrency: 1 });
    const store = new SqliteStore({ filename: join(dir.path, 'runstate.db') });
    // Room for one run's list: each run that loads its stage lets the other's go.
    const engine = new Engine({ store, pipelines: [gate.pipeline], itemsInMemory: 3 });
    const { events } = recordEvents(engine);
    const a = (await engine.startRun({ accountId: 'acme', siteId: 's', pipeline: 'gated' })).run_id;
    await gate.inFlight(1);
    const b = (await engine.startRun({ accountId: 'acme', siteId: 's', pipeline: 'gated' })).run_id;
    await gate.inFlight(2);
    expect(await engine.currentProcessing(a)).toMatchObject({ currently_processing: [{ id: 101, title: 'item 1.1' }], up_next: [{ id: 102 }, { id: 103 }] });
    for (let k = 0; k < 6; k++) await gate.finish();
    await Promise.all([engine.whenRetired(a), engine.whenRetired(b)]);
    for (const id of [a, b]) {
      const done = events.filter((e) => e.run_id === id && e.event === 'stage_item_processed');
      expect(done.map((e) => e.event === 'stage_item_processed' && e.item)).toEqual([
        { id: 101, title: 'item 1.1' },
        { id: 102, title: 'item 1.2' },
        { id: 103, title: 'item 1.3' },
      ]);
    }
    await engine.stop();
    await store.close();
  });
});
