import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Ownership } from '../../../service/engine/ownership.js';
import { SqliteStore } from '../../../service/store/sqlite.js';
import { tempDir } from '../../helpers/engine.js';

describe('Ownership', () => {
  let dir: ReturnType<typeof tempDir>;
  let store: SqliteStore;
  beforeEach(() => {
    dir = tempDir();
    store = new SqliteStore({ filename: join(dir.path, 'runstate.db') });
  });
  afterEach(async () => {
    await store.close();
    dir.remove();
  });

  it('reads one held run, not all of them, when a run is leased at its start', () => {
    let read = 0;
    const ownership = new Ownership({
      store,
      owner: 'me',
      leaseMs: 10_000,
      commandTimeoutMs: 1000,
      logger: pino({ level: 'silent' }),
      beforeResume: undefined,
      *held() {
        for (let i = 0; i < 10_000; i++) {
          read += 1;
          yield { runId: `run_${i}`, live: true };
        }
      },
      resume: () => true,
      lose: () => {},
      apply: async () => ({ accepted: true }),
    });
    for (let i = 0; i < 100; i++) ownership.leased(performance.now());
    // A start with thousands of runs held costs one look, not a list of them all.
    expect(read).toBe(100);
  });
});
