import type { Socket } from 'node:net';
import { WebSocket } from 'ws';

export interface Msg {
  type: string;
  topic?: string;
  seq?: number;
  event?: { event: string; seq: number; [k: string]: unknown };
  run?: Record<string, unknown>;
  runs?: Record<string, unknown>[];
  processing?: Record<string, unknown> | null;
  code?: string;
  message?: string;
}

/** A test client on a real socket: keeps every message, can stop reading like a stalled browser. */
export async function wsClient(url: string, headers: Record<string, string> = {}) {
  const ws = new WebSocket(url, { headers });
  const messages: Msg[] = [];
  /** performance.now() when each message arrived, index for index. */
  const receivedAt: number[] = [];
  let pings = 0;
  const waiters: { test: () => boolean; resolve: () => void; reject: (err: Error) => void }[] = [];
  const check = () => {
    for (const w of [...waiters]) {
      if (w.test()) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  ws.on('message', (data) => {
    messages.push(JSON.parse(String(data)) as Msg);
    receivedAt.push(performance.now());
    check();
  });
  ws.on('ping', () => (pings += 1));
  let closedWith: { code: number; reason: string } | null = null;
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => {
      closedWith = { code, reason: String(reason) };
      resolve(closedWith);
      // What is awaited now can never come: say so rather than hang until the test times out.
      check();
      for (const w of waiters.splice(0)) w.reject(closedError());
    }),
  );
  const closedError = () =>
    new Error(`the socket closed (${closedWith!.code} ${closedWith!.reason}) before the awaited messages came; last: ${JSON.stringify(messages.at(-1) ?? null).slice(0, 300)}`);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode })));
  });
  return {
    ws,
    messages,
    receivedAt,
    closed,
    get pings() {
      return pings;
    },
    send(msg: unknown) {
      ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
    },
    /** Resolves once `test` holds over the messages received so far (now or later); rejects if the socket closes first. */
    until(test: (messages: Msg[]) => boolean): Promise<void> {
      if (test(messages)) return Promise.resolve();
      if (closedWith) return Promise.reject(closedError());
      return new Promise((resolve, reject) => waiters.push({ test: () => test(messages), resolve, reject }));
    },
    events(topic?: string) {
      return messages.filter((m) => m.type === 'event' && (topic === undefined || m.topic === topic));
    },
    /** Stops reading from the socket: the server's writes pile up in kernel buffers. */
    stall() {
      (ws as unknown as { _socket: Socket })._socket.pause();
    },
    unstall() {
      (ws as unknown as { _socket: Socket })._socket.resume();
    },
    close() {
      ws.terminate();
    },
  };
}

export type WsClient = Awaited<ReturnType<typeof wsClient>>;
