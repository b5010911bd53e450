// `/webhooks`: subscribe a URL to run events, list and delete subscriptions, read the delivery
// log (docs/api.md, "Webhooks").
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { Principal } from '../auth/tokens.js';
import { RunstateError } from '../errors.js';
import { principalOf, requireSite } from '../http.js';
import { WEBHOOK_EVENTS, type WebhookEvent } from '../store/outbox.js';
import type { Webhook, WebhookStore } from '../webhooks/types.js';
import { WebhookUrlError, checkWebhookUrl, type Resolve } from '../webhooks/url-guard.js';

export interface WebhookRoutesOptions {
  webhooks: WebhookStore;
  /** RUNSTATE_WEBHOOKS_ALLOW_PRIVATE: loopback and private addresses accepted. */
  allowPrivate: boolean;
  /** How host names are resolved for the address check. [dns.lookup, every address] */
  resolve?: Resolve;
}

const NAME = { type: 'string', minLength: 1, maxLength: 64 } as const;
const WEBHOOK_ID = /^wh_[0-9a-f]{24}$/;

const createBody = {
  type: 'object',
  additionalProperties: false,
  required: ['url', 'events', 'secret'],
  properties: {
    site_id: { ...NAME, description: 'Only runs of this site; required for tokens scoped to sites [default: every site]' },
    url: { type: 'string', minLength: 1, maxLength: 2048, description: 'http(s); loopback, link-local and private addresses refused' },
    events: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', enum: [...WEBHOOK_EVENTS] } },
    secret: { type: 'string', minLength: 16, maxLength: 256, description: 'Signs each body: X-Runstate-Signature: sha256=<hex HMAC-SHA256>' },
  },
} as const;

/** A subscription as the API shows it: never its secret. */
function view(w: Webhook) {
  return { webhook_id: w.webhookId, account_id: w.accountId, site_id: w.siteId, url: w.url, events: w.events, created_by: w.createdBy, created_at: w.createdAt };
}

function canSee(principal: Principal, w: Webhook): boolean {
  if (principal.admin) return true;
  return w.accountId === principal.accountId && w.siteId !== null && (principal.siteIds?.has(w.siteId) ?? true);
}

async function visibleWebhook(webhooks: WebhookStore, principal: Principal, id: string): Promise<Webhook> {
  const w = WEBHOOK_ID.test(id) ? await webhooks.get(id) : undefined;
  if (!w || !canSee(principal, w)) throw new RunstateError('WEBHOOK_NOT_FOUND', `No webhook with id ${JSON.stringify(id.slice(0, 80))}.`);
  return w;
}

export const webhooksRoutes: FastifyPluginAsync<WebhookRoutesOptions> = async (app: FastifyInstance, opts) => {
  const { webhooks } = opts;

  app.post<{ Body: { site_id?: string; url: string; events: WebhookEvent[]; secret: string } }>(
    '/webhooks',
    { schema: { summary: 'Subscribe a URL to run events', body: createBody } },
    async (request, reply) => {
      const principal = principalOf(request);
      const { site_id, url, events, secret } = request.body;
      if (site_id !== undefined) requireSite(principal, site_id);
      else if (!principal.admin) throw new RunstateError('BAD_REQUEST', 'Expected `site_id`: this token reaches only some sites.');
      let checked: URL;
      try {
        checked = await checkWebhookUrl(url, { allowPrivate: opts.allowPrivate, ...(opts.resolve ? { resolve: opts.resolve } : {}) });
      } catch (err) {
        if (err instanceof WebhookUrlError) throw new RunstateError('INVALID_WEBHOOK_URL', err.message);
        throw err;
      }
      const webhook: Webhook = {
        webhookId: `wh_${randomBytes(12).toString('hex')}`,
        accountId: principal.admin ? null : principal.accountId,
        siteId: site_id ?? null,
        url: checked.toString(),
        events: [...events],
        secret,
        createdBy: principal.name,
        createdAt: new Date().toISOString(),
      };
      await webhooks.create(webhook);
      request.log.info({ webhookId: webhook.webhookId, siteId: webhook.siteId, events }, 'webhook created');
      return reply.status(201).send({ data: view(webhook) });
    },
  );

  app.get<{ Querystring: { site_id?: string } }>(
    '/webhooks',
    { schema: { summary: 'List webhook subscriptions', querystring: { type: 'object', additionalProperties: false, properties: { site_id: NAME } } } },
    async (request) => {
      const principal = principalOf(request);
      const { site_id } = request.query;
      if (site_id !== undefined) requireSite(principal, site_id);
      const all = await webhooks.list(principal.admin ? {} : { accountId: principal.accountId ?? '' });
      return { data: all.filter((w) => canSee(principal, w) && (site_id === undefined || w.siteId === site_id)).map(view) };
    },
  );

  app.delete<{ Params: { webhook_id: string } }>('/webhooks/:webhook_id', { schema: { summary: 'Delete a subscription and its delivery log' } }, async (request) => {
    const w = await visibleWebhook(webhooks, principalOf(request), request.params.webhook_id);
    await webhooks.remove(w.webhookId);
    request.log.info({ webhookId: w.webhookId }, 'webhook deleted');
    return { data: { webhook_id: w.webhookId, deleted: true } };
  });

  app.get<{ Params: { webhook_id: string }; Querystring: { limit: number } }>(
    '/webhooks/:webhook_id/deliveries',
    {
      schema: {
        summary: 'The delivery log: each delivery, newest first, with every attempt',
        querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: 500, default: 100 } } },
      },
    },
    async (request) => {
      const w = await visibleWebhook(webhooks, principalOf(request), request.params.webhook_id);
      const list = await webhooks.deliveries(w.webhookId, request.query.limit);
      return {
        data: list.map((d) => ({
          delivery_id: d.deliveryId,
          event: d.kind,
          run_id: d.runId,
          seq: d.seq,
          status: d.status,
          attempts: d.attempts,
          next_attempt_at: d.status === 'pending' ? new Date(d.nextAt).toISOString() : null,
          delivered_at: d.deliveredAt,
          last_error: d.lastError,
          created_at: d.createdAt,
          log: d.log.map((a) => ({ attempt: a.attempt, at: a.at, status_code: a.statusCode, error: a.error, duration_ms: a.durationMs })),
        })),
      };
    },
  );
};
