import type { ChildProcess } from 'node:child_process';

// Request/reply over a child process's IPC channel: the bench's parent drives the server and
// the client fleet through phases, and each answers when the step is done.

export interface Request {
  id: number;
  cmd: string;
  [arg: string]: unknown;
}

type Handler = (req: Request) => unknown;

/** In a child: answers each request with what its handler returns (or the error it throws). */
export function serve(handlers: Record<string, Handler>): void {
  process.on('message', (req: Request) => {
    const handler = handlers[req.cmd];
    Promise.resolve()
      .then(() => {
        if (!handler) throw new Error(`unknown command ${req.cmd}`);
        return handler(req);
      })
      .then(
        (result) => process.send!({ id: req.id, result }),
        (err: unknown) => process.send!({ id: req.id, error: String(err instanceof Error ? (err.stack ?? err.message) : err) }),
      );
  });
}

/** In the parent: a function that sends a request to the child and resolves with its answer. */
export function client(child: ChildProcess, name: string): <T>(cmd: string, args?: Record<string, unknown>, timeoutMs?: number) => Promise<T> {
  let next = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  child.on('message', (msg: { id: number; result?: unknown; error?: string }) => {
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (msg.error !== undefined) p.reject(new Error(`${name}: ${msg.error}`));
    else p.resolve(msg.result);
  });
  child.on('exit', (code, signal) => {
    for (const p of pending.values()) p.reject(new Error(`${name} exited (${signal ?? code}) with a request pending`));
    pending.clear();
  });
  return <T>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 60_000) =>
    new Promise<T>((resolve, reject) => {
      const id = next++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`${name}: no answer to ${cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      child.send({ id, cmd, ...args });
    });
}
