// Child processes of the bench: `node --import tsx bench/<script>` with an IPC channel. A child
// calls `serve(handlers, ready)`; the parent's `start` resolves with `ready` and `call`s handlers.
import { spawn } from 'node:child_process';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '..', '..');

interface Request {
  id: number;
  cmd: string;
  args: Record<string, unknown>;
}

/** In a child: answers each request with what its handler returns (or the error it throws), after sending `{ready}`. */
export function serve(handlers: Record<string, (args: Record<string, unknown>) => unknown>, ready: unknown = true): void {
  process.on('message', (req: Request) => {
    Promise.resolve()
      .then(() => {
        const handler = handlers[req.cmd];
        if (!handler) throw new Error(`unknown command ${req.cmd}`);
        return handler(req.args);
      })
      .then(
        (result) => process.send!({ id: req.id, result }),
        (err: unknown) => process.send!({ id: req.id, error: String(err instanceof Error ? (err.stack ?? err.message) : err) }),
      );
  });
  process.send!({ ready });
}

export interface Child<R = unknown> {
  /** What the child sent with `serve(…, ready)`. */
  ready: R;
  call<T>(cmd: string, args?: Record<string, unknown>, timeoutMs?: number): Promise<T>;
  /** Asks the child to `stop` (when it has that handler) and waits for it to exit; kills it after 10 s. */
  stop(): Promise<void>;
  kill(): void;
}

/** Starts `bench/<script>` and waits for its `{ready}` (a child that computes one result sends it as `ready`). */
export async function start<R = unknown>(script: string, args: readonly (string | number)[] = [], opts: { nodeArgs?: string[]; readyMs?: number } = {}): Promise<Child<R>> {
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), '--import', 'tsx', join('bench', script), ...args.map(String)], {
    cwd: ROOT,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let next = 1;
  const pending = new Map<number, (msg: { result?: unknown; error?: string }) => void>();
  const ready = await new Promise<R>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bench: ${script} not ready within ${opts.readyMs ?? 30_000} ms`)), opts.readyMs ?? 30_000);
    child.on('message', (msg: { ready?: R; id?: number; result?: unknown; error?: string }) => {
      if ('ready' in msg) {
        clearTimeout(timer);
        resolve(msg.ready as R);
      } else pending.get(msg.id!)?.(msg);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`bench: ${script} exited (${signal ?? code})`));
      for (const p of pending.values()) p({ error: `${script} exited (${signal ?? code}) with a request pending` });
    });
  });
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const call = <T>(cmd: string, callArgs: Record<string, unknown> = {}, timeoutMs = 120_000) =>
    new Promise<T>((resolve, reject) => {
      const id = next++;
      const timer = setTimeout(() => (pending.delete(id), reject(new Error(`${script}: no answer to ${cmd} within ${timeoutMs} ms`))), timeoutMs);
      pending.set(id, (msg) => {
        clearTimeout(timer);
        pending.delete(id);
        if (msg.error !== undefined) reject(new Error(`${script}: ${msg.error}`));
        else resolve(msg.result as T);
      });
      child.send({ id, cmd, args: callArgs });
    });
  const stop = async () => {
    const timer = setTimeout(kill, 10_000);
    await call('stop', {}, 10_000).catch(() => kill());
    await exited;
    clearTimeout(timer);
  };
  return { ready, call, stop, kill };
}

/** In a one-shot child: hands its one result to `start` and exits once it is sent. */
export function finish(result: unknown): void {
  process.send!({ ready: result }, () => process.exit(0));
}
