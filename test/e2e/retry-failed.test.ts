// Retry failed in a real browser: a run that finished with failed items offers "Retry failed
// (n)"; clicking it takes the run back to work and the page follows it to completed again, in
// agreement with the API.
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { seriousViolations } from '../helpers/axe.js';
import { useDashboard } from '../helpers/dashboard.js';
import { callApi, runReaches } from '../helpers/service-process.js';
import { until } from '../helpers/until.js';

const API = '/api/v1/automation';

interface RunBody {
  status: string;
  failed_items: number;
  last_seq: number;
  allowed_commands: string[];
}

describe('Retry failed in the dashboard (Debian Chromium)', () => {
  const e2e = useDashboard('rs-e2e-retry-');
  let page: Page;

  beforeAll(async () => {
    page = await e2e.browser.newPage({ viewport: { width: 1200, height: 900 } });
  });

  it('offers Retry failed (n) on a run that finished with failures, and follows the retry to completed', async () => {
    // One attempt per item and half of them failing: the run completes with failed items.
    const options = { seed: 4, delay_ms: 300, items_per_stage: [6, 0, 0, 0, 0, 0, 0], fail_rate: 0.5, max_attempts: 1, concurrency: 2 };
    const res = await callApi<{ data: { run_id: string } }>(e2e.svc, '/runs', { body: { site_id: 'site-5', pipeline: 'content', options } });
    expect(res.status).toBe(201);
    const runId = res.body.data.run_id;
    const finished = await runReaches<RunBody>(e2e.svc, runId, 'completed');
    expect(finished.failed_items).toBeGreaterThan(0);
    expect(finished.allowed_commands).toContain('retry_failed');

    await page.goto(`${e2e.svc.base}/run/?id=${runId}&token=${e2e.svc.token}`);
    await page.locator('[data-connection="live"]').waitFor();
    const button = page.getByRole('button', { name: `Retry failed (${finished.failed_items})` });
    await button.waitFor();
    const card = page.locator('section[aria-label="Processing"]');
    expect(await card.getAttribute('data-state')).toBe('completed');
    expect(await seriousViolations(page)).toEqual([]);
    // Every state the card shows from here on, starting with the one it shows now.
    await page.evaluate(() => {
      const w = window as unknown as { cardStates: string[] };
      const el = document.querySelector('section[aria-label="Processing"]')!;
      w.cardStates = [el.getAttribute('data-state')!];
      new MutationObserver(() => {
        const s = document.querySelector('section[aria-label="Processing"]')?.getAttribute('data-state');
        if (s && w.cardStates.at(-1) !== s) w.cardStates.push(s);
      }).observe(el.parentElement!, { subtree: true, attributes: true, attributeFilter: ['data-state'], childList: true });
    });
    await button.click();

    // The API: the retry ran (a command naming who, the run back to running) and the run completed again.
    type Ev = { event: string; seq: number; command?: string; by?: string; machine_name?: string; payload?: { to_state: string } };
    const since = await until('the retry to finish', async () => {
      const trace = await (await fetch(`${e2e.svc.base}${API}/runs/${runId}/trace`, { headers: { authorization: `Token ${e2e.svc.token}` } })).text();
      const events = trace.trimEnd().split('\n').map((l) => JSON.parse(l) as Ev);
      const at = events.findIndex((e) => e.event === 'command' && e.command === 'retry_failed');
      const after = at === -1 ? [] : events.slice(at);
      return after.some((e) => e.event === 'state_change' && e.machine_name === 'run' && e.payload!.to_state === 'completed') ? after : undefined;
    });
    expect(since[0]).toMatchObject({ event: 'command', command: 'retry_failed', by: 'admin' });
    expect(since.filter((e) => e.event === 'state_change' && e.machine_name === 'run').map((e) => e.payload!.to_state)).toEqual(['running', 'completed']);
    const again = (await callApi<{ data: RunBody }>(e2e.svc, `/runs/${runId}`)).body.data;
    expect(again.status).toBe('completed');
    expect(again.failed_items).toBeLessThanOrEqual(finished.failed_items);

    // The page: it went back to running and is completed again, its button agreeing with the API.
    await page.waitForFunction(() => (window as unknown as { cardStates: string[] }).cardStates.at(-1) === 'completed' && (window as unknown as { cardStates: string[] }).cardStates.includes('running'));
    expect(await page.evaluate(() => (window as unknown as { cardStates: string[] }).cardStates)).toEqual(['completed', 'running', 'completed']);
    if (again.failed_items > 0) {
      await page.getByRole('button', { name: `Retry failed (${again.failed_items})` }).waitFor();
    } else {
      await page.waitForFunction(() => ![...document.querySelectorAll('button')].some((b) => b.textContent?.startsWith('Retry failed')));
    }
    expect(await page.getByRole('toolbar', { name: 'Run controls' }).getByRole('button', { name: 'Close' }).isEnabled()).toBe(true);
  });
});
