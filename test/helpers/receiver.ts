// A webhook receiver on 127.0.0.1, port 0 (or a given one): keeps every request, answers what
// `respond` says (200 by default).
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';

export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  json: { delivery_id: string; event: string; seq: number; run: { run_id: string; site_id: string }; data: { event: string; seq: number } };
}

export interface Receiver {
  url: string;
  port: number;
  received: Received[];
  /** The status to answer the n-th request (0-based) with; null: never answer it. */
  respond: (n: number, r: Received) => number | null;
  /** Resolves once `test` holds over what was received (polled every 20 ms), or rejects after `ms`. */
  until(test: (received: readonly Received[]) => boolean, ms?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startReceiver(port = 0): Promise<Receiver> {
  const received: Received[] = [];
  const self: Partial<Receiver> = { received, respond: () => 200 };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const r: Received = { headers: req.headers, body, json: JSON.parse(body) as Received['json'] };
      const n = received.length;
      received.push(r);
      const status = self.respond!(n, r);
      if (status === null) return;
      res.statusCode = status;
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const actual = (server.address() as { port: number }).port;
  return Object.assign(self, {
    url: `http://127.0.0.1:${actual}/hook`,
    port: actual,
    async until(test: (r: readonly Received[]) => boolean, ms = 10_000) {
      const deadline = Date.now() + ms;
      while (!test(received)) {
        if (Date.now() > deadline) throw new Error(`receiver: condition not met in ${ms} ms; got ${received.length} requests`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  }) as Receiver;
}
