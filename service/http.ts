// What every route shares: the principal on the request, the error shape, access checks.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { canSeeSite, type Principal } from './auth/tokens.js';
import { RunstateError, httpError } from './errors.js';
import { InvalidIdError, asId, isRunId } from './ids.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new RunstateError('UNAUTHORIZED');
  return request.principal;
}

export function requireSite(principal: Principal, siteId: string): void {
  if (!canSeeSite(principal, siteId)) throw new RunstateError('FORBIDDEN', `This token may not reach site ${JSON.stringify(siteId)}.`);
}

/** A run id from a path or query, checked before it reaches the store or the file system. */
export function runIdParam(value: unknown): string {
  if (!isRunId(value)) throw new RunstateError('INVALID_RUN_ID', `${JSON.stringify(String(value)).slice(0, 80)} is not a run id (run_<yyyymmdd>_<hhmmss>_<trigger>).`);
  return value;
}

/** An account or site id from a body or query, numbers taken as their decimal strings (docs/api.md). */
export function idParam(value: unknown, field: string): string {
  try {
    return asId(value, field);
  } catch (err) {
    if (err instanceof InvalidIdError) throw new RunstateError('BAD_REQUEST', err.message);
    throw err;
  }
}

export function sendError(reply: FastifyReply, err: RunstateError): FastifyReply {
  const res = httpError(err);
  return reply.status(res.status).send(res.body);
}
