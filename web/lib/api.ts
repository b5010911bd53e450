import type { BulkResult } from '../../service/engine/commands.js';
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
    webhooks: () => call<{ data: WebhookInfo[] }>('/webhooks').then((r) => r.data),
    addWebhook: (body: { url: string; events: string[]; secret: string; site_id?: string }) => call<{ data: WebhookInfo }>('/webhooks', { method: 'POST', body }).then((r) => r.data),
    deleteWebhook: (id: string) => call<{ data: { deleted: boolean } }>(`/webhooks/${encodeURIComponent(id)}`, { method: 'DELETE' }).then((r) => r.data),
    deliveries: (id: string) => call<{ data: DeliveryInfo[] }>(`/webhooks/${encodeURIComponent(id)}/deliveries`).then((r) => r.data),
    command: (runId: string, command: string, reason?: string) =>
      call<{ data: RunView; accepted: boolean }>(`/runs/${encodeURIComponent(runId)}/${command}`, { method: 'POST', body: reason === undefined ? {} : { reason } }),
    /** One command for many runs, each answered as if commanded alone (`POST /runs/bulk/:command`). */
    bulk: (command: string, body: { run_ids?: string[]; site_id?: string; status?: string; reason?: string }) =>
      call<{ results: BulkResult[] }>(`/runs/bulk/${command}`, { method: 'POST', body }).then((r) => r.results),
    /** Workers seen in the last minute and, per queue, jobs waiting and in flight (`GET /workers`). */
    workers: () => call<{ data: WorkersOverview }>('/workers').then((r) => r.data),
    schedules: () => call<{ data: ScheduleInfo[] }>('/schedules').then((r) => r.data),
    addSchedule: (body: { site_id: string; pipeline: string; cron: string; timezone?: string; overlap?: string; options?: Record<string, unknown> }) =>
      call<{ data: ScheduleInfo }>('/schedules', { method: 'POST', body }).then((r) => r.data),
    scheduleCommand: (id: string, command: 'pause' | 'resume') => call<{ data: ScheduleInfo }>(`/schedules/${encodeURIComponent(id)}/${command}`, { method: 'POST', body: {} }).then((r) => r.data),
    deleteSchedule: (id: string) => call<{ data: { deleted: boolean } }>(`/schedules/${encodeURIComponent(id)}`, { method: 'DELETE' }).then((r) => r.data),
  };
}

export type Api = ReturnType<typeof api>;

/** A webhook subscription as `GET /webhooks` lists it (its secret is never shown back). */
export interface WebhookInfo {
  webhook_id: string;
  account_id: string | null;
  site_id: string | null;
  url: string;
  events: string[];
  created_by: string;
  created_at: string;
}

/** One delivery of a webhook, with every attempt (`GET /webhooks/:id/deliveries`). */
export interface DeliveryInfo {
  delivery_id: string;
  event: string;
  run_id: string;
  seq: number;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  next_attempt_at: string | null;
  delivered_at: string | null;
  last_error: string | null;
  created_at: string;
  log: { attempt: number; at: string; status_code: number | null; error: string | null; duration_ms: number }[];
}

/** `GET /workers`: who is connected, and each queue's jobs (docs/workers.md, "The dashboard"). */
export interface WorkersOverview {
  workers: { worker_id: string; queues: string[]; jobs_in_flight: number; last_seen: string }[];
  queues: {
    queue: string;
    waiting: number;
    in_flight: number;
    workers: number;
    latency_ms: { count: number; p50: number; p95: number } | null;
    leases_lost: number;
  }[];
}

/** A schedule as `GET /schedules` lists it: its next fire time and its last fires. */
export interface ScheduleInfo {
  schedule_id: string;
  site_id: string;
  pipeline: string;
  options: Record<string, unknown>;
  cron: string;
  timezone: string;
  overlap: 'skip' | 'allow';
  status: 'active' | 'paused';
  next_run_at: string | null;
  created_by: string;
  created_at: string;
  last_runs: { fire_at: string; state: string; run_id: string | null; run_status: string | null; error: string | null }[];
}
