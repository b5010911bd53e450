// @vitest-environment jsdom
// The runs list's feed against a scripted server: one listing, then site:* only, no polling.
import { act, cleanup, render, screen } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ServerMessage } from '../../service/hub/frames.js';
import type { Api } from '../../web/lib/api.js';
import { useSiteFeed } from '../../web/lib/use-site-feed.js';
import { runView } from './fixtures.js';

class FakeSocket {
  static all: FakeSocket[] = [];
  sent: unknown[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((m: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close() {}
  serve(m: ServerMessage) {
    act(() => this.onmessage?.({ data: JSON.stringify(m) }));
  }
}

function List({ api }: { api: Api }) {
  const feed = useSiteFeed('tok', api);
  return (
    <ul data-live={String(feed.live)} data-older={String(feed.older)} onClick={feed.loadOlder}>
      {[...feed.runs.values()].map((r) => <li key={r.run_id}>{`${r.run_id} ${r.site_id} ${r.status}`}</li>)}
    </ul>
  );
}

describe('runs list feed', () => {
  beforeEach(() => {
    FakeSocket.all = [];
    vi.stubGlobal('WebSocket', FakeSocket);
  });
  afterEach(() => {
    cleanup();
    vi.unstubAllGlobals();
    vi.useRealTimers();
  });

  it('lists once, then follows site:* for every site, and never polls', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'setInterval'] });
    const runs = vi.fn(() => Promise.resolve([runView({ run_id: 'old', site_id: '5', status: 'completed', last_seq: 9, closed_at: '2025-01-01T00:00:00.000Z' })]));
    render(<List api={{ runs } as unknown as Api} />);
    await act(async () => undefined);
    const ws = FakeSocket.all.at(-1)!;
    act(() => ws.onopen?.());
    expect(ws.sent).toEqual([{ type: 'subscribe', topic: 'site:*' }]);
    ws.serve({ type: 'snapshot', topic: 'site:*', runs: [runView({ run_id: 'a', site_id: 'site-9', status: 'running', last_seq: 3 })] });
    ws.serve({ type: 'run', topic: 'site:*', seq: 5, run: runView({ run_id: 'b', site_id: '5', status: 'running', last_seq: 5 }) });
    ws.serve({ type: 'run', topic: 'site:*', seq: 7, run: runView({ run_id: 'a', site_id: 'site-9', status: 'paused', last_seq: 7 }) });
    // An older description that arrives late changes nothing.
    ws.serve({ type: 'run', topic: 'site:*', seq: 4, run: runView({ run_id: 'a', site_id: 'site-9', status: 'running', last_seq: 4 }) });
    expect(screen.getAllByRole('listitem').map((li) => li.textContent).sort()).toEqual(['a site-9 paused', 'b 5 running', 'old 5 completed']);
    expect(screen.getByRole('list').getAttribute('data-live')).toBe('true');
    await act(async () => void vi.advanceTimersByTime(60_000));
    expect(runs).toHaveBeenCalledTimes(1);
    expect(FakeSocket.all).toHaveLength(1);
  });

  it('pages older runs in with `before` while the listing comes back full', async () => {
    const page = (from: number, n: number) => Array.from({ length: n }, (_, i) => runView({ run_id: `r${String(from - i).padStart(4, '0')}` }));
    const runs = vi.fn((q: { before?: string }) => Promise.resolve(q.before === undefined ? page(1000, 500) : page(500, 120)));
    render(<List api={{ runs } as unknown as Api} />);
    await act(async () => undefined);
    const list = screen.getByRole('list');
    expect(list.getAttribute('data-older')).toBe('true');
    await act(async () => list.click());
    expect(runs).toHaveBeenLastCalledWith({ limit: 500, before: 'r0501' });
    expect(screen.getAllByRole('listitem')).toHaveLength(620);
    expect(list.getAttribute('data-older')).toBe('false');
  });

  it('after a drop, reconnects with backoff and lists once more', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    const runs = vi.fn(() => Promise.resolve([]));
    render(<List api={{ runs } as unknown as Api} />);
    await act(async () => undefined);
    const first = FakeSocket.all.at(-1)!;
    act(() => first.onopen?.());
    first.serve({ type: 'snapshot', topic: 'site:*', runs: [] });
    act(() => first.onclose?.());
    expect(screen.getByRole('list').getAttribute('data-live')).toBe('false');
    await act(async () => void vi.runOnlyPendingTimers());
    const again = FakeSocket.all.at(-1)!;
    expect(again).not.toBe(first);
    act(() => again.onopen?.());
    again.serve({ type: 'snapshot', topic: 'site:*', runs: [runView({ run_id: 'c' })] });
    await act(async () => undefined);
    expect(runs).toHaveBeenCalledTimes(2);
    expect(screen.getAllByRole('listitem')).toHaveLength(1);
  });
});
