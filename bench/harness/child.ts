// Child processes of the bench (`node --import tsx bench/<script>`, IPC): a child calls `serve(handlers, ready)`, or
// `finish(result)` for one result; the parent's `start` resolves with `ready` and `call`s the handlers.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { cpuMs } from './stats.js';

export const ROOT = join(import.meta.dirname, '..', '..');

type Message = { ready?: unknown; id?: number; result?: unknown; error?: string };
type Handlers = Record<string, (args: Record<string, unknown>) => unknown>;

/** What every child answers: `cpu` (the CPU ms it has used), and `stop`, after which it exits. */
const BUILT_IN: Handlers = { cpu: cpuMs, stop: () => {} };

/** In a child: answers each request with what its handler returns (or the error it throws), after sending `{ready}`. */
export function serve(handlers: Handlers, ready: unknown = true): void {
  const all = { ...BUILT_IN, ...handlers };
  const answer = async (id: number, cmd: string, args: Record<string, unknown>) => {
    try {
      const handler = all[cmd];
      if (!handler) throw new Error(`unknown command ${cmd}`);
      process.send!({ id, result: await handler(args) });
    } catch (err) {
      process.send!({ id, error: String(err instanceof Error ? (err.stack ?? err.message) : err) });
    }
    if (cmd === 'stop') setImmediate(() => process.exit(0));
  };
  process.on('message', ({ id, cmd, args }: { id: number; cmd: string; args: Record<string, unknown> }) => void answer(id, cmd, args));
  process.send!({ ready });
}

/** In a one-shot child: hands its one result to `start` (as `ready`) and exits once it is sent. */
export function finish(result: unknown): void {
  process.send!({ ready: result }, () => process.exit(0));
}

export type Child<R = unknown> = Awaited<ReturnType<typeof start<R>>>;

/** Starts `bench/<script>` and waits for its `{ready}`. */
export async function start<R = unknown>(script: string, args: readonly (string | number)[] = [], readyMs = 30_000) {
  const child = spawn(process.execPath, ['--import', 'tsx', join('bench', script), ...args.map(String)], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const pending = new Map<number, (msg: Message) => void>();
  let timer: NodeJS.Timeout | undefined;
  const ready = await new Promise<R>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`bench: ${script} not ready within ${readyMs} ms`)), readyMs);
    child.on('message', (msg: Message) => ('ready' in msg ? resolve(msg.ready as R) : pending.get(msg.id!)?.(msg)));
    child.once('exit', (code, signal) => {
      reject(new Error(`bench: ${script} exited (${signal ?? code})`));
      for (const p of pending.values()) p({ error: `${script} exited (${signal ?? code}) with a request pending` });
    });
  }).finally(() => clearTimeout(timer));
  const kill = () => void (child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'));
  let next = 1;
  const call = <T>(cmd: string, callArgs: Record<string, unknown> = {}, timeoutMs = 120_000) =>
    new Promise<T>((resolve, reject) => {
      const id = next++;
      const timeout = setTimeout(() => (pending.delete(id), reject(new Error(`${script}: no answer to ${cmd} within ${timeoutMs} ms`))), timeoutMs);
      pending.set(id, (msg) => {
        clearTimeout(timeout);
        pending.delete(id);
        if (msg.error !== undefined) reject(new Error(`${script}: ${msg.error}`));
        else resolve(msg.result as T);
      });
      // A child that has exited (or is exiting) answers nothing: the send's error settles the call.
      child.send({ id, cmd, args: callArgs }, (err) => err && pending.get(id)?.({ error: err.message }));
    });
  // Asks the child to `stop` and waits for it to exit; kills it after 10 s.
  const stop = async () => {
    const killer = setTimeout(kill, 10_000);
    await call('stop', {}, 10_000).catch(kill);
    await exited;
    clearTimeout(killer);
  };
  return { ready, call, stop };
}

/** Runs `fn` with a `start` whose children are all stopped when `fn` ends, however it ends. */
export async function withChildren<T>(fn: (startChild: typeof start) => Promise<T>): Promise<T> {
  const children: Child[] = [];
  const startChild = async <R>(...args: Parameters<typeof start>) => {
    const child = await start<R>(...args);
    children.push(child);
    return child;
  };
  try {
    return await fn(startChild);
  } finally {
    await Promise.all(children.map((c) => c.stop()));
  }
}
