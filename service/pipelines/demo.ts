import { setTimeout as sleep } from 'node:timers/promises';
import { latency, pick, uniform } from './random.js';
import { type Item, type PipelineDefinition, type StageDefinition } from './types.js';

/** The options that drive the demo pipelines, tests and benchmarks (docs/api.md, POST /runs). */
export interface DemoOptions {
  seed: number;
  delay_ms: number;
  items_per_stage: number[];
  fail_rate: number;
  concurrency: number[];
  max_attempts: number;
  backoff_ms: number;
  /** `content` only: hold Review → Publish for an approval (docs/api.md, approvals). */
  review: boolean;
  /** `content` only: the AI stages share the `demo_ai` limit. */
  ai_limit: boolean;
}

export interface DemoStage {
  key: string;
  name: string;
  /** What one item is called in titles and logs. */
  noun: string;
  /** Items by default. */
  items: number;
  /** Credits one item costs. */
  credits: number;
  /** Waits for approval when the run is started with `review: true`. */
  approval?: boolean;
  /** Calls the (simulated) AI provider: shares the `demo_ai` limit when the run is started with `ai_limit: true`. */
  ai?: boolean;
}

/** The limit the demo's AI stages share when a run asks for it (docs/pipelines.md, "Limits"). */
export const DEMO_AI_LIMIT = { key: 'demo_ai', per_second: 10, concurrency: 4 };

const WORDS = [
  'aurora', 'basalt', 'cobalt', 'delta', 'ember', 'fjord', 'garnet', 'harbor', 'indigo', 'juniper',
  'kelp', 'lumen', 'meadow', 'nebula', 'onyx', 'prairie', 'quartz', 'river', 'saffron', 'tundra',
];

const MAX_ITEMS_PER_STAGE = 100_000;

/** A number for every stage, or one number per stage. */
function perStage(title: string, stages: number, min: number, max: number, fallback: number | number[], description: string) {
  const integer = { type: 'integer', minimum: min, maximum: max };
  return {
    title,
    description,
    oneOf: [integer, { type: 'array', items: integer, minItems: stages, maxItems: stages }],
    default: fallback,
  };
}

/** The JSON Schema of the demo options (docs/pipelines.md); `content` adds `review`. */
export function demoOptionsSchema(stages: readonly DemoStage[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  const n = stages.length;
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    type: 'object',
    additionalProperties: false,
    properties: {
      seed: { title: 'Seed', type: 'integer', minimum: 0, maximum: 2 ** 32 - 1, default: 1, description: 'Items, latencies and failures all follow from it: the same seed, the same run' },
      delay_ms: { title: 'Delay per item (ms)', type: 'number', minimum: 0, maximum: 600_000, default: 400, description: 'Mean time per item, in ms; 0 resolves each item at once' },
      items_per_stage: perStage('Items per stage', n, 0, MAX_ITEMS_PER_STAGE, stages.map((s) => s.items), `Items per stage: one number for every stage, or ${n} numbers; 0 makes a stage empty`),
      fail_rate: { title: 'Failure rate', type: 'number', minimum: 0, maximum: 1, default: 0, description: 'Share of item attempts that throw' },
      concurrency: perStage('Concurrency', n, 1, 256, 2, `Items in flight at once: one number for every stage, or ${n} numbers`),
      max_attempts: { title: 'Attempts per item', type: 'integer', minimum: 1, maximum: 20, default: 3, description: 'Attempts per item, the first included' },
      backoff_ms: { title: 'First retry delay (ms)', type: 'number', minimum: 0, maximum: 600_000, default: 200, description: 'First retry delay, in ms; doubles per attempt' },
      ...extra,
    },
  };
}

/** Options the schema has checked and filled in, as the demo stages use them. */
export function normalizeDemoOptions(valid: Record<string, unknown>, stages: readonly DemoStage[]): DemoOptions {
  const each = (v: unknown) => (Array.isArray(v) ? (v as number[]) : stages.map(() => v as number));
  return {
    seed: valid.seed as number,
    delay_ms: valid.delay_ms as number,
    items_per_stage: each(valid.items_per_stage),
    fail_rate: valid.fail_rate as number,
    concurrency: each(valid.concurrency),
    max_attempts: valid.max_attempts as number,
    backoff_ms: valid.backoff_ms as number,
    review: valid.review === true,
    ai_limit: valid.ai_limit === true,
  };
}

/** Builds a demo pipeline whose items, latencies and failures all follow from `seed`. */
export function demoPipeline(
  name: string,
  description: string,
  stages: readonly DemoStage[],
  extraOptions: Record<string, unknown> = {},
): PipelineDefinition<DemoOptions> {
  const defs: StageDefinition<DemoOptions>[] = stages.map((s, i) => {
    const number = i + 1;
    return {
      key: s.key,
      name: s.name,
      ...(s.ai ? { limit: DEMO_AI_LIMIT } : {}),
      async loadItems({ options, log }) {
        const count = options.items_per_stage[i] ?? 0;
        const items: Item[] = [];
        for (let k = 1; k <= count; k++) {
          items.push({ id: number * 100_000 + k, title: `${s.noun} ${k}: ${pick(WORDS, options.seed, number, k)}` });
        }
        log(count === 0 ? `${s.name}: nothing to process` : `${s.name}: ${count} ${s.noun.toLowerCase()}s to process`);
        return items;
      },
      async processItem(item, { options, attempt, signal }) {
        const ms = latency(options.delay_ms, options.seed, number, item.id, attempt);
        // `delay_ms: 0` resolves at once, with no timer: benchmarks measure the engine (docs/pipelines.md).
        if (ms > 0) await sleep(ms, undefined, { signal });
        else signal.throwIfAborted();
        if (options.fail_rate > 0 && uniform('fail', options.seed, number, item.id, attempt) < options.fail_rate) {
          throw new Error(`simulated failure of ${item.title} (attempt ${attempt})`);
        }
        return { cost: s.credits };
      },
    };
  });
  return {
    name,
    description,
    stages: defs,
    options_schema: demoOptionsSchema(stages, extraOptions),
    parseOptions: (valid) => normalizeDemoOptions(valid as Record<string, unknown>, stages),
    concurrencyOf: (options, stage) => options.concurrency[stage - 1],
    approvalOf: (options, stage) => options.review && stages[stage - 1]?.approval === true,
    limitAppliesOf: (options) => options.ai_limit,
    retry: (options) => ({ attempts: options.max_attempts, backoffMs: options.backoff_ms }),
  };
}
