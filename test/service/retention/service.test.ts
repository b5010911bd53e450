import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../helpers/engine.js';
import { startService } from '../../helpers/service-process.js';

const P = '/api/v1/automation';

describe('RUNSTATE_RETENTION in the service', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('deletes a finished run and its trace directory once its retention has passed; after_seq on it is then 404', { timeout: 30_000 }, async () => {
    const dir = tempDir();
    cleanup.push(() => dir.remove());
    const svc = await startService(dir.path, { RUNSTATE_RETENTION: '1s', RUNSTATE_RETENTION_SWEEP_MS: '200' });
    cleanup.push(() => svc.stop());
    const headers = { authorization: `Token ${svc.token}`, 'content-type': 'application/json' };
    const started = await fetch(`${svc.base}${P}/runs`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ site_id: 'site-1', pipeline: 'face_processor', options: { delay_ms: 0, items_per_stage: 1 } }),
    });
    const run = ((await started.json()) as { data: { run_id: string; account_id?: string } }).data;
    const runDir = join(dir.path, 'logs', 'default', 'site-1', run.run_id);
    const trace = () => fetch(`${svc.base}${P}/runs/${run.run_id}/trace?after_seq=0`, { headers: { authorization: headers.authorization } });
    const deadline = Date.now() + 20_000;
    let sawDir = false;
    for (;;) {
      sawDir ||= existsSync(runDir);
      const res = await trace();
      if (res.status === 404) {
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe('RUN_NOT_FOUND');
        break;
      }
      await res.arrayBuffer();
      if (Date.now() > deadline) throw new Error('the run was never deleted');
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(sawDir).toBe(true);
    expect(existsSync(runDir)).toBe(false);
    const metrics = await (await fetch(`${svc.base}/metrics`)).text();
    expect(metrics).toMatch(/^runstate_retention_deleted_runs_total 1$/m);
  });
});
