import type { FastifyPluginAsync } from 'fastify';
import type { Engine } from '../engine/engine.js';
import { RunstateError } from '../errors.js';
import { principalOf, requireSite, runIdParam } from '../http.js';

const FIRST_CHOICE = new Set(['running', 'paused']);
const ALSO_SHOWN = new Set(['failed', 'completed']);

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
      const { site_id, run_id } = request.query;
      if (site_id === undefined && run_id === undefined) throw new RunstateError('BAD_REQUEST', 'Give `site_id`, `run_id` or both.');
      if (site_id !== undefined) requireSite(principal, site_id);

      if (run_id !== undefined) {
        const runId = runIdParam(run_id);
        const run = await engine.getRun(runId);
        if (!run || (site_id !== undefined && run.site_id !== site_id)) {
          throw new RunstateError('RUN_NOT_FOUND', `No run with id ${runId}${site_id !== undefined ? ` on site ${site_id}` : ''}.`);
        }
        requireSite(principal, run.site_id);
        const data = ALSO_SHOWN.has(run.status) || FIRST_CHOICE.has(run.status) ? await engine.currentProcessing(runId) : undefined;
        return { data: data ? { run_id: runId, ...data } : null };
      }

      // The site's current run: the newest running or paused one, else the newest failed or
      // completed one not yet closed.
      const runs = await engine.listRuns({ siteIds: [site_id!], open: true, limit: 50 });
      const pick = runs.find((r) => FIRST_CHOICE.has(r.status)) ?? runs.find((r) => ALSO_SHOWN.has(r.status));
      const data = pick ? await engine.currentProcessing(pick.run_id) : undefined;
      return { data: data && pick ? { run_id: pick.run_id, ...data } : null };
    },
  );
};
