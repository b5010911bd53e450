// Puts the limit gate in front of every stage that declares a `limit`: its `processItem`
// waits for a slot and a token first (service/limits/limiter.ts) and gives the slot back when
// done. For a worker queue stage the gate comes before the job is queued, so `POST
// /workers/claim` can never hand out a job beyond the limit (docs/workers.md).
import type { AnyPipeline, StageDefinition } from '../pipelines/types.js';
import type { Limiter } from './limiter.js';

export function bindLimits(pipelines: readonly AnyPipeline[], limiter: Limiter): AnyPipeline[] {
  return pipelines.map((p) => {
    if (!p.stages.some((s) => s.limit !== undefined)) return p;
    const stages = p.stages.map((s: StageDefinition<unknown>): StageDefinition<unknown> => {
      const limit = s.limit;
      if (limit === undefined) return s;
      return {
        ...s,
        async processItem(item, ctx) {
          if (p.limitAppliesOf?.(ctx.options, ctx.stage) === false) return s.processItem(item, ctx);
          const permit = await limiter.acquire(limit, { runId: ctx.runId, stage: ctx.stage, itemId: String(item.id) }, ctx.signal);
          try {
            return await s.processItem(item, ctx);
          } finally {
            permit.release();
          }
        },
      };
    });
    return { ...p, stages };
  });
}
