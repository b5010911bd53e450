// The webhook sender: fans the outbox out to deliveries, claims due deliveries with a lease,
// and POSTs each, signed, until the receiver answers 2xx or 24 h have passed (docs/api.md,
// "Webhooks"). At least once: a delivery is marked delivered only after a 2xx, so a crash or a
// lost lease means it is sent again, with the same `X-Runstate-Delivery`.
import { createHmac, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { errorMessage } from '../format.js';
import { readForMetrics } from '../metrics.js';
import { guardedLookup, isPrivateAddress } from './url-guard.js';
import type { ClaimedDelivery, OutboxEntry, Webhook, WebhookStore } from './types.js';

export interface WebhookSenderOptions {
  store: WebhookStore;
  /** This instance's name in delivery leases. */
  owner: string;
  logger: Logger;
  /** [allowPrivate=false] RUNSTATE_WEBHOOKS_ALLOW_PRIVATE: may connect to loopback and private addresses. */
  allowPrivate?: boolean;
  /** [timeoutMs=10000] one attempt, connection to the end of the answer. */
  timeoutMs?: number;
  /** [backoffMs=1000] the wait before the first retry; it doubles each time, with jitter. */
  backoffMs?: number;
  /** [backoffMaxMs=3600000] the longest wait between attempts. */
  backoffMaxMs?: number;
  /** [giveUpAfterMs=86400000] retries stop this long after the delivery was made. */
  giveUpAfterMs?: number;
  /** [pollMs=1000] how often the outbox and due retries are looked at when nothing nudges. */
  pollMs?: number;
  /** [batch=32] outbox rows fanned out, and deliveries claimed, per round. */
  batch?: number;
  /** Where `runstate_webhook_deliveries_total` is registered; none: not counted. */
  registry?: Registry;
  /** [now=Date.now] */
  now?: () => number;
  /** [random=Math.random] for the jitter. */
  random?: () => number;
}

/** `sha256=<hex HMAC-SHA256 of the body>`, the value of `X-Runstate-Signature`. */
export function signature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** A new delivery's id and body: the same bytes on every attempt. */
export function makeDelivery(entry: OutboxEntry, webhook: Webhook, nowMs: number): { deliveryId: string; body: string } {
  const deliveryId = `dlv_${randomBytes(12).toString('hex')}`;
  const body = JSON.stringify({
    delivery_id: deliveryId,
    webhook_id: webhook.webhookId,
    event: entry.kind,
    created_at: new Date(nowMs).toISOString(),
    run: { run_id: entry.runId, account_id: entry.accountId, site_id: entry.siteId, pipeline: entry.pipeline },
    seq: entry.seq,
    data: JSON.parse(entry.event) as unknown,
  });
  return { deliveryId, body };
}

/** The wait before attempt `attempts + 1`: exponential, capped, jittered over its upper half. */
export function backoffDelay(attempts: number, baseMs: number, maxMs: number, random: () => number): number {
  const full = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempts - 1));
  return Math.round(full / 2 + (random() * full) / 2);
}

interface AttemptResult {
  statusCode: number | null;
  error: string | null;
}

export class WebhookSender {
  readonly #o: Required<Omit<WebhookSenderOptions, 'registry'>>;
  readonly #sent: Counter<'outcome'> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = true;

  constructor(options: WebhookSenderOptions) {
    this.#o = {
      allowPrivate: false,
      timeoutMs: 10_000,
      backoffMs: 1000,
      backoffMaxMs: 3_600_000,
      giveUpAfterMs: 24 * 3_600_000,
      pollMs: 1000,
      batch: 32,
      now: Date.now,
      random: Math.random,
      ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
    } as Required<Omit<WebhookSenderOptions, 'registry'>>;
    for (const key of ['timeoutMs', 'backoffMs', 'backoffMaxMs', 'giveUpAfterMs', 'pollMs', 'batch'] as const) {
      const v = this.#o[key];
      if (!Number.isFinite(v) || v <= 0) throw new TypeError(`Expected \`${key}\` to be a positive number, got ${String(v)}.`);
    }
    this.#sent = options.registry
      ? new Counter({
          name: 'runstate_webhook_deliveries_total',
          help: 'Webhook delivery attempts, by outcome (delivered, retry, failed: given up)',
          labelNames: ['outcome'],
          registers: [options.registry],
        })
      : undefined;
    if (options.registry) {
      const store = options.store;
      new Gauge({
        name: 'runstate_webhook_deliveries_pending',
        help: 'Webhook deliveries not yet answered 2xx nor given up on',
        registers: [options.registry],
        async collect() {
          const pending = await readForMetrics(() => store.countPending());
          if (pending !== undefined) this.set(pending);
        },
      });
    }
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#o.store
      .releaseStaleLeases(this.#o.owner)
      .catch((err: unknown) => this.#o.logger.warn({ err }, 'could not free stale webhook leases; they run out by themselves'))
      .finally(() => this.nudge());
  }

  /** Something may be in the outbox: look now rather than at the next poll. */
  nudge(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
      if (!this.#stopped) this.#timer = setTimeout(() => this.nudge(), this.#again ? 0 : this.#o.pollMs).unref();
      this.#again = false;
    });
  }

