// The service as server.ts builds it (service/service.ts), on a temporary data dir: the real
// config loader, the real tokens file, SQLite, traces, metrics and the hub at /ws.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../service/config.js';
import { buildService, type ServiceOverrides } from '../../service/service.js';
import type { AnyPipeline } from '../../service/pipelines/types.js';
import { recordEvents } from './engine.js';

export const ADMIN = 'admin-token-0123456789abcdef';
export const SITE5 = 'site5-token-0123456789abcdef';
export const OTHER = 'other-token-0123456789abcdef';

/** The scoped tokens every app gets, as a `RUNSTATE_TOKENS_FILE` holds them. */
export const TOKENS_FILE = [
  { token: SITE5, name: 'ops-site-5', account_id: 'acme', site_ids: ['site-5'] },
  { token: OTHER, name: 'ops-other', account_id: 'globex', site_ids: ['site-9'] },
];

export interface AppOptions extends Omit<ServiceOverrides, 'pipelines' | 'hub'> {
  /** Settings as the environment gives them, over the test's defaults. */
  env?: Record<string, string>;
  /** [TOKENS_FILE] The tokens file's entries (written to the data dir). */
  tokens?: unknown;
}

/**
 * The service on a real SQLite store in `dir`, with an admin token and two scoped ones, the hub
 * at /ws and no dashboard. Not started: `app.inject` works at once; `start()` recovers and
 * listens on a free port; `stop()` is the service's own shutdown.
 */
export async function appOn(dir: string, pipelines: readonly AnyPipeline[], hub: ServiceOverrides['hub'] = {}, opts: AppOptions = {}) {
  const { env = {}, tokens = TOKENS_FILE, ...overrides } = opts;
  const tokensFile = join(dir, 'tokens.json');
  writeFileSync(tokensFile, JSON.stringify(tokens));
  const config = loadConfig(
    {
      RUNSTATE_DATA: dir,
      PORT: '0',
      RUNSTATE_ADMIN_TOKEN: ADMIN,
      RUNSTATE_TOKENS_FILE: tokensFile,
      RUNSTATE_BODY_LIMIT: '4096',
      ...env,
    },
    dir,
  );
  const service = await buildService(config, { webRoot: null, ...overrides, pipelines, hub });
  return { ...service, config, ...recordEvents(service.engine) };
}

export function auth(token: string) {
  return { authorization: `Token ${token}` };
}
