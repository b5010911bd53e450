import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { seriousViolations } from '../helpers/axe.js';
import { apiOf, ARTIFACTS, useDashboard } from '../helpers/dashboard.js';

const API = '/api/v1/automation';

describe('dashboard in a real browser (Debian Chromium)', () => {
  // The webhooks test delivers to a receiver on loopback, which the service refuses unless told.
  const e2e = useDashboard('rs-e2e-', { RUNSTATE_WEBHOOKS_ALLOW_PRIVATE: '1' });
  let page: Page;

  const api = async (path: string, body?: unknown) => apiOf(e2e.svc)<{ data: Record<string, unknown> }>(path, body);

  const shot = (name: string) => page.locator('section[aria-label="Processing"]').screenshot({ path: join(ARTIFACTS, `${name}.png`) });
  const progress = async () => Number(await page.getByRole('progressbar').getAttribute('aria-valuenow'));
  const cardState = () => page.locator('section[aria-label="Processing"]').getAttribute('data-state');
  /** The log renders only rows in view; its full height says how many events the page holds. */
  const eventsInLog = () => page.locator('[role="log"] > div').evaluate((el) => Math.round(el.getBoundingClientRect().height / 22));

  beforeAll(async () => {
    page = await e2e.browser.newPage({ viewport: { width: 1200, height: 900 } });
  });

  it('follows a run live: pause holds still, per-item progress, empty stages, offline and back, completion until Close', async () => {
    // Three items in stage 1, an empty stage 2, and the run ends on an empty stage 5. Paused
    // at once, so the page opens on a run that is holding still.
    const options = { seed: 7, delay_ms: 500, items_per_stage: [3, 0, 2, 2, 0], concurrency: 1 };
    const runId = (await api('/runs', { site_id: 'site-5', pipeline: 'face_processor', options })).data.run_id as string;
    await api(`/runs/${runId}/pause`, { reason: 'e2e' });
    await page.goto(`${e2e.svc.base}/run/?id=${runId}&token=${e2e.svc.token}`);
    // The token leaves the address bar at once.
    await page.waitForURL((u) => !u.searchParams.has('token'));
    await page.locator('[data-connection="live"]').waitFor();

    // Paused: yellow, holding the progress the server has, Pause disabled and Resume enabled.
    await page.waitForFunction(() => document.querySelector('section[aria-label="Processing"]')?.getAttribute('data-state') === 'paused');
    const paused = (await api(`/runs/${runId}`)).data as { status: string; last_seq: number };
    expect(paused.status).toBe('paused');
    const card = (await api(`/current_processing/?run_id=${runId}`)).data as { percentage: number; processed_items: number };
    expect(card.processed_items).toBeGreaterThanOrEqual(1);
    expect(await progress()).toBe(card.percentage);
    const background = await page.locator('section[aria-label="Processing"]').evaluate((el) => getComputedStyle(el).backgroundColor);
    expect(background).toBe('rgb(255, 247, 219)');
    expect(await page.getByRole('button', { name: 'Pause' }).isDisabled()).toBe(true);
    expect(await page.getByRole('button', { name: 'Resume' }).isEnabled()).toBe(true);
    await shot('paused');
    expect(((await api(`/runs/${runId}`)).data as { last_seq: number }).last_seq).toBe(paused.last_seq);
    // The live statechart: the run machine in `paused`, and each stage machine where it is.
    expect(await page.locator('[aria-label="run statechart"] [data-active="true"]').getAttribute('data-state-node')).toBe('paused');
    const stageStates = (await api(`/runs/${runId}`)).data as { stages: { state: string }[] };
    expect(await page.locator('[data-stage-machine]').evaluateAll((els) => els.map((e) => e.getAttribute('data-state')))).toEqual(stageStates.stages.map((x) => x.state));

    // Every value the bar takes from here on, with the stage it belongs to.
    await page.evaluate(() => {
      const w = window as unknown as { progress: [string, number][] };
      w.progress = [];
      const bar = document.querySelector('[role=progressbar]')!;
      const stage = () => /Stage (\d+)/.exec(document.querySelector('.card-stage')?.textContent ?? '')?.[1] ?? '?';
      new MutationObserver(() => w.progress.push([stage(), Number(bar.getAttribute('aria-valuenow'))])).observe(bar, { attributes: true, attributeFilter: ['aria-valuenow'] });
    });
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.locator('section[aria-label="Processing"][data-state="running"]').waitFor();
    // For the picture: a moment with an item in flight (the README shows it).
    await page.locator('.card-lists li').first().waitFor({ timeout: 5000 }).catch(() => undefined);
    await shot('running');
    // Stage 4 of 2 items: the bar moves per item; within a stage it never goes back.
    await page.waitForFunction(() => (window as unknown as { progress: [string, number][] }).progress.some(([s, v]) => s === '4' && v === 50));
    const steps = await page.evaluate(() => (window as unknown as { progress: [string, number][] }).progress);
    for (const stage of ['1', '3', '4']) {
      const values = steps.filter(([s]) => s === stage).map(([, v]) => v);
      expect(values, `stage ${stage}: ${JSON.stringify(steps)}`).toEqual([...values].sort((a, b) => a - b));
    }
    // Stages 3 and 4 have two items each, hundreds of ms apart (seeded): each shows its half-way step.
    expect(steps.filter(([s]) => s === '3').map(([, v]) => v)).toContain(50);

    // Offline and back: the page says so, then catches up with no event missing.
    await page.context().setOffline(true);
    await page.locator('[data-connection="offline"]').waitFor();
    await page.context().setOffline(false);
    await page.locator('[data-connection="live"]').waitFor({ timeout: 20_000 });

    // Completion: the last stage is empty; the card stays, at 100%, until Close.
    await page.locator('section[aria-label="Processing"][data-state="completed"]').waitFor({ timeout: 30_000 });
    expect(await progress()).toBe(100);
    await page.getByText('No items to process').first().waitFor();
    const stages = await page.locator('[aria-label="Stages"] li').evaluateAll((els) => els.map((e) => e.getAttribute('data-stage-state')));
    expect(stages).toEqual(['completed', 'empty', 'completed', 'completed', 'empty']);
    const last = ((await api(`/runs/${runId}`)).data as { last_seq: number }).last_seq;
    await page.waitForFunction((n) => Math.round((document.querySelector('[role="log"] > div')?.getBoundingClientRect().height ?? 0) / 22) === n, last);
    expect(await eventsInLog()).toBe(last);
    await shot('completed');
    expect(await cardState()).toBe('completed');

    // Time travel: a transition picked in the log shows the machines as they were at its seq.
    const trace = await (await fetch(`${e2e.svc.base}${API}/runs/${runId}/trace`, { headers: { authorization: `Token ${e2e.svc.token}` } })).text();
    const early = trace.trim().split('\n').map((l) => JSON.parse(l) as { seq: number; machine_name?: string; payload?: { to_state?: string } })
      .find((e) => e.machine_name === 'stage_1' && e.payload?.to_state === 'running')!;
    await page.locator('[role="log"]').evaluate((el) => (el.scrollTop = 0));
    await page.locator(`[role="log"] [data-seq="${early.seq}"]`).click();
    await page.getByText(`Machines as of seq ${early.seq}`).waitFor();
    expect(await page.locator('[aria-label="run statechart"] [data-active="true"]').getAttribute('data-state-node')).toBe('running');
    expect(await page.locator('[data-stage-machine]').evaluateAll((els) => els.map((e) => e.getAttribute('data-state')))).toEqual(['running', 'pending', 'pending', 'pending', 'pending']);
    await page.screenshot({ path: join(ARTIFACTS, 'time-travel.png'), fullPage: true });
    await page.getByRole('button', { name: 'Back to live' }).click();
    expect(await page.locator('[aria-label="run statechart"] [data-active="true"]').getAttribute('data-state-node')).toBe('completed');
    await page.getByRole('button', { name: 'Close' }).first().click();
    await page.waitForFunction(() => !document.querySelector('section[aria-label="Processing"] button'));
    expect(((await api(`/runs/${runId}`)).data as { closed_at: string | null }).closed_at).not.toBeNull();
  });

  it('pausing with an item in flight: once it lands, the card is exactly current_processing', async () => {
    const options = { seed: 11, delay_ms: 1200, items_per_stage: [6, 0, 0, 0, 0, 0, 0], concurrency: 1 };
    const runId = (await api('/runs', { site_id: 'site-5', pipeline: 'content', options })).data.run_id as string;
    const tab = await e2e.browser.newPage({ viewport: { width: 1200, height: 900 } });
    await tab.goto(`${e2e.svc.base}/run/?id=${runId}&token=${e2e.svc.token}`);
    await tab.locator('[data-connection="live"]').waitFor();
    // An item in flight on the card (the server's view says so), then Pause.
    await tab.locator('[data-list="in-flight"] li').first().waitFor();
    const before = (await api(`/current_processing/?run_id=${runId}`)).data as { processed_items: number; currently_processing: unknown[] };
    expect(before.currently_processing.length).toBe(1);
    await tab.getByRole('button', { name: 'Pause' }).click();
    await tab.locator('section[aria-label="Processing"][data-state="paused"]').waitFor({ timeout: 10_000 });
    const card = (await api(`/current_processing/?run_id=${runId}`)).data as {
      processed_items: number;
      total_items: number;
      percentage: number;
      up_next: { title: string }[];
      currently_processing: unknown[];
    };
    expect(card.currently_processing).toEqual([]);
    // The item in flight at the pause finished and was recorded.
    expect(card.processed_items).toBeGreaterThan(before.processed_items);
    const shown = async () => ({
      upNext: await tab.locator('[data-list="up-next"] li').allTextContents(),
      count: await tab.locator('.card-count').textContent(),
      bar: Number(await tab.getByRole('progressbar').getAttribute('aria-valuenow')),
    });
    const want = { upNext: card.up_next.map((i) => i.title), count: `${card.processed_items} / ${card.total_items} · ${card.percentage}%`, bar: card.percentage };
    await expect.poll(shown, { timeout: 2000, interval: 50 }).toEqual(want);
    expect(want.upNext.length).toBeGreaterThan(0);
    await tab.close();
  });

  it('lists a run started through the API on another site within 1 s, with nothing typed', async () => {
    const tab = await e2e.browser.newPage({ viewport: { width: 1280, height: 900 } });
    await tab.goto(`${e2e.svc.base}/?token=${e2e.svc.token}`);
    await tab.locator('[data-feed="live"]').waitFor();
    const started = Date.now();
    const runId = (await api('/runs', { site_id: 'elsewhere-9', pipeline: 'face_processor', options: { delay_ms: 200, items_per_stage: 1 } })).data.run_id as string;
    await tab.locator(`tr[data-run="${runId}"]`).waitFor({ timeout: 1000 });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await tab.locator(`tr[data-run="${runId}"] td`).nth(1).textContent()).toBe('elsewhere-9');
    // Live, not polled: the row follows the run to its end.
    await tab.locator(`tr[data-run="${runId}"] .chip-completed`).waitFor({ timeout: 20_000 });
    await tab.close();
  });

  it('starts a run from the form built from the content schema with the values typed; a bad value is named at its field and starts nothing', async () => {
    const tab = await e2e.browser.newPage({ viewport: { width: 1280, height: 900 } });
    await tab.goto(`${e2e.svc.base}/?token=${e2e.svc.token}`);
    await tab.locator('[data-feed="live"]').waitFor();
    await tab.getByText('Start a run').click();
    const form = tab.locator('form.start');
    await form.getByRole('combobox', { name: 'Pipeline' }).selectOption('content');
    await form.getByRole('combobox', { name: 'Site' }).or(form.getByRole('textbox', { name: 'Site' })).fill('form-site');
    const runsOfSite = async () => ((await api('/runs?site_id=form-site')).data as unknown as unknown[]).length;
    const before = await runsOfSite();

    // Before submitting: the field says what is wrong as it is typed, and Start sends nothing.
    const failRate = form.getByLabel('Failure rate');
    await failRate.fill('2');
    const error = tab.locator('[data-field="fail_rate"] .field-error');
    await expect.poll(() => error.textContent()).toBe('Failure rate must be at most 1.');
    expect(await failRate.getAttribute('aria-invalid')).toBe('true');
    await form.getByRole('button', { name: 'Start' }).click();
    expect(await runsOfSite()).toBe(before);

    // After submitting: what the service refuses is shown at the field it names.
    await failRate.fill('0');
    await expect.poll(() => error.count()).toBe(0);
    const perStage = form.getByLabel('Items per stage');
    await perStage.fill('[1, 2]');
    await form.getByRole('button', { name: 'Start' }).click();
    const refused = tab.locator('[data-field="items_per_stage"] .field-error');
    await refused.waitFor();
    expect(await refused.textContent()).toContain('`items_per_stage`');
    expect(await runsOfSite()).toBe(before);

    // Values that fit start the run with exactly what was typed, defaults for the rest.
    await perStage.fill('[2, 0, 1, 0, 0, 0, 0]');
    await form.getByLabel('Delay per item (ms)').fill('5');
    await form.getByLabel('Seed').fill('42');
    await form.getByRole('button', { name: 'Start' }).click();
    await tab.waitForURL((u) => u.pathname.startsWith('/run/') && u.searchParams.has('id'));
    const runId = new URL(tab.url()).searchParams.get('id')!;
    const run = (await api(`/runs/${runId}`)).data as { site_id: string; pipeline: string; options: Record<string, unknown> };
    expect(run).toMatchObject({ site_id: 'form-site', pipeline: 'content' });
    expect(run.options).toMatchObject({ seed: 42, delay_ms: 5, fail_rate: 0, items_per_stage: [2, 0, 1, 0, 0, 0, 0], max_attempts: 3 });
    await tab.close();
  });

  it('adds a webhook from its page, shows its delivery with the receiver’s answer, and deletes it', async () => {
    const got: { delivery: string; body: string }[] = [];
    const receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        got.push({ delivery: String(req.headers['x-runstate-delivery']), body });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const port = (receiver.address() as AddressInfo).port;
    try {
      const tab = await e2e.browser.newPage({ viewport: { width: 1280, height: 900 } });
      await tab.goto(`${e2e.svc.base}/webhooks/?token=${e2e.svc.token}`);
      const form = tab.getByRole('form', { name: 'Add a webhook' });
      await form.getByLabel('URL').fill(`http://127.0.0.1:${port}/hook`);
      await form.getByLabel('Site').fill('hook-site');
      await form.getByLabel('Secret').fill('a-secret-of-twenty-chars');
      await form.getByRole('button', { name: 'Add webhook' }).click();
      const row = tab.locator('table[aria-label="Webhooks"] tbody tr[data-webhook]');
      await row.first().waitFor();
      expect(await row.first().textContent()).toContain(`http://127.0.0.1:${port}/hook`);
      expect(await seriousViolations(tab)).toEqual([]);

      const runId = (await api('/runs', { site_id: 'hook-site', pipeline: 'face_processor', options: { delay_ms: 5, items_per_stage: 1 } })).data.run_id as string;
      await expect.poll(() => got.some((g) => g.body.includes(runId) && g.body.includes('run_completed')), { timeout: 20_000, interval: 100 }).toBe(true);
      const delivery = got.find((g) => g.body.includes(runId))!.delivery;

      await row.first().getByRole('button', { name: 'Deliveries' }).click();
      const shown = tab.locator(`tr[data-delivery="${delivery}"]`);
      await shown.waitFor();
      expect(await shown.textContent()).toContain('delivered');
      expect(await shown.textContent()).toContain('204');

      await row.first().getByRole('button', { name: 'Delete' }).click();
      await tab.getByText('No webhooks yet.').waitFor();
      expect(((await api('/webhooks')).data as unknown as unknown[]).length).toBe(0);
      await tab.close();
    } finally {
      await new Promise((resolve) => receiver.close(resolve));
    }
  });

  it('lists a run of site 5 at once; filters and the run-id search narrow the list and survive a reload', async () => {
    const tab = await e2e.browser.newPage({ viewport: { width: 1280, height: 900 } });
    await tab.goto(`${e2e.svc.base}/?token=${e2e.svc.token}`);
    await tab.locator('[data-feed="live"]').waitFor();
    const started = Date.now();
    const runId = (await api('/runs', { site_id: 5, pipeline: 'content', options: { delay_ms: 300, items_per_stage: 2 } })).data.run_id as string;
    await tab.locator(`tr[data-run="${runId}"]`).waitFor({ timeout: 1000 });
    expect(Date.now() - started).toBeLessThan(1000);
    const rows = () => tab.locator('table[aria-label="Runs"] tbody tr[data-run]');
    expect(await rows().count()).toBeGreaterThan(1);
    await tab.getByLabel('Site filter').selectOption('5');
    await tab.getByLabel('Search by run id').fill(runId.slice(-12));
    await tab.waitForFunction((id) => {
      const trs = [...document.querySelectorAll('table[aria-label="Runs"] tbody tr[data-run]')];
      return trs.length >= 1 && trs.every((tr) => tr.getAttribute('data-run')!.includes(id));
    }, runId.slice(-12));
    expect(new URL(tab.url()).searchParams.get('site')).toBe('5');
    await tab.reload();
    await tab.locator(`tr[data-run="${runId}"]`).waitFor();
    expect(await tab.getByLabel('Site filter').inputValue()).toBe('5');
    expect(await tab.getByLabel('Search by run id').inputValue()).toBe(runId.slice(-12));
    expect((await rows().evaluateAll((trs) => trs.map((tr) => tr.querySelectorAll('td')[1]!.textContent))).every((site) => site === '5')).toBe(true);
    await tab.close();
  });

  it('shows a stage’s items as GET /runs/:id/items has them, failed first, each error one click away', async () => {
    const options = { seed: 5, delay_ms: 30, items_per_stage: [12, 0, 0, 0, 0, 0, 0], fail_rate: 0.3, max_attempts: 2, backoff_ms: 0 };
    const runId = (await api('/runs', { site_id: 'site-5', pipeline: 'content', options })).data.run_id as string;
    const tab = await e2e.browser.newPage({ viewport: { width: 1280, height: 900 } });
    await tab.goto(`${e2e.svc.base}/run/?id=${runId}&token=${e2e.svc.token}`);
    await tab.locator('section[aria-label="Processing"][data-state="completed"]').waitFor({ timeout: 20_000 });
    await tab.getByLabel('Stage of the items').selectOption('1');
    const want = (await api(`/runs/${runId}/items?stage=1&limit=1000`)) as unknown as { data: { id: number; status: string; attempts: number; error: string | null }[] };
    const failed = want.data.filter((i) => i.status === 'failed');
    expect(failed.length).toBeGreaterThan(0);
    const shown = () =>
      tab.locator('[aria-label="Items"] button[data-item]').evaluateAll((els) =>
        els.map((el) => ({ id: el.getAttribute('data-item'), status: el.getAttribute('data-status'), attempts: Number(el.children[2]!.textContent), error: el.querySelector('.item-error')!.textContent || null })),
      );
    const order = [...failed, ...want.data.filter((i) => i.status !== 'failed')];
    await expect.poll(shown, { timeout: 5000 }).toEqual(order.map((i) => ({ id: String(i.id), status: i.status, attempts: i.attempts, error: i.error })));
    // One click: the first failed item's error and attempts.
    await tab.locator(`[aria-label="Items"] button[data-item="${failed[0]!.id}"]`).click();
    const detail = tab.locator('section[aria-label="Item details"]');
    await detail.waitFor();
    expect(await detail.locator('.item-error-full').textContent()).toBe(failed[0]!.error);
    expect(await detail.textContent()).toContain(`Attempts${failed[0]!.attempts}`);
    await tab.close();
  });

  it('gives an ETA within 25 % of the time the stage actually took to finish, half-way through a steady 40-item stage', async () => {
    // A steady stage: the test is the engine (docs/ingest.md) and finishes an item every 250 ms.
    // (The demo pipelines' item times are exponential: half a stage of them says little of the rest.)
    const runId = (await api('/runs', { site_id: 'site-5', pipeline: 'external', machine_name: 'steady' })).data.run_id as string;
    const send = (events: unknown[]) => api(`/runs/${runId}/events`, events);
    await send([{ machine_name: 'steady', event_type: 'state_change', payload: { to_state: 'working' } }]);
    const tab = await e2e.browser.newPage({ viewport: { width: 1280, height: 900 } });
    await tab.goto(`${e2e.svc.base}/run/?id=${runId}&token=${e2e.svc.token}`);
    await tab.locator('[data-connection="live"]').waitFor();
    const t0 = Date.now();
    const engine = (async () => {
      for (let i = 1; i <= 40; i++) {
        await new Promise((r) => setTimeout(r, Math.max(0, t0 + i * 250 - Date.now())));
        await send([{ machine_name: 'steady', event_type: 'item_processed', payload: { processed: i, total: 40, item: { id: i, title: `Steady ${i}` } } }]);
      }
      return Date.now();
    })();
    await tab.waitForFunction(() => /^20 \/ 40/.test(document.querySelector('.card-count')?.textContent ?? ''), undefined, { timeout: 30_000 });
    // The ETA as the page worked it out at that moment (it says when).
    await tab.waitForFunction(() => Number(document.querySelector('.eta')?.getAttribute('data-eta-at')) > 0 && /^2\d \/ 40/.test(document.querySelector('.card-count')?.textContent ?? ''));
    const eta = await tab.locator('.eta[data-eta-ms]').evaluate((el) => ({ ms: Number(el.getAttribute('data-eta-ms')), at: Number(el.getAttribute('data-eta-at')) }));
    const finished = await engine;
    const actual = finished - eta.at;
    expect(actual).toBeGreaterThan(2000);
    expect(Math.abs(eta.ms - actual), `ETA ${eta.ms} ms, took ${actual} ms`).toBeLessThanOrEqual(0.25 * actual);
    await tab.close();
  });

  it('works by keyboard: Tab reaches Resume with a visible focus ring, Enter resumes, and a transition is picked by seq', async () => {
    const runId = (await api('/runs', { site_id: 'site-5', pipeline: 'content', options: { delay_ms: 800, items_per_stage: 3, concurrency: 1 } })).data.run_id as string;
    await api(`/runs/${runId}/pause`, {});
    const tab = await e2e.browser.newPage({ viewport: { width: 1280, height: 900 } });
    await tab.goto(`${e2e.svc.base}/run/?id=${runId}&token=${e2e.svc.token}`);
    await tab.locator('section[aria-label="Processing"][data-state="paused"]').waitFor({ timeout: 10_000 });
    const focused = () => tab.evaluate(() => {
      const el = document.activeElement as HTMLElement | null;
      return { text: el?.textContent ?? '', outline: el ? getComputedStyle(el).outlineStyle : 'none', width: el ? getComputedStyle(el).outlineWidth : '0px' };
    });
    let f = await focused();
    for (let i = 0; i < 40 && f.text !== 'Resume'; i++) {
      await tab.keyboard.press('Tab');
      f = await focused();
    }
    expect(f.text).toBe('Resume');
    expect(f.outline).not.toBe('none');
    expect(f.width).not.toBe('0px');
    await tab.keyboard.press('Enter');
    await tab.locator('section[aria-label="Processing"][data-state="running"]').waitFor({ timeout: 10_000 });
    await tab.getByLabel('As of seq').fill('2');
    await tab.getByText('Machines as of seq 2').waitFor();
    await tab.getByRole('button', { name: 'Back to live', exact: true }).press('Enter');
    await tab.getByText('Machines (live)').waitFor();
    await tab.close();
  });

  it('has no serious or critical accessibility violation, light and dark, at 1280 and 375 px, and no console error', async () => {
    const slow = (await api('/runs', { site_id: 'site-5', pipeline: 'content', options: { delay_ms: 1500, items_per_stage: 6, concurrency: 1 } })).data.run_id as string;
    const paused = (await api('/runs', { site_id: 'site-5', pipeline: 'content', options: { delay_ms: 300, items_per_stage: 3, concurrency: 1 } })).data.run_id as string;
    await api(`/runs/${paused}/pause`, { reason: 'a11y' });
    // Completed on an empty last stage: "No items to process".
    const done = (await api('/runs', { site_id: 'site-5', pipeline: 'face_processor', options: { delay_ms: 0, items_per_stage: [2, 0, 1, 1, 0] } })).data.run_id as string;
    // Failed, as an engine outside reports it: the card offers Retry.
    const failed = (await api('/runs', { site_id: 'site-7', pipeline: 'external', machine_name: 'importer' })).data.run_id as string;
    await api(`/runs/${failed}/events`, [
      { machine_name: 'importer', event_type: 'state_change', payload: { to_state: 'fetching' } },
      { machine_name: 'importer', event_type: 'item_processed', payload: { processed: 1, total: 3, item: { id: 'a', title: 'a.csv' } } },
      { machine_name: 'run', event_type: 'state_change', payload: { from_state: 'running', to_state: 'failed' } },
    ]);
    const pages: [string, string, string][] = [
      ['runs', '/', '[data-feed="live"]'],
      ['running', `/run/?id=${slow}`, 'section[aria-label="Processing"][data-state="running"]'],
      ['paused', `/run/?id=${paused}`, 'section[aria-label="Processing"][data-state="paused"]'],
      ['empty-stage-completed', `/run/?id=${done}`, 'section[aria-label="Processing"][data-state="completed"]'],
      ['failed', `/run/?id=${failed}`, 'section[aria-label="Processing"][data-state="failed"] button'],
    ];
    const problems: string[] = [];
    for (const colorScheme of ['light', 'dark'] as const) {
      for (const width of [1280, 375]) {
        const tab = await e2e.browser.newPage({ viewport: { width, height: 900 }, colorScheme });
        tab.on('console', (m) => m.type() === 'error' && problems.push(`console (${colorScheme} ${width}): ${m.text()}`));
        tab.on('pageerror', (e) => problems.push(`page error (${colorScheme} ${width}): ${e.message}`));
        tab.on('response', (r) => r.status() >= 400 && problems.push(`${r.status()} ${r.url()}`));
        for (const [name, path, ready] of pages) {
          await tab.goto(`${e2e.svc.base}${path}${path.includes('?') ? '&' : '?'}token=${e2e.svc.token}`);
          await tab.locator(ready).waitFor({ timeout: 20_000 });
          if (name !== 'runs') await tab.locator('.insights .items, .insights p.muted:not(.items-loading)').first().waitFor();
          // The start form, open (its fields come from the pipeline's options schema, when it has one).
          if (name === 'runs') {
            await tab.locator('.start-box summary').click();
            await tab.locator('form.start select').waitFor();
          }
          // The README's pictures (npm run screenshots copies them to docs/screenshots/).
          if (colorScheme === 'light' && width === 1280) await tab.screenshot({ path: join(ARTIFACTS, `readme-${name}.png`) });
          for (const v of await seriousViolations(tab)) problems.push(`${name} ${colorScheme} ${width}: ${v.impact} ${v.id} (${v.help}) at ${v.nodes.join(' ')}`);
          // Nothing wider than the screen but what scrolls in a box of its own.
          const overflow = await tab.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
          if (overflow > 1) problems.push(`${name} ${colorScheme} ${width}: the page is ${overflow}px wider than the screen`);
        }
        await tab.close();
      }
    }
    expect(problems).toEqual([]);
    const favicon = await fetch(`${e2e.svc.base}/favicon.ico`);
    expect(favicon.status).toBe(200);
  });

  it('shows the last known state at once after a reload, marked stale until resynced', async () => {
    const runId = (await api('/runs', { site_id: 'site-5', pipeline: 'content', options: { delay_ms: 50, items_per_stage: 2 } })).data.run_id as string;
    await page.goto(`${e2e.svc.base}/run/?id=${runId}&token=${e2e.svc.token}`);
    await page.locator('[data-connection="live"]').waitFor();
    await page.waitForFunction((key) => localStorage.getItem(key) !== null, `runstate:run:${runId}`);
    // After the reload no WebSocket gets through: what shows is the browser's copy, said to be stale.
    await page.routeWebSocket(/\/ws/, (ws) => ws.close());
    await page.reload();
    await page.locator('section[aria-label="Processing"]').waitFor();
    await page.locator('.stale').waitFor();
    await shot('stale-after-reload');
    // A fresh tab (no WebSocket blocked) starts from the same copy and resyncs to live.
    const fresh = await e2e.browser.newPage();
    await fresh.goto(`${e2e.svc.base}/run/?id=${runId}&token=${e2e.svc.token}`);
    await fresh.locator('[data-connection="live"]').waitFor({ timeout: 20_000 });
    expect(await fresh.locator('.stale').count()).toBe(0);
    await fresh.close();
  });

  it('shows an external engine’s run as its events come in', async () => {
    const runId = (await api('/runs', { site_id: 'site-5', pipeline: 'external', machine_name: 'face_processor' })).data.run_id as string;
    // A tab of its own: the previous test's tab blocks WebSockets.
    const tab = await e2e.browser.newPage({ viewport: { width: 1200, height: 900 } });
    await tab.goto(`${e2e.svc.base}/run/?id=${runId}&token=${e2e.svc.token}`);
    await tab.locator('[data-connection="live"]').waitFor();
    const send = (events: unknown[]) => api(`/runs/${runId}/events`, events);
    await send([
      { machine_name: 'face_processor', event_type: 'state_change', payload: { to_state: 'cropping_faces' } },
      { machine_name: 'face_processor', event_type: 'item_processed', payload: { processed: 1, total: 2, item: { id: 'a', title: 'a.jpg' } } },
      { machine_name: 'face_processor', event_type: 'state_change', payload: { from_state: 'cropping_faces', to_state: 'verifying_portraits' } },
      { machine_name: 'face_processor', event_type: 'item_processed', payload: { processed: 1, total: 4, item: { id: 'b', title: 'b.jpg' } } },
    ]);
    await tab.getByText('Stage 2 of 2: verifying_portraits').waitFor();
    await tab.waitForFunction(() => document.querySelector('[role=progressbar]')?.getAttribute('aria-valuenow') === '25');
    expect(await tab.locator('[aria-label="Stages"] li .stage-name').allTextContents()).toEqual(['cropping_faces', 'verifying_portraits']);
    await tab.close();
  });
});
