import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { client } from './hub-ipc.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export interface Proc {
  call: ReturnType<typeof client>;
  /** What the child sent first: `{ready: …}`. */
  ready: unknown;
  kill(): void;
}

/** Starts `node --import tsx bench/<script>` with an IPC channel and waits for its `{ready}`. */
export async function start(script: string, args: string[] = [], nodeArgs: string[] = []): Promise<Proc> {
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', `bench/${script}`, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const ready = await new Promise<unknown>((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`bench: ${script} not ready within 30 s`)), 30_000);
    child.once('message', (msg: { ready?: unknown }) => {
      clearTimeout(timer);
      resolvePromise(msg.ready);
    });
    child.once('exit', (code, signal) => reject(new Error(`bench: ${script} exited (${signal ?? code}) before it was ready`)));
  });
  return {
    call: client(child, script),
    ready,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
