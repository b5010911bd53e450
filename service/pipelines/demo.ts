import { setTimeout as sleep } from 'node:timers/promises';
import { latency, pick, uniform } from './random.js';
import { PipelineOptionsError, type Item, type PipelineDefinition, type StageDefinition } from './types.js';

/** The options that drive the demo pipelines, tests and benchmarks (docs/api.md, POST /runs). */
export interface DemoOptions {
  seed: number;
  delay_ms: number;
  items_per_stage: number[];
  fail_rate: number;
  concurrency: number[];
  max_attempts: number;
  backoff_ms: number;
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
}

const WORDS = [
  'aurora', 'basalt', 'cobalt', 'delta', 'ember', 'fjord', 'garnet', 'harbor', 'indigo', 'juniper',
  'kelp', 'lumen', 'meadow', 'nebula', 'onyx', 'prairie', 'quartz', 'river', 'saffron', 'tundra',
];

const KNOWN = ['seed', 'delay_ms', 'items_per_stage', 'fail_rate', 'concurrency', 'max_attempts', 'backoff_ms'];

const MAX_ITEMS_PER_STAGE = 100_000;

function finite(raw: Record<string, unknown>, name: string, fallback: number, min: number, max: number, integer: boolean): number {
  const value = raw[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new PipelineOptionsError(`Expected \`${name}\` to be a finite number, got ${JSON.stringify(value)}.`);
  }
  if (integer && !Number.isInteger(value)) throw new PipelineOptionsError(`Expected \`${name}\` to be an integer, got ${value}.`);
  if (value < min || value > max) throw new PipelineOptionsError(`Expected \`${name}\` to be between ${min} and ${max}, got ${value}.`);
  return value;
}

/** A number for every stage, or one number per stage. */
function perStage(raw: Record<string, unknown>, name: string, fallback: number[], min: number, max: number): number[] {
  const value = raw[name];
  if (value === undefined) return fallback;
  if (Array.isArray(value)) {
    if (value.length !== fallback.length) {
      throw new PipelineOptionsError(`Expected \`${name}\` to list ${fallback.length} stages, got ${value.length}.`);
    }
    return value.map((v, i) => finite({ [`${name}[${i}]`]: v }, `${name}[${i}]`, 0, min, max, true));
  }
  const n = finite(raw, name, 0, min, max, true);
  return fallback.map(() => n);
}

export function parseDemoOptions(raw: unknown, stages: readonly DemoStage[]): DemoOptions {
  if (raw === undefined || raw === null) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new PipelineOptionsError('Expected `options` to be an object.');
  const obj = raw as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!KNOWN.includes(key)) throw new PipelineOptionsError(`Unknown option \`${key}\`; known options: ${KNOWN.join(', ')}.`);
  }
  return {
    seed: finite(obj, 'seed', 1, 0, 2 ** 32 - 1, true),
    delay_ms: finite(obj, 'delay_ms', 400, 0, 600_000, false),
    items_per_stage: perStage(obj, 'items_per_stage', stages.map((s) => s.items), 0, MAX_ITEMS_PER_STAGE),
    fail_rate: finite(obj, 'fail_rate', 0, 0, 1, false),
    concurrency: perStage(obj, 'concurrency', stages.map(() => 2), 1, 256),
    max_attempts: finite(obj, 'max_attempts', 3, 1, 20, true),
    backoff_ms: finite(obj, 'backoff_ms', 200, 0, 600_000, false),
  };
}

/** Builds a demo pipeline whose items, latencies and failures all follow from `seed`. */
export function demoPipeline(name: string, description: string, stages: readonly DemoStage[]): PipelineDefinition<DemoOptions> {
  const defs: StageDefinition<DemoOptions>[] = stages.map((s, i) => {
    const number = i + 1;
    return {
      key: s.key,
      name: s.name,
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
        await sleep(latency(options.delay_ms, options.seed, number, item.id, attempt), undefined, { signal });
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
    parseOptions: (raw) => parseDemoOptions(raw, stages),
    concurrencyOf: (options, stage) => options.concurrency[stage - 1],
    retry: (options) => ({ attempts: options.max_attempts, backoffMs: options.backoff_ms }),
  };
}
