// A TCP proxy for fault tests: forwards to a target until told to hang, then forwards nothing
// more, in either direction, on any connection, old or new, without closing any of them: the
// network of a connection that hangs rather than closes. `resume` forwards again on new
// connections; the hung ones stay hung until their client gives up on them.
import net from 'node:net';

export interface TcpProxy {
  readonly port: number;
  hang(): void;
  resume(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  let hung = false;
  const conns = new Set<{ client: net.Socket; upstream: net.Socket; hung: boolean }>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, targetHost);
    const conn = { client, upstream, hung };
    conns.add(conn);
    const forward = (from: net.Socket, to: net.Socket) => {
      from.on('data', (chunk) => {
        // A hung connection reads and drops: nothing reaches the other side, nothing is closed.
        if (!conn.hung) to.write(chunk);
      });
    };
    forward(client, upstream);
    forward(upstream, client);
    const end = () => {
      conns.delete(conn);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    hang() {
      hung = true;
      for (const c of conns) c.hung = true;
    },
    resume() {
      hung = false;
    },
    async close() {
      for (const c of conns) {
        c.client.destroy();
        c.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
