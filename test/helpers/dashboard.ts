// What the dashboard's browser tests share: the service's API with its admin token, and a
// watch on a tab for console errors, page errors and failed requests.
import type { Page } from 'playwright-core';
import { callApi, type ServiceProcess } from './service-process.js';

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
