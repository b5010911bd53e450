import type { StageLimit } from './limit.js';
import type { Item } from '../store/store.js';

export type { Item };

/** What a stage's `loadItems` gets. */
export interface LoadContext<O> {
  runId: string;
  stage: number;
  options: O;
  signal: AbortSignal;
  /** Appends an `activity_log` event to the run. */
  log(message: string): void;
}

/** What `processItem` gets for one attempt. */
export interface ItemContext<O> extends LoadContext<O> {
  /** `<run_id>:<stage>:<item_id>`: the same on every attempt and after a crash. */
  idempotencyKey: string;
  /** 1 on the first attempt. */
  attempt: number;
}

export interface ItemResult {
  /** AI credits (or any cost unit) the item used; summed into `credits_used`. */
  cost?: number;
}

export interface StageDefinition<O = unknown> {
  /** Machine-friendly name, reported as `stage_type`. */
  key: string;
  /** Display name, reported as `stage_name`. */
  name: string;
  /** Items in flight at once; options may override it. */
  concurrency?: number;
  /** The run waits in `awaiting_approval` until someone approves this stage; options may override it. [false] */
  approval?: boolean;
  /**
   * A worker queue (docs/workers.md): the stage's items, and its load unless the
   * stage's own `loadItems` is kept, are jobs that workers claim over HTTP. The service puts
   * the queue's `loadItems`/`processItem` in place of the definition's (service/workers/bind.ts).
   */
  queue?: string;
  /** A worker's lease of one job of this stage, in ms. [RUNSTATE_JOB_LEASE_MS, 30000] */
  leaseMs?: number;
  /** With `queue`: whether `loadItems` runs here (true) or is a `load` job for a worker. [false] */
  loadsInProcess?: boolean;
  /** Attempts per item in this stage, over the pipeline's `retry.attempts`. */
  maxAttempts?: number;
  /** A rate or concurrency limit shared by every stage naming its key (service/limits/, docs/pipelines.md). */
  limit?: StageLimit;
  loadItems(ctx: LoadContext<O>): Promise<Item[]>;
  processItem(item: Item, ctx: ItemContext<O>): Promise<ItemResult | void>;
}

export interface RetryPolicy {
  /** Attempts per item, the first included. */
  attempts: number;
  /** First backoff; doubles per attempt. */
  backoffMs: number;
  backoffMaxMs: number;
}

/**
 * A pipeline as the engine runs it (what a user writes is `definePipeline`'s shape,
 * service/pipelines/define.ts). The `options` of `POST /runs` are checked against
 * `options_schema` (defaults filled in, service/pipelines/schema.ts), then `parseOptions`,
 * if given, turns them into `O`, throwing `PipelineOptionsError` naming a bad option.
 */
export interface PipelineDefinition<O = unknown> {
  name: string;
  description?: string;
  /** JSON Schema (draft 2020-12) of the options; the start form is built from it. */
  options_schema?: Record<string, unknown>;
  stages: readonly StageDefinition<O>[];
  parseOptions?(raw: unknown): O;
  /** Per-stage concurrency chosen by the options, when they choose it. */
  concurrencyOf?(options: O, stage: number): number | undefined;
  /** Whether the options make a stage wait for approval, when they choose it. */
  approvalOf?(options: O, stage: number): boolean | undefined;
  /** Whether a stage's `limit` applies to this run, when the options choose it. [true] */
  limitAppliesOf?(options: O, stage: number): boolean;
  retry?: Partial<RetryPolicy> | ((options: O) => Partial<RetryPolicy>);
}

export class PipelineOptionsError extends Error {
  readonly code = 'INVALID_OPTIONS';
}

export type AnyPipeline = PipelineDefinition<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
