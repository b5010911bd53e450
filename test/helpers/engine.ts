import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine } from '../../service/engine/engine.js';
import type { AnyPipeline } from '../../service/pipelines/types.js';
import { SqliteStore } from '../../service/store/sqlite.js';
import type { EventName, StoredEvent } from '../../service/events.js';

export function tempDir(prefix = 'runstate-test-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** An engine on a real SQLite file, with every event it appends kept in order. */
export function engineOn(dir: string, pipelines: readonly AnyPipeline[]) {
  const store = new SqliteStore({ filename: join(dir, 'runstate.db') });
  const engine = new Engine({ store, pipelines });
  return { store, engine, ...recordEvents(engine) };
}

/** Keeps every event the engine announces, in order, and resolves waits on them. */
export function recordEvents(engine: Engine) {
  const events: StoredEvent[] = [];
  const waiters: { test: (e: StoredEvent) => boolean; resolve: (e: StoredEvent) => void }[] = [];
  engine.onEvents((_, batch) => {
    for (const e of batch) {
      events.push(e);
      for (const w of [...waiters]) {
        if (w.test(e)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(e);
        }
      }
    }
  });
  /** Resolves with the first event after `afterSeq` (already appended or still to come) that passes the test. */
  function next(test: (e: StoredEvent) => boolean, afterSeq = 0): Promise<StoredEvent> {
    const pass = (e: StoredEvent) => e.seq > afterSeq && test(e);
    const seen = events.find(pass);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => waiters.push({ test: pass, resolve }));
  }
  return { events, next };
}

export function isTransition(machine: string, to: string) {
  return (e: StoredEvent) => e.event === 'state_change' && e.machine_name === machine && e.payload.to_state === to;
}

/** A predicate that narrows events to one type: `log.filter(isEvent('stage_start'))`. */
export function isEvent<N extends EventName>(name: N) {
  return (e: StoredEvent): e is StoredEvent<N> => e.event === name;
}

/** Any field of an event, by name, for assertions on what is stored whatever its type. */
export function fieldOf(e: object, key: string): unknown {
  return Reflect.get(e, key) as unknown;
}
