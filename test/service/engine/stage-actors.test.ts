import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createActor } from 'xstate';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { restorableRunSnapshot, stageMachine, type RunContext, type StageInput } from '../../../machines/index.js';
import { engineOn, isEvent, tempDir } from '../../helpers/engine.js';
import { gatedPipeline } from '../../helpers/gated.js';

const ACME = { accountId: 'acme', siteId: 'site-5' };

interface Persisted {
  context: RunContext;
  children: Record<string, { snapshot: { value: unknown; status: string }; src: string; systemId?: string }>;
}

function storedSnapshot(dir: string, runId: string): Persisted {
  const db = new Database(join(dir, 'runstate.db'));
  try {
    const row = db.prepare<[string], { snapshot: string }>('SELECT snapshot FROM runs WHERE run_id = ?').get(runId)!;
    return JSON.parse(row.snapshot) as Persisted;
  } finally {
    db.close();
  }
}

function storeSnapshot(dir: string, runId: string, snapshot: Persisted): void {
  const db = new Database(join(dir, 'runstate.db'));
  try {
    db.prepare('UPDATE runs SET snapshot = ? WHERE run_id = ?').run(JSON.stringify(snapshot), runId);
  } finally {
    db.close();
  }
}

/** The snapshot as versions that spawned every stage at the start persisted it: later stages there, `pending`, with system ids. */
function asEarlierVersion(snap: Persisted, runId: string): Persisted {
  const children = { ...snap.children };
  for (const [id, child] of Object.entries(children)) children[id] = { ...child, systemId: id };
  snap.context.stages.forEach((settings, i) => {
    const id = `stage.${i + 1}`;
    if (children[id]) return;
    const input: StageInput = { runId, stage: i + 1, ...settings };
    children[id] = { snapshot: createActor(stageMachine, { input }).getPersistedSnapshot() as unknown as Persisted['children'][string]['snapshot'], src: 'stage', systemId: id };
  });
  return { ...snap, children };
}

describe('stage actors', () => {
  let dir: ReturnType<typeof tempDir>;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => dir.remove());

  it('exist only for stages that have started: the view shows the others pending, and the snapshot holds none of them', async () => {
    const gate = gatedPipeline('gated', [1, 1, 1]);
    const { engine, store } = engineOn(dir.path, [gate.pipeline]);
    const { run_id: id } = await engine.startRun({ ...ACME, pipeline: 'gated' });
    await gate.inFlight(1);
    expect(engine.stageState(id, 1)).toBe('running');
    expect(engine.stageState(id, 2)).toBeUndefined();
    expect((await engine.getRun(id))!.stages.map((s) => [s.state, s.total_items, s.processed_items])).toEqual([
      ['running', 1, 0],
      ['pending', null, 0],
      ['pending', null, 0],
    ]);
    await engine.stop();
    await store.close();
    expect(Object.keys(storedSnapshot(dir.path, id).children)).toEqual(['stage.1']);
  });

  it('restores a run persisted when every stage was spawned at the start, and works its later stages through', async () => {
    const first = gatedPipeline('gated', [1, 1, 1]);
    const before = engineOn(dir.path, [first.pipeline]);
    const { run_id: id } = await before.engine.startRun({ ...ACME, pipeline: 'gated' });
    await first.inFlight(1);
    await before.engine.stop();
    await before.store.close();
    storeSnapshot(dir.path, id, asEarlierVersion(storedSnapshot(dir.path, id), id));

    const gate = gatedPipeline('gated', [1, 1, 1]);
    const { engine, events, store } = engineOn(dir.path, [gate.pipeline]);
    await engine.recover();
    // The pending stages it had are dropped on restore: they are spawned when they start.
    expect(engine.stageState(id, 1)).toBe('running');
    expect(engine.stageState(id, 2)).toBeUndefined();
    expect((await engine.getRun(id))!.stages.map((s) => s.state)).toEqual(['running', 'pending', 'pending']);
    for (const stage of [1, 2, 3]) {
      const [p] = await gate.inFlight(1);
      expect(p!.stage).toBe(stage);
      await gate.finish();
    }
    await engine.whenRetired(id);
    const run = (await engine.getRun(id))!;
    expect(run.status).toBe('completed');
    expect(run.stages.map((s) => [s.state, s.processed_items])).toEqual([
      ['completed', 1],
      ['completed', 1],
      ['completed', 1],
    ]);
    // Each later stage started once, from pending, as a new run's would.
    const starts = events.filter(isEvent('state_change')).filter((e) => e.payload.from_state === 'pending');
    expect(starts.map((e) => [e.machine_name, e.payload.to_state])).toEqual([
      ['stage_2', 'loading'],
      ['stage_3', 'loading'],
    ]);
    await engine.stop();
    await store.close();
  });

  it('keeps every stage of a persisted snapshot that is not pending, and a snapshot with none as it is', () => {
    const snap = {
      value: 'running',
      children: {
        'stage.1': { snapshot: { value: 'completed', status: 'active' } },
        'stage.2': { snapshot: { value: 'running', status: 'active' } },
        'stage.3': { snapshot: { value: 'pending', status: 'active' } },
      },
    };
    expect(Object.keys(restorableRunSnapshot(snap).children)).toEqual(['stage.1', 'stage.2']);
    const fresh = { value: 'running', children: { 'stage.1': { snapshot: { value: 'loading', status: 'active' } } } };
    expect(restorableRunSnapshot(fresh)).toBe(fresh);
    expect(restorableRunSnapshot(null)).toBeNull();
  });
});
