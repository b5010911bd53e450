import type { ItemsPage } from '../../service/engine/items.js';
import type { ProcessingView, RunView, StoredEvent } from './run-model.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface PipelineInfo {
  name: string;
  description: string;
  /** JSON Schema of the run options, when the pipeline has one. */
  options_schema?: unknown;
}

/** The HTTP API, same origin, with the tab's token. */
export function api(token: string) {
  async function call<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
    const res = await fetch(`/api/v1/automation${path}`, {
      method: init.method ?? 'GET',
      headers: { authorization: `Token ${token}`, ...(init.body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      cache: 'no-store',
    });
    const json = (await res.json().catch(() => ({}))) as { data?: T; error?: { code: string; message: string } };
    if (!res.ok) throw new ApiError(res.status, json.error?.code ?? 'HTTP', json.error?.message ?? res.statusText);
    return json as T;
  }
  const query = (q: Record<string, string | number | undefined>) => {
    const parts = Object.entries(q).flatMap(([k, v]) => (v === undefined || v === '' ? [] : [`${k}=${encodeURIComponent(String(v))}`]));
    return parts.length ? `?${parts.join('&')}` : '';
  };
  return {
    pipelines: () => call<{ data: PipelineInfo[] }>('/pipelines').then((r) => r.data),
    /** Runs of every site the token may see (or of one), newest first. */
    runs: (q: { site_id?: string; status?: string; before?: string; limit?: number } = {}) => call<{ data: RunView[] }>(`/runs${query(q)}`).then((r) => r.data),
    run: (runId: string) => call<{ data: RunView }>(`/runs/${encodeURIComponent(runId)}`).then((r) => r.data),
    processing: (runId: string) =>
      call<{ data: (ProcessingView & { run_id: string }) | null }>(`/current_processing/?run_id=${encodeURIComponent(runId)}`).then((r) => r.data),
    start: (body: { site_id: string; pipeline: string; options?: Record<string, unknown> }) =>
      call<{ data: RunView }>('/runs', { method: 'POST', body }).then((r) => r.data),
    /** The run's events after `afterSeq`, from the trace (JSONL). */
    trace: async (runId: string, afterSeq: number) => {
      const res = await fetch(`/api/v1/automation/runs/${encodeURIComponent(runId)}/trace?after_seq=${afterSeq}`, {
        headers: { authorization: `Token ${token}` },
        cache: 'no-store',
      });
      if (!res.ok) throw new ApiError(res.status, 'HTTP', res.statusText);
      return (await res.text())
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as StoredEvent);
    },
    /** One page of a stage's items (`GET /runs/:id/items`). */
    items: (runId: string, q: { stage?: number; status?: string; after?: string; limit?: number }) =>
      call<ItemsPage & { stage: number; total_items: number | null }>(`/runs/${encodeURIComponent(runId)}/items${query(q)}`),
    command: (runId: string, command: string) => call<{ data: RunView; accepted: boolean }>(`/runs/${encodeURIComponent(runId)}/${command}`, { method: 'POST', body: {} }),
  };
}

export type Api = ReturnType<typeof api>;
