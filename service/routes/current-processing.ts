import type { FastifyPluginAsync } from 'fastify';
import type { Engine } from '../engine/engine.js';
import { pickCurrentRun, processingOf } from '../engine/processing.js';
import { RunstateError } from '../errors.js';
import { idParam, principalOf, requireSite, runIdParam } from '../http.js';

/**
 * `GET /current_processing/`: the processing card's data (docs/api.md). It answers for running,
 * paused, failed and completed-not-closed runs; `data` is null when there is nothing to show
 * (a cancelled or closed run, or a site with no such run).
 */
export const currentProcessingRoutes: FastifyPluginAsync<{ engine: Engine }> = async (app, { engine }) => {
  app.get<{ Querystring: { site_id?: string; run_id?: string } }>(
    '/current_processing',
    {
      schema: {
        summary: 'What a run is processing now: stage, counts, items in flight and up next',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            site_id: { type: 'string', minLength: 1, maxLength: 64 },
            run_id: { type: 'string', minLength: 1, maxLength: 100 },
          },
        },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { run_id } = request.query;
      const site_id = request.query.site_id === undefined ? undefined : idParam(request.query.site_id, 'site_id');
      if (site_id === undefined && run_id === undefined) throw new RunstateError('BAD_REQUEST', 'Give `site_id`, `run_id` or both.');
      if (site_id !== undefined) requireSite(principal, site_id);

      if (run_id !== undefined) {
        const runId = runIdParam(run_id);
        const run = await engine.getRun(runId);
        if (!run || (site_id !== undefined && run.site_id !== site_id)) {
          throw new RunstateError('RUN_NOT_FOUND', `No run with id ${runId}${site_id !== undefined ? ` on site ${site_id}` : ''}.`);
        }
        requireSite(principal, run.site_id);
        return { data: await processingOf(engine, run) };
      }

      const pick = pickCurrentRun(await engine.listRuns({ siteIds: [site_id!], open: true, limit: 50 }));
      return { data: pick ? await processingOf(engine, pick) : null };
    },
  );
};
