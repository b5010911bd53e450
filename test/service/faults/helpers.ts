// What the fault tests share: polling with deadlines (never sleep-and-hope), HTTP calls to a
// service process, and the checks that a run finished whole.
import { expect } from 'vitest';
import type { Store } from '../../../service/store/store.js';
import type { ServiceProcess } from '../../helpers/service-process.js';

export const API = '/api/v1/automation';

/** A call that fails rather than waits past `timeoutMs`. */
export async function call(
  svc: Pick<ServiceProcess, 'base' | 'token'>,
  path: string,
  opts: { method?: string; body?: unknown; timeoutMs?: number } = {},
): Promise<{ status: number; body: Record<string, unknown>; ms: number }> {
  const started = performance.now();
  const res = await fetch(`${svc.base}${path}`, {
    method: opts.method ?? (opts.body === undefined ? 'GET' : 'POST'),
    headers: { authorization: `Token ${svc.token}`, ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, ms: performance.now() - started };
}

export async function health(svc: Pick<ServiceProcess, 'base' | 'token'>): Promise<{ status: number; body: Record<string, unknown> }> {
  try {
    return await call(svc, '/healthz', { timeoutMs: 1500 });
  } catch {
    return { status: 0, body: {} };
  }
}

/** The run finished whole: every item recorded once, every item event once, seq 1…n without a gap. */
export async function expectWhole(store: Store, runId: string, items: number): Promise<number> {
  const ledger = await store.ledger(runId);
  const keys = ledger.map((l) => `${l.stage}:${String(l.itemId)}`);
  expect(keys).toHaveLength(items);
  expect(new Set(keys).size).toBe(items);
  const events = await store.readEvents(runId, 0);
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
  const processed = events.filter((e) => e.event === 'stage_item_processed' || e.event === 'stage_item_failed');
  const itemKeys = processed.map((e) => `${String(e.stage)}:${String((e.item as { id: unknown }).id)}`);
  expect(itemKeys).toHaveLength(items);
  expect(new Set(itemKeys).size).toBe(items);
  expect(events.filter((e) => e.event === 'run_started')).toHaveLength(1);
  return events.length;
}

/** No log line holds the password, a connection string with a password, or a pg client object. */
export function expectCleanLogs(output: string, password: string): void {
  expect(output).not.toContain(password);
  expect(output).not.toMatch(/postgres(ql)?:\/\/[^:\s]*:[^@\s[]+@/);
  for (const marker of ['connectionParameters', '_queryable', '_ending', 'secretKey', '"_events"', '"client":{']) {
    expect(output, marker).not.toContain(marker);
  }
}
