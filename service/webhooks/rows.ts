// Webhooks, deliveries, attempts and outbox entries as both stores' rows hold them, and back:
// one mapping for sqlite-store.ts and postgres-store.ts.
import type { WebhookEvent } from '../store/outbox.js';
import type { ClaimedDelivery, Delivery, DeliveryAttempt, OutboxEntry, Webhook } from './types.js';

export interface WebhookRow {
  webhook_id: string;
  account_id: string | null;
  site_id: string | null;
  url: string;
  events: string;
  secret: string;
  created_by: string;
  created_at: string;
}

export interface DeliveryRow {
  delivery_id: string;
  webhook_id: string;
  run_id: string;
  seq: number;
  kind: string;
  body: string;
  status: string;
  attempts: number;
  first_at: number;
  next_at: number;
  delivered_at: string | null;
  last_error: string | null;
  created_at: string;
}

export interface AttemptRow {
  delivery_id: string;
  attempt: number;
  at: string;
  status_code: number | null;
  error: string | null;
  duration_ms: number;
}

export interface OutboxJoinRow {
  id: number;
  run_id: string;
  seq: number;
  kind: string;
  account_id: string | null;
  site_id: string | null;
  pipeline: string | null;
  event: string | null;
}

export function toWebhook(r: WebhookRow): Webhook {
  return {
    webhookId: r.webhook_id,
    accountId: r.account_id,
    siteId: r.site_id,
    url: r.url,
    events: JSON.parse(r.events) as WebhookEvent[],
    secret: r.secret,
    createdBy: r.created_by,
    createdAt: r.created_at,
  };
}

export function toDelivery(r: DeliveryRow): Delivery {
  return {
    deliveryId: r.delivery_id,
    webhookId: r.webhook_id,
    runId: r.run_id,
    seq: Number(r.seq),
    kind: r.kind as WebhookEvent,
    body: r.body,
    status: r.status as Delivery['status'],
    attempts: r.attempts,
    firstAt: Number(r.first_at),
    nextAt: Number(r.next_at),
    deliveredAt: r.delivered_at,
    lastError: r.last_error,
    createdAt: r.created_at,
  };
}

export function toAttempt(r: AttemptRow): DeliveryAttempt {
  return { attempt: r.attempt, at: r.at, statusCode: r.status_code, error: r.error, durationMs: r.duration_ms };
}

/** Whether a subscription reports this outbox row (the same rule on both adapters). */
export function matches(w: Webhook, e: Pick<OutboxEntry, 'accountId' | 'siteId' | 'kind'>): boolean {
  return (w.accountId === null || w.accountId === e.accountId) && (w.siteId === null || w.siteId === e.siteId) && w.events.includes(e.kind);
}

/** Outbox rows whose run or event is gone (retention) are dropped, not fanned out. */
export function toEntry(r: OutboxJoinRow): OutboxEntry | undefined {
  if (r.account_id === null || r.site_id === null || r.pipeline === null || r.event === null) return undefined;
  return { runId: r.run_id, seq: Number(r.seq), kind: r.kind as WebhookEvent, accountId: r.account_id, siteId: r.site_id, pipeline: r.pipeline, event: r.event };
}

/** The claimed rows with their subscription's URL and secret, due first; a row whose subscription is gone is left out. */
export function withWebhooks(rows: readonly DeliveryRow[], webhookOf: (id: string) => Pick<WebhookRow, 'url' | 'secret'> | undefined): ClaimedDelivery[] {
  const claimed: ClaimedDelivery[] = [];
  for (const r of rows) {
    const w = webhookOf(r.webhook_id);
    if (w) claimed.push({ ...toDelivery(r), url: w.url, secret: w.secret });
  }
  return claimed.sort((a, b) => a.nextAt - b.nextAt || a.seq - b.seq);
}
