// Pipelines whose stages share limit keys, for the limits tests (test/service/limits/): loaded
// in process by appOn, and by spawned services through RUNSTATE_PIPELINES.
import { setTimeout as sleep } from 'node:timers/promises';
import type { AnyPipeline, Item, ItemContext, LoadContext } from '../../service/pipelines/types.js';

interface Options {
  items: number;
  concurrency: number;
  ms: number;
}

const options_schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    items: { type: 'integer', minimum: 0, maximum: 1000, default: 30 },
    concurrency: { type: 'integer', minimum: 1, maximum: 64, default: 4 },
    ms: { type: 'integer', minimum: 0, maximum: 10000, default: 0 },
  },
};

const load = async ({ options, stage }: LoadContext<Options>): Promise<Item[]> => Array.from({ length: options.items }, (_, k) => ({ id: stage * 1000 + k + 1, title: `item ${k + 1}` }));

/** Attempts of `limited_pair` in flight in this process right now, and the most seen at once. */
export const pairFlight = { now: 0, max: 0 };

const pipelines: AnyPipeline[] = [
  {
    name: 'limited_rate',
    description: 'One instant stage on the shared key `shared` at 10 attempts a second',
    options_schema,
    concurrencyOf: (options: Options) => options.concurrency,
    stages: [{ key: 'call', name: 'Call', limit: { key: 'shared', per_second: 10 }, loadItems: load, processItem: async () => ({ cost: 0 }) }],
  },
  {
    name: 'limited_pair',
    description: 'One stage on the key `pair`, two attempts in flight at most; each logs when it begins and ends',
    options_schema,
    concurrencyOf: (options: Options) => options.concurrency,
    stages: [
      {
        key: 'call',
        name: 'Call',
        limit: { key: 'pair', concurrency: 2 },
        loadItems: load,
        async processItem(item: Item, ctx: ItemContext<Options>) {
          pairFlight.now += 1;
          pairFlight.max = Math.max(pairFlight.max, pairFlight.now);
          ctx.log(`begin ${item.id}`);
          try {
            if (ctx.options.ms > 0) await sleep(ctx.options.ms, undefined, { signal: ctx.signal });
          } finally {
            ctx.log(`end ${item.id}`);
            pairFlight.now -= 1;
          }
          return { cost: 0 };
        },
      },
    ],
  },
];

export default pipelines;
