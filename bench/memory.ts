import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MemoryChildResult } from './memory-child.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TIMEOUT_MS = 120_000;

/** Runs bench/memory-child.ts in a clean Node process with `gc` exposed and returns what it measured. */
export function measureMemory(dataDir: string, runs: number): Promise<MemoryChildResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', 'bench/memory-child.ts', dataDir, String(runs)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`bench: memory-child exited with ${signal ?? `code ${code}`}`));
      try {
        resolvePromise(JSON.parse(out.trim().split('\n').pop() ?? '') as MemoryChildResult);
      } catch {
        reject(new Error(`bench: memory-child printed no result: ${JSON.stringify(out.slice(-500))}`));
      }
    });
  });
}
