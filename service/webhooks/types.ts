// What the webhook tables hold, and the contract both adapters of service/webhooks/ implement.
import type { WebhookEvent } from '../store/outbox.js';

export interface Webhook {
  webhookId: string;
  /** The account whose runs it reports; null: every account (admin tokens only). */
  accountId: string | null;
  /** The site whose runs it reports; null: every site of `accountId`. */
  siteId: string | null;
  url: string;
  events: WebhookEvent[];
  secret: string;
  /** The token name that made it. */
  createdBy: string;
  createdAt: string;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface Delivery {
  /** Sent as `X-Runstate-Delivery`, the same on every attempt. */
  deliveryId: string;
  webhookId: string;
  runId: string;
  seq: number;
  kind: WebhookEvent;
  /** The exact bytes sent and signed, the same on every attempt. */
  body: string;
  /** pending until a 2xx answer (delivered) or until retries are given up on (failed). */
  status: DeliveryStatus;
  attempts: number;
  /** When it was made (ms since the epoch): retries stop `giveUpAfterMs` after it. */
  firstAt: number;
  /** When the next attempt is due (ms since the epoch). */
  nextAt: number;
  deliveredAt: string | null;
  lastError: string | null;
  createdAt: string;
}

/** One line of the delivery log. */
export interface DeliveryAttempt {
  attempt: number;
  at: string;
  /** The receiver's HTTP status; null when no answer came (refused, timed out, reset). */
  statusCode: number | null;
  error: string | null;
  durationMs: number;
}

/** A delivery the sender holds a lease on, with where and how to send it. */
export interface ClaimedDelivery extends Delivery {
  url: string;
  secret: string;
}

/** What an attempt leaves the delivery as. */
export interface AttemptOutcome {
  status: DeliveryStatus;
  nextAt: number;
  lastError: string | null;
  deliveredAt: string | null;
}

/** An outbox row fanned out to a subscription: what its delivery's body is made from. */
export interface OutboxEntry {
  runId: string;
  seq: number;
  kind: WebhookEvent;
  accountId: string;
  siteId: string;
  pipeline: string;
  /** The stored event's JSON. */
  event: string;
}

export interface WebhookStore {
  create(webhook: Webhook): Promise<void>;
  get(webhookId: string): Promise<Webhook | undefined>;
  /** Oldest first; `accountId` set: only that account's. */
  list(filter: { accountId?: string }): Promise<Webhook[]>;
  /** Deletes the subscription with its deliveries and their log; false if there was none. */
  remove(webhookId: string): Promise<boolean>;
  /** Newest first, each with its attempts in order. */
  deliveries(webhookId: string, limit: number): Promise<(Delivery & { log: DeliveryAttempt[] })[]>;
  /**
   * Takes up to `limit` outbox rows, oldest first, makes a delivery for each subscription that
   * matches (its site or every site, its account or every account, the kind among its events),
   * and deletes the rows, in one transaction, one fan-out at a time across instances. Returns
   * how many rows were taken.
   */
  fanOut(limit: number, nowMs: number, makeDelivery: (entry: OutboxEntry, webhook: Webhook) => { deliveryId: string; body: string }): Promise<number>;
  /**
   * Leases to `owner` up to `limit` pending deliveries that are due and unleased, each the
   * earliest pending one of its (subscription, run): so a run's deliveries go out in seq order.
   */
  claim(owner: string, leaseMs: number, limit: number, nowMs: number): Promise<ClaimedDelivery[]>;
  /** Logs the attempt and updates the delivery, if `owner` still holds it; false if not. */
  recordAttempt(owner: string, deliveryId: string, attempt: DeliveryAttempt, outcome: AttemptOutcome): Promise<boolean>;
  /** How many deliveries are pending (for /metrics). */
  countPending(): Promise<number>;
  /**
   * At start: frees the leases a dead process left, where this instance is the only sender
   * (SQLite), so a delivery cut off by a crash is sent again at once rather than when its lease
   * runs out. A no-op where other instances may hold leases (Postgres).
   */
  releaseStaleLeases(owner: string): Promise<void>;
}
