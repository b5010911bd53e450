import { pino } from 'pino';
import { buildApp } from '../../service/app.js';
import { TokenRegistry } from '../../service/auth/tokens.js';
import { Hub, type HubOptions } from '../../service/hub/hub.js';
import { Metrics } from '../../service/metrics.js';
import type { AnyPipeline } from '../../service/pipelines/types.js';
import { engineOn } from './engine.js';

export const ADMIN = 'admin-token-0123456789abcdef';
export const SITE5 = 'site5-token-0123456789abcdef';
export const OTHER = 'other-token-0123456789abcdef';

/** The app on a real SQLite store, with an admin token and two scoped ones, and the hub at /ws. */
export async function appOn(dir: string, pipelines: readonly AnyPipeline[], hubOptions: Partial<HubOptions> = {}) {
  const harness = engineOn(dir, pipelines);
  const metrics = new Metrics(harness.store);
  harness.engine.onEvents((_, events) => metrics.observeEvents(events));
  const tokens = new TokenRegistry([
    { token: ADMIN, principal: { name: 'admin', admin: true, accountId: null, siteIds: null } },
    { token: SITE5, principal: { name: 'ops-site-5', admin: false, accountId: 'acme', siteIds: new Set(['site-5']) } },
    { token: OTHER, principal: { name: 'ops-other', admin: false, accountId: 'globex', siteIds: new Set(['site-9']) } },
  ]);
  const logger = pino({ level: 'silent' });
  const hub = new Hub({ engine: harness.engine, tokens, logger, registry: metrics.registry, ...hubOptions });
  harness.engine.onEvents((run, events) => hub.publish(run, events));
  const app = await buildApp({ bodyLimit: 4096 }, { ...harness, tokens, metrics, logger, hub });
  return { ...harness, app, metrics, hub, tokens };
}

export function auth(token: string) {
  return { authorization: `Token ${token}` };
}
