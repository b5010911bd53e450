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
   * The worker queue this stage's items run on (docs/workers.md), instead of `processItem` here.
   * Such a pipeline is listed, but not started until the service has workers.
   */
  queue?: string;
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
  retry?: Partial<RetryPolicy> | ((options: O) => Partial<RetryPolicy>);
}

export class PipelineOptionsError extends Error {
  readonly code = 'INVALID_OPTIONS';
}

export type AnyPipeline = PipelineDefinition<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
