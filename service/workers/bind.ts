// Puts worker jobs in place of a queue stage's work: every stage that names a `queue` gets
// `processItem` (and, unless it loads in process, `loadItems`) from the job queue. The engine
// and its run hosts call stage definitions as they always do and never know the difference.
import type { AnyPipeline, StageDefinition } from '../pipelines/types.js';
import type { JobQueue } from './queue.js';

export function bindQueueStages(pipelines: readonly AnyPipeline[], queue: JobQueue): AnyPipeline[] {
  return pipelines.map((p) => {
    if (!p.stages.some((s) => s.queue !== undefined)) return p;
    const stages = p.stages.map((s: StageDefinition<unknown>): StageDefinition<unknown> => {
      if (s.queue === undefined) return s;
      return {
        ...s,
        processItem: (item, ctx) => queue.processItem(s, item, ctx),
        loadItems: s.loadsInProcess ? s.loadItems : (ctx) => queue.loadItems(s, ctx),
      };
    });
    return { ...p, stages };
  });
}
