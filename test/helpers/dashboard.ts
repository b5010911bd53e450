// What the dashboard's browser tests share: the service's API with its admin token, and a
// watch on a tab for console errors, page errors and failed requests.
import type { Page } from 'playwright-core';
import type { ServiceProcess } from './service-process.js';

const API = '/api/v1/automation';

/** `GET` (no body) or `POST` (a body) under /api/v1/automation, with the service's admin token. */
export function apiOf(svc: ServiceProcess) {
  return async function api<T = Record<string, unknown>>(path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${svc.base}${API}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: `Token ${svc.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return (await res.json()) as T;
  };
}

/** Collects what went wrong in the tab (console errors, uncaught errors, responses ≥ 400) into `problems`. */
export function watchProblems(tab: Page, problems: string[], label = ''): void {
  tab.on('console', (m) => m.type() === 'error' && problems.push(`console ${label}: ${m.text()} (${m.location().url})`));
  tab.on('pageerror', (e) => problems.push(`page error ${label}: ${e.message}`));
  tab.on('response', (r) => r.status() >= 400 && problems.push(`${label} ${r.status()} ${r.url()}`));
}
