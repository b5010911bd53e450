import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Principal } from '../../../service/auth/tokens.js';
import type { ProcessingView, RunView } from '../../../service/engine/view.js';
import type { Client } from '../../../service/hub/client.js';
import type { Frame } from '../../../service/hub/frames.js';
import { topics } from '../../../service/hub/topics.js';
import { MIN_GAP_MS, ViewFeed } from '../../../service/hub/views.js';
import type { StoredEvent } from '../../../service/store/store.js';

const RUN = 'run_20260101_000000_manual';
const admin: Principal = { name: 'admin', admin: true, accountId: null, siteIds: null };
const stranger: Principal = { name: 'x', admin: false, accountId: 'a', siteIds: new Set(['elsewhere']) };

/** The pacing alone, on a fake clock: an engine whose run moves when the test says, clients that record. */
function harness() {
  let seq = 0;
  let status = 'running';
  const calls = { getRun: 0 };
  const engine = {
    async getRun(runId: string): Promise<RunView | undefined> {
      calls.getRun += 1;
      return runId === RUN ? ({ run_id: RUN, site_id: 'site-5', status, last_seq: seq, stages: [] } as unknown as RunView) : undefined;
    },
    async currentProcessing(): Promise<ProcessingView | undefined> {
      return { processed_items: seq } as unknown as ProcessingView;
    },
  };
  const sent = new Map<Client, { at: number; frame: Frame; seq: number }[]>();
  const feed = new ViewFeed({
    engine,
    logger: pino({ level: 'silent' }),
    now: () => Date.now(),
    send: (client, frames) => {
      // An unmasked frame is [header, payload].
      for (const frame of frames) sent.get(client)!.push({ at: Date.now(), frame, seq: (JSON.parse(frame.chunks.at(-1)!.toString('utf8')) as { seq: number }).seq });
    },
  });
  const client = (principal = admin) => {
    const c = { closed: false, principal } as unknown as Client;
    sent.set(c, []);
    return c;
  };
  const append = (event = 'stage_item_processed') => {
    seq += 1;
    feed.publish(RUN, [{ event, run_id: RUN, seq, timestamp: '' } as StoredEvent]);
  };
  return { feed, client, sent, append, calls, setStatus: (s: string) => (status = s), get seq() { return seq; } };
}

describe('view pacing', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sends the first view at once, then never more than max_hz while events stream', async () => {
    const h = harness();
    const c = h.client();
    await h.feed.subscribe(c, topics.run(RUN), 10);
    expect(h.sent.get(c)).toHaveLength(1);
    // 3 s of an event every millisecond.
    for (let t = 0; t < 3000; t++) {
      h.append();
      await vi.advanceTimersByTimeAsync(1);
    }
    await vi.advanceTimersByTimeAsync(200);
    const views = h.sent.get(c)!;
    for (let i = 1; i < views.length; i++) expect(views[i]!.at - views[i - 1]!.at).toBeGreaterThanOrEqual(100);
    expect(views.length).toBeGreaterThanOrEqual(29);
    expect(views.length).toBeLessThanOrEqual(32);
    // Always the newest: the last view is the run's last seq.
    expect(views.at(-1)!.seq).toBe(h.seq);
    h.feed.clear();
  });

  it('sends a view at once when the run reaches a new state', async () => {
    const h = harness();
    const c = h.client();
    await h.feed.subscribe(c, topics.run(RUN), 1);
    await vi.advanceTimersByTimeAsync(100);
    h.append();
    await vi.advanceTimersByTimeAsync(100);
    expect(h.sent.get(c)).toHaveLength(1); // an item: due a second after the first view
    h.setStatus('paused');
    h.append('state_change');
    await vi.advanceTimersByTimeAsync(MIN_GAP_MS);
    expect(h.sent.get(c)).toHaveLength(2);
    expect(h.sent.get(c)![1]).toMatchObject({ at: 200, seq: 2 });
    // Nothing new: nothing more.
    await vi.advanceTimersByTimeAsync(5000);
    expect(h.sent.get(c)).toHaveLength(2);
    h.feed.clear();
  });

  it('computes one view per tick and shares one frame among 300 watchers', async () => {
    const h = harness();
    const cs = Array.from({ length: 300 }, () => h.client());
    for (const c of cs) {
      await h.feed.subscribe(c, topics.run(RUN), 10);
      await vi.advanceTimersByTimeAsync(1);
    }
    const before = h.calls.getRun;
    for (let t = 0; t < 1000; t++) {
      h.append();
      await vi.advanceTimersByTimeAsync(1);
    }
    await vi.advanceTimersByTimeAsync(200);
    // Watchers that joined at different times fall on the same 100 ms ticks: about 11 views in
    // 1.2 s, each computed once for all 300.
    expect(h.calls.getRun - before).toBeLessThanOrEqual(13);
    const last = cs.map((c) => h.sent.get(c)!.at(-1)!);
    expect(new Set(last.map((v) => v.frame)).size).toBe(1);
    expect(last[0]!.seq).toBe(h.seq);
    for (const c of cs) expect(h.sent.get(c)!.length).toBeLessThanOrEqual(14);
    h.feed.clear();
  });

  it('refuses a run the token may not see, and an unknown run, before sending anything', async () => {
    const h = harness();
    const c = h.client(stranger);
    await expect(h.feed.subscribe(c, topics.run(RUN), 10)).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await expect(h.feed.subscribe(c, topics.run('run_20260101_000000_other'), 10)).rejects.toMatchObject({ code: 'RUN_NOT_FOUND' });
    await expect(h.feed.subscribe(c, topics.run('nope'), 10)).rejects.toMatchObject({ code: 'INVALID_RUN_ID' });
    h.feed.unsubscribe(c, RUN);
    h.append('state_change');
    await vi.advanceTimersByTimeAsync(1000);
    expect(h.sent.get(c)).toEqual([]);
  });
});
