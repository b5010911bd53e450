// The door to /ws: path, token and origin are checked on the HTTP upgrade, before any WebSocket opens.
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { type Principal, TokenRegistry } from '../auth/tokens.js';
import { httpError, RunstateError } from '../errors.js';

export const WS_PATH = '/ws';

export interface UpgradeRules {
  tokens: TokenRegistry;
  /** Origins browsers may connect from, besides the service's own. */
  allowedOrigins: readonly string[];
}

/**
 * Who the upgrade comes from, or undefined once it has been refused with a plain HTTP answer
 * in the API's error shape (404 another path, 401 no or a bad token, 403 a foreign origin).
 */
export function admit(req: IncomingMessage, socket: Duplex, rules: UpgradeRules): Principal | undefined {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname !== WS_PATH) return refuse(socket, new RunstateError('NOT_FOUND', `No WebSocket at ${url.pathname}; connect to ${WS_PATH}.`));
  const token = url.searchParams.get('token') ?? TokenRegistry.fromHeader(req.headers.authorization);
  const principal = rules.tokens.authenticate(token ?? undefined);
  if (!principal) return refuse(socket, new RunstateError('UNAUTHORIZED'));
  const origin = req.headers.origin;
  if (origin !== undefined && !originAllowed(origin, req.headers.host, rules.allowedOrigins)) {
    return refuse(socket, new RunstateError('FORBIDDEN', 'This origin may not open a WebSocket here.'));
  }
  return principal;
}

/** A browser's origin is the service's own (same host and port) or one configured. */
function originAllowed(origin: string, host: string | undefined, allowed: readonly string[]): boolean {
  if (allowed.includes(origin)) return true;
  try {
    return host !== undefined && new URL(origin).host === host;
  } catch {
    return false;
  }
}

function refuse(socket: Duplex, err: RunstateError): undefined {
  const res = httpError(err);
  const body = JSON.stringify(res.body);
  const text = STATUS_CODES[res.status] ?? 'Error';
  socket.end(`HTTP/1.1 ${res.status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  return undefined;
}
