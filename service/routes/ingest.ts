import type { FastifyPluginAsync } from 'fastify';
import type { Engine } from '../engine/engine.js';
import { RunstateError, ingestFailure } from '../errors.js';
import { principalOf, requireSite, runIdParam } from '../http.js';
import { ingest } from '../ingest/ingest.js';

export const MAX_EVENTS_PER_REQUEST = 1000;

/**
 * `POST /runs/:run_id/events`: the HTTP door for external engines (docs/ingest.md). The same checks
 * and answers as the socket: one `{ok, seq}` or `{ok: false, error}` per event, in order.
 */
export const ingestRoutes: FastifyPluginAsync<{ engine: Engine; bodyLimit: number }> = async (app, { engine, bodyLimit }) => {
  app.post<{ Params: { run_id: string }; Body: unknown[] }>(
    '/runs/:run_id/events',
    {
      bodyLimit,
      schema: {
        summary: 'Append events of an external run',
        body: { type: 'array', minItems: 1, maxItems: MAX_EVENTS_PER_REQUEST },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const runId = runIdParam(request.params.run_id);
      const run = await engine.getRun(runId);
      if (!run) throw new RunstateError('RUN_NOT_FOUND', `No run with id ${runId}.`);
      requireSite(principal, run.site_id);
      if (!engine.external.serves(run.pipeline)) {
        throw new RunstateError('COMMAND_NOT_ALLOWED', `Run ${runId} is run by the service itself; it takes no events from outside.`);
      }
      // An event may leave run_id out; one naming another run is refused on its own.
      const replies: unknown[] = new Array<unknown>(request.body.length);
      const events: unknown[] = [];
      const at: number[] = [];
      request.body.forEach((e, i) => {
        const obj = typeof e === 'object' && e !== null && !Array.isArray(e) ? (e as Record<string, unknown>) : null;
        if (obj && obj.run_id !== undefined && obj.run_id !== runId) {
          replies[i] = ingestFailure(new RunstateError('BAD_REQUEST', `This event names run ${String(obj.run_id).slice(0, 80)}, not ${runId}.`));
          return;
        }
        events.push(obj && obj.run_id === undefined ? { ...obj, run_id: runId } : e);
        at.push(i);
      });
      (await ingest(engine, principal, events)).forEach((r, k) => (replies[at[k]!] = r));
      return { data: replies };
    },
  );
};
