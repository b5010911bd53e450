import { describe, expect, it } from 'vitest';
import { MAX_FIRES_PER_TICK, dueFires, nextFireAfter } from '../../../service/schedules/cron.js';

const EVERY_2S = { cron: '*/2 * * * * *', timezone: 'UTC' };
const T = Date.parse('2026-01-01T00:00:00Z');

describe('dueFires', () => {
  it('merges what fell before the last look into its latest, and keeps each fire after it', () => {
    // Last fire handled at T; the ticker last looked at T+9.5 s and now it is T+14.2 s.
    expect(dueFires(EVERY_2S, T, T + 9500, T + 14_200).map((f) => (f - T) / 1000)).toEqual([8, 10, 12, 14]);
    // A fire exactly at the last look counts as before it; one exactly now is due.
    expect(dueFires(EVERY_2S, T, T + 8000, T + 12_000).map((f) => (f - T) / 1000)).toEqual([8, 10, 12]);
  });

  it('answers only fires after the last one handled, and none before it is due', () => {
    expect(dueFires(EVERY_2S, T + 10_000, T + 4000, T + 13_000).map((f) => (f - T) / 1000)).toEqual([12]);
    expect(dueFires(EVERY_2S, T + 10_000, T + 11_000, T + 11_900)).toEqual([]);
    expect(dueFires(EVERY_2S, T + 10_000, T, T + 10_000)).toEqual([]);
  });

  it('merges the oldest of a long stall too, keeping the newest few', () => {
    const fires = dueFires(EVERY_2S, T, T, T + 100_000);
    expect(fires).toHaveLength(MAX_FIRES_PER_TICK);
    expect(fires.at(-1)).toBe(T + 100_000);
  });

  it('reads the fields in the time zone', () => {
    // 09:00 in Paris on a winter Monday is 08:00 UTC.
    expect(new Date(nextFireAfter({ cron: '0 9 * * 1', timezone: 'Europe/Paris' }, T)!).toISOString()).toBe('2026-01-05T08:00:00.000Z');
  });
});
