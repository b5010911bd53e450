// The Workers page in a real browser: a worker holding a job shows as connected with its queue
// and the job in flight; its answer shows in the queue's figures; no serious axe violation.
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { seriousViolations } from '../helpers/axe.js';
import { useDashboard } from '../helpers/dashboard.js';
import { call } from '../helpers/workers.js';
import { until } from '../helpers/until.js';

const W = '/api/v1/workers';

describe('Workers page in a real browser (Debian Chromium)', () => {
  const e2e = useDashboard('rs-e2e-workers-', { RUNSTATE_JOB_LEASE_MS: '60000' });
  let page: Page;

  beforeAll(async () => {
    page = await e2e.browser.newPage({ viewport: { width: 1280, height: 900 } });
  });

  const claim = async (workerId: string) => {
    const res = await call(e2e.svc.base, e2e.svc.token, 'POST', `${W}/claim`, { queue: 'faces', worker_id: workerId, wait_ms: 5000 });
    const jobs = res.body.jobs as { job_id: string; kind: string }[];
    expect(jobs).toHaveLength(1);
    return jobs[0]!;
  };
  const cell = (row: string, col: string) => page.locator(`${row} td[data-col="${col}"]`).textContent();

  it('shows who is connected, the jobs they hold and each queue’s figures, live, with no serious axe violation', async () => {
    await page.goto(`${e2e.svc.base}/workers/?token=${e2e.svc.token}`);
    await page.waitForURL((u) => !u.searchParams.has('token'));
    await page.getByText('No worker seen in the last minute.').waitFor();
    expect(await seriousViolations(page)).toEqual([]);
    // The header's Sections lead here.
    expect(await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Workers' }).getAttribute('href')).toBe('/workers/');

    const started = await call(e2e.svc.base, e2e.svc.token, 'POST', '/api/v1/automation/runs', {
      site_id: '5',
      pipeline: 'face_processor_workers',
      options: { items_per_stage: 2, concurrency: 1 },
    });
    expect(started.status).toBe(201);
    const load = await claim('gpu-box-1');
    expect(load.kind).toBe('load');
    expect((await call(e2e.svc.base, e2e.svc.token, 'POST', `${W}/jobs/${load.job_id}/complete`, { items: [{ id: 1, title: 'one' }, { id: 2, title: 'two' }] })).body).toEqual({ ok: true });
    const held = await claim('gpu-box-1');
    expect(held.kind).toBe('item');

    // The page reads again by itself: the worker, its queue and the job it holds appear.
    const worker = 'tr[data-worker="gpu-box-1"]';
    await page.locator(worker).waitFor({ timeout: 10_000 });
    expect(await page.locator(worker).textContent()).toContain('faces');
    await until('the held job in flight', async () => (await cell(worker, 'jobs_in_flight')) === '1', 10_000);
    const queue = 'tr[data-queue="faces"]';
    await until('the queue in flight', async () => (await cell(queue, 'in_flight')) === '1', 10_000);
    expect(await cell(queue, 'workers')).toBe('1');
    expect(Number(await cell(queue, 'answers'))).toBe(1);

    // The answer: nothing in flight any more, two answers in the last minute.
    expect((await call(e2e.svc.base, e2e.svc.token, 'POST', `${W}/jobs/${held.job_id}/complete`, { cost: 0.5 })).body).toEqual({ ok: true });
    await until('the answer counted', async () => (await cell(queue, 'answers')) === '2', 10_000);
    expect(await cell(worker, 'jobs_in_flight')).toBe('0');
    expect(await cell(queue, 'leases_lost')).toBe('0');
    expect(await page.locator(`${queue} td`).nth(4).textContent()).toMatch(/ms$/);
    expect(await seriousViolations(page)).toEqual([]);
  });
});
