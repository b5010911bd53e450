// Per queue claim-to-answer times of the last minute (service/workers/queue-stats.ts), on a clock of the test's.
import { describe, expect, it } from 'vitest';
import { QueueStats } from '../../../service/workers/queue-stats.js';

describe('QueueStats', () => {
  it('gives count, p50 and p95 of the answers of the last minute, and the leases lost', () => {
    let now = 1_000_000;
    const stats = new QueueStats(() => now);
    expect(stats.view('faces')).toEqual({ latency_ms: null, leases_lost: 0 });
    for (let ms = 1; ms <= 100; ms++) stats.answered('faces', ms);
    stats.leaseLost('faces');
    expect(stats.view('faces')).toEqual({ latency_ms: { count: 100, p50: 51, p95: 96 }, leases_lost: 1 });
    now += 30_000;
    stats.answered('faces', 500);
    expect(stats.view('faces').latency_ms).toMatchObject({ count: 101 });
    now += 30_001; // the first hundred are past the minute
    expect(stats.view('faces')).toEqual({ latency_ms: { count: 1, p50: 500, p95: 500 }, leases_lost: 1 });
    expect(stats.queues()).toEqual(['faces']);
  });

  it('keeps the newest 4096 answers of a busy queue', () => {
    const stats = new QueueStats(() => 0);
    for (let i = 0; i < 10_000; i++) stats.answered('busy', i < 10_000 - 4096 ? 1_000_000 : 1);
    expect(stats.view('busy').latency_ms).toEqual({ count: 4096, p50: 1, p95: 1 });
  });
});
