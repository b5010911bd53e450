// Which stored events a webhook can report, decided from the event alone: the commit plan asks
// this for every event it appends and writes an outbox row for each that names a kind. It lives
// with the store, which writes the outbox; service/webhooks/ sends what it holds.
import { runEnteredState, type RunEvent } from '../events.js';

/** The kinds a subscription may name (docs/api.md, "Webhooks"). */
export const WEBHOOK_EVENTS = ['run_completed', 'run_failed', 'run_cancelled', 'awaiting_approval', 'stage_complete'] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** The run machine's state that each run-level kind reports, entered through a `state_change`. */
const RUN_STATE_KINDS: Readonly<Record<string, WebhookEvent>> = {
  completed: 'run_completed',
  failed: 'run_failed',
  cancelled: 'run_cancelled',
  awaiting_approval: 'awaiting_approval',
};

export function isWebhookEvent(kind: unknown): kind is WebhookEvent {
  return typeof kind === 'string' && (WEBHOOK_EVENTS as readonly string[]).includes(kind);
}

/**
 * The webhook kind an event reports, or null: `stage_complete` as itself, and the run machine's
 * `state_change` into completed, failed, cancelled or awaiting_approval.
 */
export function webhookEventOf(event: RunEvent): WebhookEvent | null {
  if (event.event === 'stage_complete') return 'stage_complete';
  const to = runEnteredState(event);
  return to === undefined ? null : (RUN_STATE_KINDS[to] ?? null);
}
