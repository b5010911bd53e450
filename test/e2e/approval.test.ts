// The approval gate in a real browser (Debian Chromium): the run page shows what waits for whom,
// approves or rejects with a reason, follows the run on from the live view, and says who did it.
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { seriousViolations } from '../helpers/axe.js';
import { apiOf, ARTIFACTS, useDashboard, watchProblems } from '../helpers/dashboard.js';

const REVIEW = 7;
/** Review → Publish waits for approval; the stages before it run at once. */
const OPTIONS = { seed: 3, delay_ms: 1, items_per_stage: [2, 1, 0, 1, 0, 0, 2], review: true };

interface Run {
  run_id: string;
  status: string;
  current_stage: number | null;
  allowed_commands: string[];
  stages: { processed_items: number }[];
}

describe('approval gates in the dashboard (Debian Chromium)', () => {
  const e2e = useDashboard('rs-e2e-approval-');
  let api: ReturnType<typeof apiOf>;

  beforeAll(() => {
    api = apiOf(e2e.svc);
  });

  /** A content run held at its gate, as the API says. */
  async function gatedRun(): Promise<string> {
    const runId = (await api<{ data: Run }>('/runs', { site_id: 'site-5', pipeline: 'content', options: OPTIONS })).data.run_id;
    await expect.poll(async () => (await api<{ data: Run }>(`/runs/${runId}`)).data.status, { timeout: 20_000, interval: 50 }).toBe('awaiting_approval');
    return runId;
  }

  async function openRun(tab: Page, runId: string) {
    await tab.goto(`${e2e.svc.base}/run/?id=${runId}&token=${e2e.svc.token}`);
    await tab.locator('[data-connection="live"]').waitFor();
    await tab.locator('section[aria-label="Processing"][data-state="awaiting_approval"]').waitFor();
    return tab.getByRole('region', { name: 'Waiting for approval' });
  }

  /** The log row of the run's command event (the log renders only the rows in view: scroll to it). */
  async function commandRow(tab: Page, runId: string): Promise<string> {
    const trace = await (await fetch(`${e2e.svc.base}/api/v1/automation/runs/${runId}/trace`, { headers: { authorization: `Token ${e2e.svc.token}` } })).text();
    const command = trace.trim().split('\n').map((l) => JSON.parse(l) as { seq: number; event: string }).find((e) => e.event === 'command')!;
    await tab.locator('[role="log"]').evaluate((el, seq) => (el.scrollTop = Math.max(0, (seq - 3) * 22)), command.seq);
    const row = tab.locator(`[role="log"] [data-seq="${command.seq}"] .log-text`);
    await row.waitFor();
    return (await row.textContent()) ?? '';
  }

  const focused = (tab: Page) =>
    tab.evaluate(() => {
      const el = document.activeElement as HTMLElement | null;
      return { text: el?.textContent ?? '', outline: el ? getComputedStyle(el).outlineStyle : 'none' };
    });

  it('shows the stage that waits, approves by keyboard with a reason, completes, and the log names who', async () => {
    const runId = await gatedRun();
    const tab = await e2e.browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    watchProblems(tab, problems);
    const panel = await openRun(tab, runId);

    // The card, the panel and GET /runs/:id agree on where the run waits.
    const run = (await api<{ data: Run }>(`/runs/${runId}`)).data;
    expect(run).toMatchObject({ status: 'awaiting_approval', current_stage: REVIEW });
    expect(await tab.locator('.card-status').textContent()).toBe('Awaiting approval');
    expect(await tab.locator('.card-stage').textContent()).toBe(`Stage ${REVIEW} of 7: Review → Publish`);
    expect(await panel.getAttribute('data-approval-stage')).toBe(String(REVIEW));
    const text = (await panel.textContent()) ?? '';
    expect(text).toContain('Review → Publish');
    expect(text).toContain('review_to_publish');
    // What the items API knows of the stage: not loaded until it starts.
    const items = await api<{ total_items: number | null }>(`/runs/${runId}/items?stage=${REVIEW}`);
    expect(items.total_items).toBeNull();
    expect(await panel.locator('[data-approval-items]').textContent()).toBe('Its items are loaded once it is approved.');
    expect(await panel.getByRole('button', { name: 'Approve' }).isEnabled()).toBe(true);
    expect(await panel.getByRole('button', { name: 'Reject' }).isEnabled()).toBe(true);

    // A refusal from the API is said in the page, and the run keeps waiting: here the service
    // really answers 400 (the request's reason is made an object on its way).
    await tab.route('**/approve', (route) => route.continue({ postData: JSON.stringify({ reason: { text: 'no' } }) }));
    await panel.getByRole('button', { name: 'Approve' }).click();
    await panel.getByRole('alert').waitFor();
    expect(await panel.getByRole('alert').textContent()).toMatch(/^Approve failed: /);
    expect((await api<{ data: Run }>(`/runs/${runId}`)).data.status).toBe('awaiting_approval');
    await tab.unroute('**/approve');

    // By keyboard: the reason, Tab to Approve (a visible focus ring), Enter.
    await panel.getByLabel('Reason (optional, recorded in the log)').fill('looks good');
    await tab.keyboard.press('Tab');
    const f = await focused(tab);
    expect(f.text).toBe('Approve');
    expect(f.outline).not.toBe('none');
    await tab.keyboard.press('Enter');

    // The live view moves the card on to the end; the panel goes with the wait.
    await tab.locator('section[aria-label="Processing"][data-state="completed"]').waitFor({ timeout: 20_000 });
    expect(await tab.getByRole('region', { name: 'Waiting for approval' }).count()).toBe(0);
    const done = (await api<{ data: Run }>(`/runs/${runId}`)).data;
    expect(done.status).toBe('completed');
    expect(done.stages[REVIEW - 1]!.processed_items).toBe(2);
    expect(await commandRow(tab, runId)).toBe('approve by admin (looks good)');
    expect(await tab.locator('[aria-label="Stages"] li').nth(REVIEW - 1).getAttribute('data-stage-state')).toBe('completed');
    // The one 400 is the one this test made.
    expect(problems.filter((p) => !/400/.test(p) || !/\/approve/.test(p))).toEqual([]);
    await tab.close();
  });

  it('rejects after asking, cancels the run, and the log names who and why', async () => {
    const runId = await gatedRun();
    const tab = await e2e.browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    watchProblems(tab, problems);
    const panel = await openRun(tab, runId);
    await panel.getByLabel('Reason (optional, recorded in the log)').fill('off brand');

    // The first press asks, and puts the focus on the answer; Escape goes back to Reject.
    await panel.getByRole('button', { name: 'Reject' }).click();
    const ask = panel.getByRole('group', { name: 'Reject and cancel this run?' });
    await ask.waitFor();
    await expect.poll(async () => (await focused(tab)).text).toBe('Yes, reject');
    await tab.keyboard.press('Escape');
    await expect.poll(async () => (await focused(tab)).text).toBe('Reject');
    expect((await api<{ data: Run }>(`/runs/${runId}`)).data.status).toBe('awaiting_approval');

    await panel.getByRole('button', { name: 'Reject' }).click();
    await ask.getByRole('button', { name: 'Yes, reject' }).click();
    await tab.locator('section[aria-label="Processing"][data-state="cancelled"]').waitFor({ timeout: 20_000 });
    expect((await api<{ data: Run }>(`/runs/${runId}`)).data.status).toBe('cancelled');
    expect(await commandRow(tab, runId)).toBe('reject by admin (off brand)');
    expect(await tab.locator('[aria-label="Stages"] li').nth(REVIEW - 1).getAttribute('data-stage-state')).toBe('pending');
    expect(problems).toEqual([]);
    await tab.close();
  });

  it('has no serious or critical accessibility violation with the panel shown, light and dark, at 1280 and 375 px, and no console error', async () => {
    const runId = await gatedRun();
    const problems: string[] = [];
    for (const colorScheme of ['light', 'dark'] as const) {
      for (const width of [1280, 375]) {
        const tab = await e2e.browser.newPage({ viewport: { width, height: 900 }, colorScheme });
        const at = `${colorScheme} ${width}`;
        watchProblems(tab, problems, at);
        const panel = await openRun(tab, runId);
        await tab.locator('.insights .items, .insights p.muted:not(.items-loading)').first().waitFor();
        // The README's picture (npm run screenshots copies it to docs/screenshots/).
        if (colorScheme === 'light' && width === 1280) await tab.screenshot({ path: join(ARTIFACTS, 'readme-awaiting-approval.png') });
        for (const v of await seriousViolations(tab)) problems.push(`${at}: ${v.impact} ${v.id} (${v.help}) at ${v.nodes.join(' ')}`);
        // And with Reject asking.
        await panel.getByRole('button', { name: 'Reject' }).click();
        await panel.getByRole('button', { name: 'Yes, reject' }).waitFor();
        for (const v of await seriousViolations(tab)) problems.push(`${at} asking: ${v.impact} ${v.id} (${v.help}) at ${v.nodes.join(' ')}`);
        const overflow = await tab.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        if (overflow > 1) problems.push(`${at}: the page is ${overflow}px wider than the screen`);
        await tab.close();
      }
    }
    expect(problems).toEqual([]);
    expect((await api<{ data: Run }>(`/runs/${runId}`)).data.status).toBe('awaiting_approval');
  });
});
