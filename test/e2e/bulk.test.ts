// Bulk commands from the runs list in a real browser (Debian Chromium): select runs, pause and
// resume them in one go, and read what each run answered; the API agrees.
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { seriousViolations } from '../helpers/axe.js';
import { apiOf, ARTIFACTS, useDashboard, watchProblems } from '../helpers/dashboard.js';

const SITE = 'bulk-site';
/** Slow enough to stay running for the whole test: one item at a time, about 1.5 s each. */
const SLOW = { seed: 9, delay_ms: 1500, items_per_stage: 20, concurrency: 1 };

interface Run {
  run_id: string;
  status: string;
}

describe('bulk commands in the runs list (Debian Chromium)', () => {
  const e2e = useDashboard('rs-e2e-bulk-');
  let api: ReturnType<typeof apiOf>;

  beforeAll(() => {
    api = apiOf(e2e.svc);
  });

  const start = async (options: Record<string, unknown>) => (await api<{ data: Run }>('/runs', { site_id: SITE, pipeline: 'content', options })).data.run_id;
  const statusOf = async (runId: string) => (await api<{ data: Run }>(`/runs/${runId}`)).data.status;
  const until = (runId: string, status: string) => expect.poll(() => statusOf(runId), { timeout: 20_000, interval: 100 }).toBe(status);
  const summary = async (tab: Page) => (await tab.locator('[data-bulk-summary]').textContent()) ?? '';
  /** The summary's counts, in any order. */
  const parts = (s: string) => s.replace(/^\w+: /, '').split(', ').sort();
  /** What the page says each run answered, by run id. */
  const outcomes = (tab: Page) =>
    tab.locator('[data-bulk-run]').evaluateAll((els) => Object.fromEntries(els.map((el) => [el.getAttribute('data-bulk-run')!, el.textContent!.replace(/^[^:]+: /, '')])));

  it('pauses two selected runs of three, resumes them, and says what each run answered', async () => {
    const [a, b, c] = [await start(SLOW), await start(SLOW), await start(SLOW)];
    // A finished run: a pause of it is refused, and the list says why.
    const done = await start({ delay_ms: 0, items_per_stage: 1 });
    await until(done, 'completed');
    const tab = await e2e.browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    watchProblems(tab, problems);
    await tab.goto(`${e2e.svc.base}/?site=${SITE}&token=${e2e.svc.token}`);
    await tab.locator('[data-feed="live"]').waitFor();
    for (const id of [a, b, c, done]) await tab.locator(`tr[data-run="${id}"]`).waitFor();
    const bar = tab.getByRole('toolbar', { name: 'Selected runs' });
    expect(await bar.getByRole('button', { name: 'Pause' }).isDisabled()).toBe(true);

    // Two selected: one by a click, one by the keyboard (Space on its focused box).
    await tab.getByRole('checkbox', { name: `Select ${a}`, exact: true }).check();
    await tab.getByRole('checkbox', { name: `Select ${b}`, exact: true }).focus();
    await tab.keyboard.press('Space');
    expect(await tab.getByRole('checkbox', { name: `Select ${b}`, exact: true }).isChecked()).toBe(true);
    expect(await bar.textContent()).toContain('2 selected');
    expect(await tab.getByRole('checkbox', { name: 'Select every run on this page' }).evaluate((el) => (el as HTMLInputElement).indeterminate)).toBe(true);

    await bar.getByRole('button', { name: 'Pause' }).click();
    await expect.poll(() => summary(tab)).toBe('Pause: 2 paused');
    // Pause is graceful: each finishes its item in flight, then is paused; the third runs on.
    await until(a, 'paused');
    await until(b, 'paused');
    expect(await statusOf(c)).toBe('running');
    await tab.locator(`tr[data-run="${a}"] .chip-paused`).waitFor();
    await tab.locator(`tr[data-run="${b}"] .chip-paused`).waitFor();
    expect(await tab.locator(`tr[data-run="${c}"] .chip-running`).count()).toBe(1);

    // Every run on the page: each answers as if commanded alone.
    await tab.getByRole('checkbox', { name: 'Select every run on this page' }).check();
    expect(await bar.textContent()).toContain('4 selected');
    await bar.getByRole('button', { name: 'Pause' }).click();
    await expect.poll(() => outcomes(tab)).toEqual({ [a]: 'already paused', [b]: 'already paused', [c]: 'paused', [done]: 'not allowed: completed' });
    expect(parts(await summary(tab))).toEqual(['1 not allowed: completed', '1 paused', '2 already paused']);
    await until(c, 'paused');

    // What the page shows is checked by axe, light and dark, at 1280 and 375 px.
    for (const colorScheme of ['light', 'dark'] as const) {
      await tab.emulateMedia({ colorScheme });
      for (const width of [1280, 375]) {
        await tab.setViewportSize({ width, height: 900 });
        for (const v of await seriousViolations(tab)) problems.push(`${colorScheme} ${width}: ${v.impact} ${v.id} (${v.help}) at ${v.nodes.join(' ')}`);
        const overflow = await tab.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        if (overflow > 1) problems.push(`${colorScheme} ${width}: the page is ${overflow}px wider than the screen`);
        await tab.screenshot({ path: join(ARTIFACTS, `bulk-${colorScheme}-${width}.png`), fullPage: true });
      }
    }

    // Resume them all (at 375 px): the three go on, the finished one is refused again.
    await bar.getByRole('button', { name: 'Resume' }).click();
    await expect.poll(() => outcomes(tab)).toEqual({ [a]: 'resumed', [b]: 'resumed', [c]: 'resumed', [done]: 'not allowed: completed' });
    for (const id of [a, b, c]) await until(id, 'running');

    // Cancel asks first; then every live run is cancelled.
    await bar.getByRole('button', { name: 'Cancel' }).click();
    await bar.getByRole('button', { name: 'Yes, cancel' }).click();
    await expect.poll(() => outcomes(tab)).toEqual({ [a]: 'cancelled', [b]: 'cancelled', [c]: 'cancelled', [done]: 'not allowed: completed' });
    for (const id of [a, b, c]) expect(await statusOf(id)).toBe('cancelled');
    await bar.getByRole('button', { name: 'Clear selection' }).click();
    expect(await bar.textContent()).toContain('No run selected');
    await tab.close();
    expect(problems).toEqual([]);
  });
});
