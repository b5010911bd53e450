import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { seriousViolations } from '../helpers/axe.js';
import { apiOf, useDashboard } from '../helpers/dashboard.js';

describe('the Schedules page in a real browser', () => {
  const e2e = useDashboard('rs-e2e-schedules-');
  let page: Page;

  const api = async (path: string) => apiOf(e2e.svc)<{ data: Record<string, unknown>[] }>(path);

  beforeAll(async () => {
    page = await e2e.browser.newPage({ viewport: { width: 1280, height: 900 } });
  });

  it('makes a schedule from its form, shows its next fire time and its runs, pauses, resumes and deletes it', { timeout: 60_000 }, async () => {
    await page.goto(`${e2e.svc.base}/schedules/?token=${e2e.svc.token}`);
    await page.waitForURL((u) => !u.searchParams.has('token'));
    await page.getByText('No schedules yet.').waitFor();
    await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Schedules' }).waitFor();

    const form = page.getByRole('form', { name: 'Add a schedule' });
    await form.getByLabel('Site').fill('site-5');
    await form.getByLabel('Pipeline').selectOption('face_processor');
    // A refused cron: the service's message, and nothing is made.
    await form.getByLabel('Cron').fill('* * *');
    await form.getByRole('button', { name: 'Add schedule' }).click();
    await expect.poll(() => form.getByRole('alert').textContent()).toMatch(/`cron`/);
    expect((await api('/schedules')).data).toEqual([]);

    await form.getByLabel('Cron').fill('*/2 * * * * *');
    await form.getByLabel('Overlap').selectOption('allow');
    await form.getByLabel('Options (JSON)').fill('{"delay_ms": 0, "items_per_stage": 1}');
    await form.getByRole('button', { name: 'Add schedule' }).click();
    const row = page.locator('table[aria-label="Schedules"] tbody tr[data-schedule]');
    await row.first().waitFor();
    const id = await row.first().getAttribute('data-schedule');
    expect(await row.first().textContent()).toContain('*/2 * * * * *');
    const next = Date.parse((await row.first().locator('td[data-next]').getAttribute('data-next'))!);
    expect(next % 2000).toBe(0);
    expect(await seriousViolations(page)).toEqual([]);

    // The page reads the list again after the fire: the run shows among the last runs, linked.
    const link = row.first().locator('a[href^="/run/?id=run_"]');
    await link.first().waitFor({ timeout: 15_000 });
    const runId = new URL(`${e2e.svc.base}${await link.first().getAttribute('href')}`).searchParams.get('id');
    const shown = (await api(`/schedules`)).data[0] as { last_runs: { run_id: string }[] };
    expect(shown.last_runs.map((f) => f.run_id)).toContain(runId);
    expect(await seriousViolations(page)).toEqual([]);

    await row.first().getByRole('button', { name: 'Pause' }).click();
    await page.locator(`tr[data-schedule="${id}"][data-status="paused"]`).waitFor();
    expect(await row.first().locator('td[data-next]').getAttribute('data-next')).toBe('');
    await row.first().getByRole('button', { name: 'Resume' }).click();
    await page.locator(`tr[data-schedule="${id}"][data-status="active"]`).waitFor();
    await row.first().getByRole('button', { name: 'Delete' }).click();
    await page.getByText('No schedules yet.').waitFor();
    expect((await api('/schedules')).data).toEqual([]);
  });
});
