// @vitest-environment jsdom
// The run page's stream against a scripted server: the card shows the server's views and
// nothing folded from events; the events only grow the log; a reconnect resumes the log.
import { act, cleanup, render, screen, within } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ServerMessage } from '../../service/hub/frames.js';
import type { Api } from '../../web/lib/api.js';
import { LOG_EVENTS, useRunStream, VIEW_HZ } from '../../web/lib/use-run-stream.js';
import { ProcessingCard } from '../../web/ui/ProcessingCard.js';
import { activity, processed, processingView, runView } from './fixtures.js';

class FakeSocket {
  static all: FakeSocket[] = [];
  sent: unknown[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((m: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  closed = false;
  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.closed = true;
  }
  open() {
    act(() => this.onopen?.());
  }
  serve(m: ServerMessage) {
    act(() => this.onmessage?.({ data: JSON.stringify(m) }));
  }
  drop() {
    act(() => this.onclose?.());
  }
}

const RUN = 'run_20250101_000000_manual';
const topic = `run:${RUN}`;
const api = {
  trace: () => Promise.resolve([]),
  run: () => Promise.reject(new Error('no polling here')),
  processing: () => Promise.reject(new Error('no polling here')),
} as unknown as Api;

let last: ReturnType<typeof useRunStream> | null = null;
function Page() {
  const stream = useRunStream(RUN, 'tok', api);
  last = stream;
  const m = stream.model;
  return (
    <>
      <div data-testid="conn">{stream.connection.state}</div>
      {m && <ProcessingCard run={m.view.run} processing={m.view.processing} />}
      <div data-testid="log">{m?.log.events.length ?? 0}</div>
    </>
  );
}

const upNext = () => within(screen.getByText(/Up next/).parentElement!).getAllByRole('listitem').map((li) => li.textContent);
const frames = async () => act(() => new Promise<void>((r) => requestAnimationFrame(() => r())));

describe('run stream: views from the server, events for the log', () => {
  beforeEach(() => {
    FakeSocket.all = [];
    localStorage.clear();
    vi.stubGlobal('WebSocket', FakeSocket);
  });
  afterEach(() => {
    cleanup();
    vi.unstubAllGlobals();
  });

  it('subscribes to the run twice on one socket: in view mode at VIEW_HZ, and for events', () => {
    render(<Page />);
    const ws = FakeSocket.all.at(-1)!;
    ws.open();
    expect(ws.sent).toEqual([
      { type: 'subscribe', topic, mode: 'view', max_hz: VIEW_HZ },
      { type: 'subscribe', topic },
    ]);
  });

  it('renders the newest view as sent, whatever the events say, and is live once both have come', async () => {
    render(<Page />);
    const ws = FakeSocket.all.at(-1)!;
    ws.open();
    ws.serve({ type: 'snapshot', topic, seq: 3, run: { ...runView({ last_seq: 3 }), processing: processingView() } });
    expect(screen.getByTestId('conn').textContent).toBe('resyncing');
    // An item lands, and then the view the server made after it.
    ws.serve({ type: 'event', topic, seq: 4, event: processed(4, 2, 2) });
    await frames();
    expect(screen.queryByLabelText('Processing')).toBeNull();
    const view = processingView({ processed_items: 2, percentage: 50, currently_processing: [{ id: 3, title: 'item 3' }], up_next: [{ id: 4, title: 'item 4' }], remaining_count: 2 });
    ws.serve({ type: 'view', topic, seq: 4, run: runView({ last_seq: 4 }), processing: { ...view, run_id: RUN } });
    expect(screen.getByTestId('conn').textContent).toBe('live');
    expect(upNext()).toEqual(['item 4']);
    expect(screen.getByRole('progressbar').getAttribute('aria-valuenow')).toBe('50');
    // Events that run ahead of the views change the log, never the card.
    ws.serve({ type: 'event', topic, seq: 5, event: processed(5, 3, 3) });
    ws.serve({ type: 'event', topic, seq: 6, event: activity(6) });
    await frames();
    expect(screen.getByTestId('log').textContent).toBe('3');
    expect(upNext()).toEqual(['item 4']);
    expect(screen.getByRole('progressbar').getAttribute('aria-valuenow')).toBe('50');
    expect(last!.model!.view.seq).toBe(4);
  });

  it('holds the last LOG_EVENTS events of a long run, and goes on from the newest', async () => {
    render(<Page />);
    const ws = FakeSocket.all.at(-1)!;
    ws.open();
    ws.serve({ type: 'snapshot', topic, seq: 0, run: { ...runView({ last_seq: 0 }), processing: processingView() } });
    ws.serve({ type: 'view', topic, seq: 0, run: runView({ last_seq: 0 }), processing: { ...processingView(), run_id: RUN } });
    const total = LOG_EVENTS + 500;
    act(() => {
      for (let seq = 1; seq <= total; seq++) ws.onmessage?.({ data: JSON.stringify({ type: 'event', topic, seq, event: activity(seq) }) });
    });
    await frames();
    const seqs = last!.model!.log.events.map((e) => e.seq);
    expect(seqs).toHaveLength(LOG_EVENTS);
    expect(seqs[0]).toBe(total - LOG_EVENTS + 1);
    expect(seqs.at(-1)).toBe(total);
    expect(last!.model!.log.seq).toBe(total);
  });

  it('after a drop, resumes the log after its last seq and takes the server’s view again', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'requestAnimationFrame', 'cancelAnimationFrame'] });
    try {
      render(<Page />);
      const ws = FakeSocket.all.at(-1)!;
      ws.open();
      ws.serve({ type: 'snapshot', topic, seq: 2, run: { ...runView({ last_seq: 2 }), processing: processingView() } });
      ws.serve({ type: 'view', topic, seq: 2, run: runView({ last_seq: 2 }), processing: { ...processingView(), run_id: RUN } });
      ws.serve({ type: 'event', topic, seq: 3, event: activity(3) });
      act(() => void vi.advanceTimersToNextFrame());
      expect(screen.getByTestId('conn').textContent).toBe('live');
      ws.drop();
      expect(screen.getByTestId('conn').textContent).toBe('reconnecting');
      act(() => void vi.runOnlyPendingTimers());
      const again = FakeSocket.all.at(-1)!;
      expect(again).not.toBe(ws);
      again.open();
      expect(again.sent).toEqual([
        { type: 'subscribe', topic, mode: 'view', max_hz: VIEW_HZ },
        { type: 'subscribe', topic, after_seq: 3 },
      ]);
      // The replay catches the log up to the view: live again, the card as the new view says.
      again.serve({ type: 'view', topic, seq: 4, run: runView({ status: 'paused', last_seq: 4, allowed_commands: ['resume', 'cancel'] }), processing: { ...processingView({ status: 'paused', currently_processing: [] }), run_id: RUN } });
      expect(screen.getByTestId('conn').textContent).toBe('resyncing');
      again.serve({ type: 'event', topic, seq: 4, event: activity(4) });
      expect(screen.getByTestId('conn').textContent).toBe('live');
      expect(screen.getByLabelText('Processing').getAttribute('data-state')).toBe('paused');
      act(() => void vi.advanceTimersToNextFrame());
      expect(last!.model!.log.events.map((e) => e.seq)).toEqual([3, 4]);
    } finally {
      vi.useRealTimers();
    }
  });
});
