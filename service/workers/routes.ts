// `/api/v1/workers` (docs/workers.md): the HTTP door for workers. Only worker
// tokens and the admin token get in; a worker token gets nowhere else (app.ts).
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { TokenRegistry, type Principal } from '../auth/tokens.js';
import { RunstateError } from '../errors.js';
import type { WorkerDoor } from './door.js';

export const WORKERS_PREFIX = '/api/v1/workers';

declare module 'fastify' {
  interface FastifyRequest {
    worker: Principal | null;
  }
}

export const workerRoutes: FastifyPluginAsync<{ door: WorkerDoor; tokens: TokenRegistry; bodyLimit: number }> = async (app, { door, tokens, bodyLimit }) => {
  app.decorateRequest('worker', null);
  app.addHook('onRequest', async (request) => {
    const principal = tokens.identify(TokenRegistry.fromHeader(request.headers.authorization));
    if (!principal) throw new RunstateError('UNAUTHORIZED');
    if (!principal.admin && !principal.worker) throw new RunstateError('FORBIDDEN', 'Only worker tokens and the admin token may use /api/v1/workers.');
    request.worker = principal;
  });
  const who = (request: { worker: Principal | null }): Principal => {
    if (!request.worker) throw new RunstateError('UNAUTHORIZED');
    return request.worker;
  };
  type JobReq = { Params: { job_id: string }; Body: unknown };
  // A fleet of workers sends thousands of these a second: two info lines each would flood the
  // log and cost more than the request. Warnings and errors are still logged.
  const quiet = { logLevel: 'warn' } as const;

  app.get('/', { schema: { summary: 'Workers seen in the last minute, by any instance' } }, async () => ({ workers: await door.seen() }));
  /** A worker that hangs up during a long poll is stopping: claim nothing for it after that. */
  const untilGone = async <T>(reply: FastifyReply, work: (gone: AbortSignal) => Promise<T>): Promise<T> => {
    const gone = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableEnded) gone.abort();
    };
    reply.raw.once('close', onClose);
    try {
      return await work(gone.signal);
    } finally {
      reply.raw.off('close', onClose);
    }
  };
  app.post<{ Body: unknown }>('/claim', { ...quiet, schema: { summary: 'Claim jobs of a queue' } }, async (request, reply) =>
    untilGone(reply, (gone) => door.claim(who(request), request.body, gone)),
  );
  app.post<JobReq>('/jobs/:job_id/heartbeat', { ...quiet, schema: { summary: "Extend a job's lease" } }, async (request) =>
    door.heartbeat(who(request), request.params.job_id, request.body),
  );
  // A load's answer is the stage's whole item list: larger than a command.
  app.post<JobReq>('/jobs/:job_id/complete', { ...quiet, bodyLimit, schema: { summary: 'Complete a job' } }, async (request) =>
    door.complete(who(request), request.params.job_id, request.body),
  );
  // Several answers at once: as large as as many completions.
  app.post<{ Body: unknown }>('/answers', { ...quiet, bodyLimit, schema: { summary: 'Complete or fail several jobs at once, and claim the next' } }, async (request, reply) =>
    untilGone(reply, (gone) => door.answers(who(request), request.body, gone)),
  );
  app.post<JobReq>('/jobs/:job_id/release', { schema: { summary: 'Give a claimed job back unanswered' } }, async (request) =>
    door.release(who(request), request.params.job_id),
  );
  app.post<JobReq>('/jobs/:job_id/fail', { ...quiet, schema: { summary: 'Fail an attempt' } }, async (request) =>
    door.fail(who(request), request.params.job_id, request.body),
  );
};

/**
 * `GET /api/v1/automation/workers`: the same list for the dashboard, with any token the
 * automation API takes (workers are not per site), and per queue the jobs waiting and in
 * flight, claim-to-answer times and lost leases.
 */
export const workersOverviewRoute: FastifyPluginAsync<{ door: WorkerDoor }> = async (app, { door }) => {
  app.get('/workers', { schema: { summary: 'Workers seen in the last minute, and per queue the jobs waiting and in flight' } }, async () => ({ data: await door.overview() }));
};
