import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../config.js';
import { InvalidIdError, asId } from '../ids.js';

/** Who a request comes from. */
export interface Principal {
  /** The token's name: recorded as `by` on the commands it sends. */
  name: string;
  admin: boolean;
  /** The account runs it starts belong to; null for the admin (it names one per request). */
  accountId: string | null;
  /** Sites it may see and command; null for the admin (every site). */
  siteIds: ReadonlySet<string> | null;
  /**
   * A worker token (`"role": "worker"`): it may only claim and answer jobs at /api/v1/workers,
   * of these queues (null: any). Never returned by `authenticate`, so no other door sees it.
   */
  worker?: { queues: ReadonlySet<string> | null };
}

interface Entry {
  digest: Buffer;
  principal: Principal;
}

const ADMIN_TOKEN_FILE = 'admin-token';

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/**
 * The tokens the service accepts. Tokens are compared as SHA-256 digests with
 * `timingSafeEqual`, against every entry, so neither a token's content nor its length nor
 * which entry it matched shows in the time a check takes.
 */
export class TokenRegistry {
  readonly #entries: Entry[];

  constructor(principals: readonly { token: string; principal: Principal }[]) {
    this.#entries = principals.map((p) => ({ digest: digest(p.token), principal: p.principal }));
  }

  /**
   * The principal of `Authorization: Token <token>` (or a bare token); undefined when none
   * matches, and for a worker token, which only the workers' door takes (`identify`).
   */
  authenticate(token: string | undefined): Principal | undefined {
    const principal = this.identify(token);
    return principal?.worker ? undefined : principal;
  }

  /** Whoever the token is, worker tokens included. */
  identify(token: string | undefined): Principal | undefined {
    if (token === undefined || token.length === 0 || token.length > 512) return undefined;
    const d = digest(token);
    let found: Principal | undefined;
    for (const e of this.#entries) {
      if (timingSafeEqual(e.digest, d) && found === undefined) found = e.principal;
    }
    return found;
  }

  static fromHeader(header: string | undefined): string | undefined {
    if (!header) return undefined;
    const m = /^Token\s+(\S+)\s*$/i.exec(header);
    return m?.[1];
  }
}

export function canSeeSite(principal: Principal, siteId: string): boolean {
  return principal.siteIds === null || principal.siteIds.has(siteId);
}

/**
 * The admin token: `RUNSTATE_ADMIN_TOKEN`, or the one kept in `<data>/admin-token`, created
 * (mode 0600) on first start. `created` tells the caller to print the URL with it.
 */
export function adminToken(dataDir: string, configured: string | null): { token: string; created: boolean } {
  if (configured !== null) return { token: configured, created: false };
  const path = join(dataDir, ADMIN_TOKEN_FILE);
  if (existsSync(path)) {
    const token = readFileSync(path, 'utf8').trim();
    if (token.length >= 16) return { token, created: false };
  }
  mkdirSync(dataDir, { recursive: true });
  const token = randomBytes(24).toString('base64url');
  writeFileSync(path, `${token}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return { token, created: true };
}

/** Reads `RUNSTATE_TOKENS_FILE`: a JSON list of `{token, name, account_id, site_ids}` (docs/api.md, "Tokens and sites"). */
export function readTokensFile(path: string): { token: string; principal: Principal }[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`RUNSTATE_TOKENS_FILE ${path}: ${(err as Error).message}`);
  }
  if (!Array.isArray(parsed)) throw new ConfigError(`RUNSTATE_TOKENS_FILE ${path}: expected a JSON list of tokens.`);
  const seen = new Set<string>();
  return parsed.map((raw: unknown, i) => {
    const where = `RUNSTATE_TOKENS_FILE ${path}, entry ${i}`;
    const e = (raw ?? {}) as Record<string, unknown>;
    if (typeof e.token !== 'string' || e.token.length < 16) throw new ConfigError(`${where}: \`token\` must be a string of at least 16 characters.`);
    if (seen.has(e.token)) throw new ConfigError(`${where}: the same \`token\` appears twice.`);
    seen.add(e.token);
    if (typeof e.name !== 'string' || e.name.length === 0 || e.name.length > 100) throw new ConfigError(`${where}: \`name\` must be a non-empty string.`);
    if (e.role !== undefined && e.role !== 'worker') throw new ConfigError(`${where}: \`role\` must be "worker" when given.`);
    if (e.role === 'worker') return { token: e.token, principal: workerPrincipal(e.name, e.queues, where) };
    if (e.queues !== undefined) throw new ConfigError(`${where}: \`queues\` applies to \`"role": "worker"\` tokens only.`);
    if (!Array.isArray(e.site_ids)) throw new ConfigError(`${where}: \`site_ids\` must be a list of site ids.`);
    const siteIds = e.site_ids as unknown[];
    let accountId: string;
    let sites: string[];
    try {
      // Ids may be JSON numbers, as in the API: `5` is the site "5" (docs/operations.md).
      accountId = asId(e.account_id, 'account_id');
      sites = siteIds.map((id, k) => asId(id, `site_ids[${k}]`));
    } catch (err) {
      if (err instanceof InvalidIdError) throw new ConfigError(`${where}: ${err.message}`);
      throw err;
    }
    return {
      token: e.token,
      principal: { name: e.name, admin: false, accountId, siteIds: new Set(sites) },
    };
  });
}

function workerPrincipal(name: string, queues: unknown, where: string): Principal {
  if (queues !== undefined && (!Array.isArray(queues) || queues.some((q) => typeof q !== 'string' || !/^[A-Za-z0-9_.:-]{1,100}$/.test(q)))) {
    throw new ConfigError(`${where}: \`queues\` must be a list of queue names (1–100 letters, digits, \`_\`, \`.\`, \`:\` or \`-\`).`);
  }
  return {
    name,
    admin: false,
    accountId: null,
    siteIds: new Set(),
    worker: { queues: queues === undefined ? null : new Set(queues as string[]) },
  };
}

export const ADMIN_NAME = 'admin';
