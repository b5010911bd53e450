// What the dashboard's browser tests share: a service process and a Chromium per describe
// block, the service's API with its admin token, and a watch on a tab for console errors, page
// errors and failed requests.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import { launchBrowser } from './browser.js';
import { tempDir } from './engine.js';
import { callApi, startService, type ServiceProcess } from './service-process.js';

/** Where the browser tests leave their screenshots. */
export const ARTIFACTS = join(import.meta.dirname, '..', '..', 'test-artifacts', 'e2e');

/**
 * A service process (`env` added to its environment) in a fresh directory, and a Chromium,
 * started before the tests of the describe block this is called in and stopped after them.
 * Read `svc` and `browser` from the returned object inside hooks and tests.
 */
export function useDashboard(prefix: string, env: Record<string, string> = {}): { svc: ServiceProcess; browser: Browser } {
  const dir = tempDir(prefix);
  const e2e = {} as { svc: ServiceProcess; browser: Browser };
  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    e2e.svc = await startService(dir.path, env);
    e2e.browser = await launchBrowser();
  });
  afterAll(async () => {
    await e2e.browser?.close();
    await e2e.svc?.stop();
    dir.remove();
  });
  return e2e;
}

/** `GET` (no body) or `POST` (a body) under /api/v1/automation, with the service's admin token. */
export function apiOf(svc: ServiceProcess) {
  return async <T = Record<string, unknown>>(path: string, body?: unknown): Promise<T> => (await callApi<T>(svc, path, { body })).body;
}

/** Collects what went wrong in the tab (console errors, uncaught errors, responses ≥ 400) into `problems`. */
export function watchProblems(tab: Page, problems: string[], label = ''): void {
  tab.on('console', (m) => m.type() === 'error' && problems.push(`console ${label}: ${m.text()} (${m.location().url})`));
  tab.on('pageerror', (e) => problems.push(`page error ${label}: ${e.message}`));
  tab.on('response', (r) => r.status() >= 400 && problems.push(`${label} ${r.status()} ${r.url()}`));
}
