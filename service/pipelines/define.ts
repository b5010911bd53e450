// The `runstate` package entry: what a pipeline module may import (`import { definePipeline }
// from 'runstate'`), though a plain object default export needs no import at all (docs/pipelines.md).
import type { StageLimit } from './limit.js';
import type { Item, ItemContext, ItemResult, LoadContext, RetryPolicy } from './types.js';

export type { Item, ItemContext, ItemResult, LoadContext, RetryPolicy, StageLimit };

/** A JSON Schema (draft 2020-12) object. */
export type JSONSchema = Record<string, unknown>;

interface StageBase {
  /** Machine-friendly name, reported as `stage_type`: letters, digits, `_`, `.`, `-`. */
  key: string;
  /** Display name, reported as `stage_name`. */
  name: string;
  /** Items in flight at once. [1] */
  concurrency?: number;
  /**
   * A rate or concurrency limit shared by every stage, of every run, on every instance, naming
   * the same key: `{key, per_second?, per_minute?, concurrency?}` (docs/pipelines.md, "Limits").
   */
  limit?: StageLimit;
}

/** A stage whose items run in the service. */
export interface LocalStage<O = Record<string, unknown>> extends StageBase {
  /** The stage's items, each `{id, title, …}`; an empty list makes the stage `empty`. */
  loadItems(ctx: LoadContext<O>): Promise<Item[]> | Item[];
  /**
   * One attempt at one item. Throw to fail the attempt (it is retried with backoff). When
   * `ctx.signal` aborts (cancel, shutdown), stop and throw: the item runs again later with
   * the same `ctx.idempotencyKey`.
   */
  processItem(item: Item, ctx: ItemContext<O>): Promise<ItemResult | void> | ItemResult | void;
  queue?: undefined;
}

/** A stage whose items run on workers pulling from `queue` (docs/workers.md). */
export interface QueueStage<O = Record<string, unknown>> extends StageBase {
  queue: string;
  loadItems?(ctx: LoadContext<O>): Promise<Item[]> | Item[];
  processItem?: undefined;
  max_attempts?: number;
  lease_ms?: number;
}

export type StageDefinition<O = Record<string, unknown>> = LocalStage<O> | QueueStage<O>;

/** What a pipeline module's default export is (or an array of these). */
export interface PipelineDefinition<O = Record<string, unknown>> {
  /** Unique among the service's pipelines: letters, digits, `_`, `.`, `-`. */
  name: string;
  description?: string;
  /** JSON Schema (2020-12) of `POST /runs` `options`; its defaults are filled in. */
  options_schema?: JSONSchema;
  stages: readonly StageDefinition<O>[];
  /** Attempts per item and backoff, fixed or chosen by the options. [3 attempts, 1 s doubling to 60 s] */
  retry?: Partial<RetryPolicy> | ((options: O) => Partial<RetryPolicy>);
}

/**
 * Returns `definition` as it is: it only gives TypeScript the types. `O` is the options'
 * type, as the `options_schema` describes them (with its defaults filled in).
 */
export function definePipeline<O = Record<string, unknown>>(definition: PipelineDefinition<O>): PipelineDefinition<O> {
  return definition;
}