  /** Stops polling and waits for the attempts in flight (their outcome is recorded). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  /** One full round: fan out, then send until nothing is due. Exposed for tests. */
  async #loop(): Promise<void> {
    try {
      for (let rounds = 0; rounds < 100 && !this.#stopped; rounds++) {
        const now = this.#o.now();
        while ((await this.#o.store.fanOut(this.#o.batch, now, (e, w) => makeDelivery(e, w, now))) === this.#o.batch);
        const due = await this.#o.store.claim(this.#o.owner, this.#o.timeoutMs * 2 + 5000, this.#o.batch, this.#o.now());
        if (due.length === 0) return;
        await Promise.all(due.map((d) => this.#deliver(d)));
      }
    } catch (err) {
      this.#o.logger.warn({ err }, 'webhook round failed; retrying at the next poll');
    }
  }

  async #deliver(d: ClaimedDelivery): Promise<void> {
    const started = performance.now();
    const at = new Date(this.#o.now()).toISOString();
    const result = await this.#post(d);
    const durationMs = Math.round((performance.now() - started) * 100) / 100;
    const attempt = d.attempts + 1;
    const ok = result.statusCode !== null && result.statusCode >= 200 && result.statusCode < 300;
    const now = this.#o.now();
    const wait = backoffDelay(attempt, this.#o.backoffMs, this.#o.backoffMaxMs, this.#o.random);
    const givingUp = !ok && now + wait - d.firstAt > this.#o.giveUpAfterMs;
    const lastError = ok ? null : (result.error ?? `HTTP ${result.statusCode}`);
    const status = ok ? 'delivered' : givingUp ? 'failed' : 'pending';
    const held = await this.#o.store.recordAttempt(
      this.#o.owner,
      d.deliveryId,
      { attempt, at, statusCode: result.statusCode, error: result.error, durationMs },
      { status, nextAt: ok || givingUp ? now : now + wait, lastError, deliveredAt: ok ? new Date(now).toISOString() : null },
    );
    this.#sent?.inc({ outcome: ok ? 'delivered' : givingUp ? 'failed' : 'retry' });
    const log = this.#o.logger;
    if (!held) log.warn({ deliveryId: d.deliveryId }, 'webhook delivery lease was lost; another instance may send it again');
    else if (givingUp) log.warn({ deliveryId: d.deliveryId, webhookId: d.webhookId, attempts: attempt, lastError }, 'webhook delivery given up');
    else if (!ok) log.info({ deliveryId: d.deliveryId, attempt, lastError, retryInMs: wait }, 'webhook delivery failed; will retry');
  }

  #post(d: ClaimedDelivery): Promise<AttemptResult> {
    return new Promise<AttemptResult>((resolve) => {
      let url: URL;
      try {
        url = new URL(d.url);
      } catch {
        resolve({ statusCode: null, error: 'the URL is not valid' });
        return;
      }
      const host = url.hostname.replace(/^\[|\]$/g, '');
      if (!this.#o.allowPrivate && isIP(host) !== 0 && isPrivateAddress(host)) {
        resolve({ statusCode: null, error: `${host} is a private address` });
        return;
      }
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      let settled = false;
      const done = (r: AttemptResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(r);
      };
      const req = send(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(d.body),
          'user-agent': 'runstate-webhooks/1',
          'x-runstate-delivery': d.deliveryId,
          'x-runstate-event': d.kind,
          'x-runstate-signature': signature(d.secret, d.body),
        },
        ...(this.#o.allowPrivate ? {} : { lookup: guardedLookup }),
      });
      const timer = setTimeout(() => {
        req.destroy();
        done({ statusCode: null, error: `no answer within ${this.#o.timeoutMs} ms` });
      }, this.#o.timeoutMs);
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => done({ statusCode: res.statusCode ?? null, error: null }));
        res.on('error', (err) => done({ statusCode: null, error: errorMessage(err) }));
      });
      req.on('error', (err) => done({ statusCode: null, error: errorMessage(err) }));
      req.end(d.body);
    });
  }
}
