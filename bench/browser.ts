// Browser part. Method: the dashboard's run page in Debian's Chromium while an external run
// gets 1,000 events a second through the HTTP door; frames dropped and the lag from an event's
// append to its row. Baseline: the same page idle just before. Full method: docs/benchmarks.md.
import type { Page } from 'playwright-core';
import { launchBrowser } from '../test/helpers/browser.js';
import { tempDir } from '../test/helpers/engine.js';
import { startService, type ServiceProcess } from '../test/helpers/service-process.js';
import { sections, type BenchPart, type Table } from './harness/report.js';
import { fmtInt, percentile, QUICK, size } from './harness/stats.js';
import { existsSync } from 'node:fs';
import { ROOT } from './harness/child.js';

const FRAME_MS = 1000 / 60;

async function post(svc: ServiceProcess, path: string, body: unknown) {
  const res = await fetch(`${svc.base}/api/v1/automation${path}`, {
    method: 'POST',
    headers: { authorization: `Token ${svc.token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`bench: ${path} answered ${res.status}`);
  return (await res.json()) as { data: unknown };
}

/** Records animation frames and, for each log row that appears, when (epoch ms) and its seq. */
async function instrument(page: Page): Promise<void> {
  // A string, not a function: tsx's transform would wrap a function in helpers the page lacks.
  await page.evaluate(`(() => {
    window.frames_ = [];
    window.rows_ = [];
    const tick = (t) => { window.frames_.push(t); requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
    const log = document.querySelector('[role="log"] > div');
    const seen = new Set();
    new MutationObserver(() => {
      const now = performance.timeOrigin + performance.now();
      for (const row of log.querySelectorAll('[data-seq]')) {
        const seq = Number(row.dataset.seq);
        if (!seen.has(seq)) { seen.add(seq); window.rows_.push([seq, now]); }
      }
    }).observe(log, { childList: true });
  })()`);
}

async function frames(page: Page, fromIndex = 0) {
  const times = (await page.evaluate(`window.frames_.slice(${fromIndex})`)) as number[];
  let dropped = 0;
  for (let i = 1; i < times.length; i++) dropped += Math.max(0, Math.round((times[i]! - times[i - 1]!) / FRAME_MS) - 1);
  const expected = times.length > 1 ? Math.round((times.at(-1)! - times[0]!) / FRAME_MS) : 0;
  return { rendered: times.length, dropped, expected, end: fromIndex + times.length };
}

async function run() {
  if (!existsSync(`${ROOT}/web/out/index.html`)) {
    // Quick mode checks the bench's code, not the build: say so and go on.
    if (QUICK) return { tables: [{ title: 'Browser', rows: [['skipped'], ['the dashboard is not built (npm run build:web)']] }], markdown: '' };
    throw new Error('bench: the dashboard is not built; run `npm run build:web` first');
  }
  const seconds = size('BROWSER_SECONDS', 5, 1);
  const rate = 1000;
  const dir = tempDir('rs-browser-');
  const svc = await startService(dir.path);
  const browser = await launchBrowser();
  try {
    const runId = ((await post(svc, '/runs', { site_id: 'bench', pipeline: 'external', machine_name: 'bench' })).data as { run_id: string }).run_id;
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    await page.goto(`${svc.base}/run/?id=${runId}&token=${svc.token}`);
    await page.locator('[data-connection="live"]').waitFor();
    await post(svc, `/runs/${runId}/events`, [{ machine_name: 'bench', event_type: 'state_change', payload: { to_state: 'processing' } }]);
    await page.locator('[role="log"] [data-seq="2"]').waitFor();
    await instrument(page);

    // Idle first: what the page does with nothing coming.
    await page.waitForTimeout(seconds * 1000);
    const idle = await frames(page);

    // Then 1,000 events a second, sent in batches of 50 every 50 ms through the HTTP door.
    const total = rate * seconds;
    const t0 = performance.now();
    for (let sent = 0; sent < total; sent += 50) {
      const due = t0 + (sent / rate) * 1000;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const batch = Array.from({ length: 50 }, (_, k) => ({
        machine_name: 'bench',
        event_type: 'item_processed',
        payload: { processed: sent + k + 1, total, item: { id: sent + k + 1, title: `item ${sent + k + 1}` } },
      }));
      await post(svc, `/runs/${runId}/events`, batch);
    }
    const lastSeq = total + 2;
    await page.locator(`[role="log"] [data-seq="${lastSeq}"]`).waitFor({ timeout: 60_000 });
    const loaded = await frames(page, idle.end);

    const rows = (await page.evaluate('window.rows_')) as [number, number][];
    const appended = new Map<number, number>();
    const trace = await fetch(`${svc.base}/api/v1/automation/runs/${runId}/trace`, { headers: { authorization: `Token ${svc.token}` } });
    for (const line of (await trace.text()).trim().split('\n')) {
      const e = JSON.parse(line) as { seq: number; timestamp: string };
      appended.set(e.seq, Date.parse(e.timestamp));
    }
    const lags = rows.filter(([seq]) => seq > 2 && appended.has(seq)).map(([seq, at]) => at - appended.get(seq)!).sort((a, b) => a - b);
    const bar = Number(await page.getByRole('progressbar').getAttribute('aria-valuenow'));
    if (bar !== 100) throw new Error(`bench: the bar ended at ${bar}%, not 100%`);

    const table: Table = [
      ['page', 'frames rendered', 'frames dropped', 'dropped %'],
      ['idle', fmtInt(idle.rendered), fmtInt(idle.dropped), ((100 * idle.dropped) / Math.max(1, idle.expected)).toFixed(1)],
      [`${fmtInt(rate)} events/s`, fmtInt(loaded.rendered), fmtInt(loaded.dropped), ((100 * loaded.dropped) / Math.max(1, loaded.expected)).toFixed(1)],
    ];
    const lagTable: Table = [
      ['events shown', 'lag p50 ms', 'lag p99 ms', 'lag max ms'],
      [fmtInt(lags.length), percentile(lags, 50).toFixed(0), percentile(lags, 99).toFixed(0), (lags.at(-1) ?? NaN).toFixed(0)],
    ];
    const markdown = sections(`### Frames, idle and under ${fmtInt(rate)} events/s for ${seconds} s`, table, "### From an event's append to its row on the page", lagTable);
    return { tables: [{ title: 'Browser: frames', rows: table }, { title: 'Browser: lag', rows: lagTable }], markdown };
  } finally {
    await browser.close();
    await svc.stop();
    dir.remove();
  }
}

export const browserPart: BenchPart = { key: 'browser', title: 'Dashboard in a browser', source: 'bench/browser.ts', run };
