// `GET /runs/:run_id/items`: a stage's items, each with its state, attempts, times, error and
// cost, filtered and paged (docs/api.md, "Items").
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { Engine } from '../engine/engine.js';
import { ITEM_STATUSES, addTimings, currentStageOf, describeItems, pageItems, stageContextOf, type ItemStatus, type ItemTiming } from '../engine/items.js';
import { RunstateError } from '../errors.js';
import { principalOf, requireSite, runIdParam } from '../http.js';
import type { Limiter } from '../limits/limiter.js';
import type { Store } from '../store/store.js';

export interface ItemsRoutesOptions {
  engine: Engine;
  store: Store;
  /** Which items wait for a limit on this instance (service/limits/); none: no item shows `waiting_limit`. */
  limiter?: Limiter;
}

/** Runs whose item timings are kept between requests (each read on from where it stopped). */
const TIMED_RUNS = 64;
const EVENTS_PAGE = 5000;

const itemsQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    stage: { type: 'integer', minimum: 1, description: 'The stage number [default: the current stage]' },
    status: { type: 'string', enum: [...ITEM_STATUSES] },
    after: { type: 'string', minLength: 1, maxLength: 200, description: 'The id of the last item of the previous page' },
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
  },
} as const;

/**
 * The times of each run's finished items, folded from its item events and read on from the
 * last seq seen, so a run of 100,000 events is read once, not per request.
 */
class Timings {
  readonly #runs = new Map<string, { seq: number; byItem: Map<string, ItemTiming> }>();
  readonly #store: Store;
  constructor(store: Store) {
    this.#store = store;
  }

  async of(runId: string, lastSeq: number): Promise<ReadonlyMap<string, ItemTiming>> {
    let kept = this.#runs.get(runId);
    this.#runs.delete(runId);
    kept ??= { seq: 0, byItem: new Map() };
    while (kept.seq < lastSeq) {
      const page = await this.#store.readEvents(runId, kept.seq, EVENTS_PAGE);
      if (page.length === 0) break;
      addTimings(kept.byItem, page);
      kept.seq = page[page.length - 1]!.seq;
    }
    // Most recently asked last: the first key is the one to drop.
    this.#runs.set(runId, kept);
    if (this.#runs.size > TIMED_RUNS) this.#runs.delete(this.#runs.keys().next().value!);
    return kept.byItem;
  }
}

export const itemsRoutes: FastifyPluginAsync<ItemsRoutesOptions> = async (app: FastifyInstance, { engine, store, limiter }) => {
  const timings = new Timings(store);
  app.get<{ Params: { run_id: string }; Querystring: { stage?: number; status?: ItemStatus; after?: string; limit: number } }>(
    '/runs/:run_id/items',
    { schema: { summary: 'A stage’s items: state, attempts, times, error, cost; paged', querystring: itemsQuery } },
    async (request) => {
      const runId = runIdParam(request.params.run_id);
      const view = await engine.getRun(runId);
      if (!view) throw new RunstateError('RUN_NOT_FOUND', `No run with id ${runId}.`);
      requireSite(principalOf(request), view.site_id);
      // Items started or finished a moment ago may still wait in the run's open batch.
      await engine.caughtUp(runId);
      const record = await store.getRun(runId);
      if (!record) throw new RunstateError('RUN_NOT_FOUND', `No run with id ${runId}.`);
      const { status, after, limit } = request.query;
      const stage = request.query.stage ?? currentStageOf(record.snapshot);
      if (stage > view.stages.length) {
        throw new RunstateError('BAD_REQUEST', `querystring/stage must be at most ${view.stages.length}: the run has ${view.stages.length} stages.`);
      }
      const [items, ledger, timed] = await Promise.all([store.getStageItems(runId, stage), store.ledger(runId, stage), timings.of(runId, record.lastSeq)]);
      const waitingLimit = limiter?.waitingItems(runId, stage)?.itemIds;
      const all = describeItems({ stage, items: items ?? [], ledger, context: stageContextOf(record.snapshot, stage), timings: timed, waitingLimit });
      return { stage, total_items: items ? items.length : null, ...pageItems(all, { status, after, limit }) };
    },
  );
};
