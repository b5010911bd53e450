// The worker examples of docs/workers.md, run exactly as written against a real service: each
// serves a face_processor_workers run to completion and stops on SIGTERM.
import { spawn } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../helpers/engine.js';
import { startService, type ServiceProcess } from '../../helpers/service-process.js';
import { call } from '../../helpers/workers.js';
import { until } from '../../helpers/until.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const ADMIN = 'admin-token-for-doc-examples';
const DOC = readFileSync(join(ROOT, 'docs', 'workers.md'), 'utf8');

/** The fenced block of `lang` whose first line names `file`. */
function example(lang: string, file: string): string {
  const blocks = [...DOC.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
  const found = blocks.find((b) => b.split('\n')[0]!.includes(file));
  if (!found) throw new Error(`docs/workers.md has no ${lang} block naming ${file}`);
  return found;
}

let svc: ServiceProcess;
const dir = tempDir('rs-docs-workers-');

beforeAll(async () => {
  svc = await startService(join(dir.path, 'data'), { RUNSTATE_ADMIN_TOKEN: ADMIN });
});
afterAll(async () => {
  await svc?.stop();
  dir.remove();
});

async function serveOneRun(command: string, args: string[], cwd: string): Promise<void> {
  const child = spawn(command, args, { cwd, env: { ...process.env, RUNSTATE_URL: svc.base, RUNSTATE_TOKEN: ADMIN }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    const started = await call(svc.base, ADMIN, 'POST', '/api/v1/automation/runs', {
      site_id: '5',
      pipeline: 'face_processor_workers',
      options: { items_per_stage: 2 },
    });
    const runId = (started.body.data as { run_id: string }).run_id;
    const run = await until(
      `the run completed (worker output: ${out})`,
      async () => {
        const data = (await call(svc.base, ADMIN, 'GET', `/api/v1/automation/runs/${runId}`)).body.data as {
          status: string;
          stages: { processed_items: number; credits_used: number }[];
        };
        return data.status === 'completed' ? data : undefined;
      },
      60_000,
    );
    expect(run.stages.map((s) => s.processed_items)).toEqual([2, 2, 2, 2, 2]);
    expect(run.stages.every((s) => Math.abs(s.credits_used - 0.2) < 1e-9)).toBe(true);
  } finally {
    child.kill('SIGTERM');
  }
  expect(await exited, out).toBe(0);
}

describe('docs/workers.md examples', () => {
  it('runs the Python worker as written', async () => {
    const cwd = tempDir('rs-py-example-');
    try {
      writeFileSync(join(cwd.path, 'worker.py'), example('python', 'worker.py'));
      copyFileSync(join(ROOT, 'sdk', 'python', 'runstate_worker.py'), join(cwd.path, 'runstate_worker.py'));
      await serveOneRun('python3', ['worker.py'], cwd.path);
    } finally {
      cwd.remove();
    }
  });

  it('runs the TypeScript worker as written', async () => {
    const cwd = tempDir('rs-ts-example-');
    try {
      writeFileSync(join(cwd.path, 'worker.ts'), example('ts', 'worker.ts'));
      writeFileSync(join(cwd.path, 'package.json'), '{"type": "module"}\n');
      copyFileSync(join(ROOT, 'sdk', 'ts', 'runstate-worker.ts'), join(cwd.path, 'runstate-worker.ts'));
      await serveOneRun(process.execPath, ['--import', join(ROOT, 'node_modules', 'tsx', 'dist', 'esm', 'index.mjs'), 'worker.ts'], cwd.path);
    } finally {
      cwd.remove();
    }
  });
});
