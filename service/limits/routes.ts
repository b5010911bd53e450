// `GET /api/v1/automation/limits` (docs/api.md, "Limits"): every declared limit key with its
// numbers, the attempts in flight under it and those waiting, over every instance.
import type { FastifyPluginAsync } from 'fastify';
import type { Limiter } from './limiter.js';
import { reportLimits } from './report.js';
import type { StageLimit } from '../pipelines/limit.js';

export const limitsRoutes: FastifyPluginAsync<{ declared: ReadonlyMap<string, StageLimit>; limiter: Limiter }> = async (app, { declared, limiter }) => {
  app.get(
    '/limits',
    { schema: { summary: 'Limit keys: rate, concurrency, in use, waiting', querystring: { type: 'object', additionalProperties: false, properties: {} } } },
    async () => ({ data: await reportLimits(declared, limiter) }),
  );
};
