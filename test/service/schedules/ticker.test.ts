import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { faceProcessorPipeline } from '../../../service/pipelines/index.js';
import { sqliteScheduleStore } from '../../../service/schedules/sqlite-store.js';
import { ScheduleTicker } from '../../../service/schedules/ticker.js';
import type { ScheduleStore } from '../../../service/schedules/types.js';
import { engineOn, tempDir } from '../../helpers/engine.js';
import { type Probe, until as untilWithin } from '../../helpers/until.js';

const until = <T>(what: string, probe: Probe<T>, ms = 20_000): Promise<T> => untilWithin(what, probe, ms);

describe('the schedule ticker', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('holds through a database outage, says so once, and then starts the due fire once', { timeout: 30_000 }, async () => {
    const dir = tempDir();
    cleanup.push(() => dir.remove());
    const { store, engine } = engineOn(dir.path, [faceProcessorPipeline]);
    cleanup.push(() => store.close());
    cleanup.push(() => engine.stop());
    const real = sqliteScheduleStore(store.connection);
    let down = true;
    let refused = 0;
    // Every call fails as a cut-off Postgres connection does while `down`.
    const flaky = new Proxy(real, {
      get(target, key: keyof ScheduleStore) {
        const fn = target[key] as (...a: unknown[]) => Promise<unknown>;
        return async (...args: unknown[]) => {
          if (down) {
            refused += 1;
            throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
          }
          return fn.apply(target, args);
        };
      },
    });
    const lines: { level: number; msg: string }[] = [];
    const logger = pino(new Writable({ write: (chunk: Buffer, _e, cb) => (lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string }), cb()) }));
    const now = Date.now();
    await real.create({
      scheduleId: 'sch_000000000000000000000001',
      accountId: 'default',
      siteId: 'site-1',
      pipeline: 'face_processor',
      options: { delay_ms: 0, items_per_stage: 1 },
      // Hourly: no fire time falls within the last tick's few ms, so the one run is the merged one.
      cron: '0 0 * * * *',
      timezone: 'UTC',
      overlap: 'allow',
      status: 'active',
      createdBy: 'admin',
      createdAt: new Date(now).toISOString(),
      // The last fire was three hours ago: three fire times are due at once.
      lastFireAt: now - 3 * 3_600_000,
    });
    const ticker = new ScheduleTicker({ store: flaky, engine, logger, owner: 'i1', maxWaitMs: 50 });
    ticker.start();
    cleanup.push(() => ticker.stop());

    await until('five refused ticks', () => refused >= 5);
    expect(lines.filter((l) => l.level === 40)).toHaveLength(1);
    expect(lines[0]!.msg).toMatch(/database is unavailable/);
    down = false;
    const [fire] = await until('the due fire started', async () => {
      const f = (await real.lastFires(['sch_000000000000000000000001'], 5)).get('sch_000000000000000000000001')!;
      return f.some((x) => x.state === 'started') && f;
    });
    expect(fire!.claimedBy).toBe('i1');
    expect(fire!.fireAt).toBe(Math.floor(now / 3_600_000) * 3_600_000);
    expect(lines.some((l) => /database is back/.test(l.msg))).toBe(true);
    await ticker.stop();
    // One run for the three missed fire times, and it is the latest one's.
    const runs = await store.listRuns({});
    expect(runs.map((r) => r.runId)).toEqual([fire!.runId]);
    expect(runs[0]!.trigger).toBe('scheduled');
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
  });
});
