import type { Item, PipelineDefinition } from '../../service/pipelines/types.js';

interface Pending {
  stage: number;
  item: Item;
  attempt: number;
  key: string;
  signal: AbortSignal;
  resolve: (cost: number) => void;
  reject: (err: Error) => void;
}

/**
 * A pipeline whose items finish only when the test says so: every step of a run is the
 * test's choice, so no test waits on a clock.
 */
export function gatedPipeline(
  name: string,
  itemsPerStage: readonly number[],
  opts: { concurrency?: number; attempts?: number; loadFails?: number; holdLoadOf?: number } = {},
) {
  const pending: Pending[] = [];
  const started: { stage: number; id: Item['id']; attempt: number; key: string }[] = [];
  const aborted: string[] = [];
  let loadFailures = opts.loadFails ?? 0;
  const waiters: (() => void)[] = [];
  const notify = () => waiters.splice(0).forEach((w) => w());
  let releaseHeldLoad: () => void = () => {};
  const heldLoad = new Promise<void>((resolve) => (releaseHeldLoad = resolve));
  let loadHeld = false;

  const pipeline: PipelineDefinition<Record<string, never>> = {
    name,
    parseOptions: () => ({}),
    concurrencyOf: () => opts.concurrency ?? 1,
    retry: { attempts: opts.attempts ?? 2, backoffMs: 0, backoffMaxMs: 0 },
    stages: itemsPerStage.map((count, i) => ({
      key: `stage_${i + 1}`,
      name: `Stage ${i + 1}`,
      async loadItems({ stage }) {
        if (stage === opts.holdLoadOf) {
          loadHeld = true;
          notify();
          await heldLoad;
        }
        if (loadFailures > 0) {
          loadFailures -= 1;
          throw new Error('item source unavailable');
        }
        return Array.from({ length: count }, (_, k) => ({ id: stage * 100 + k + 1, title: `item ${stage}.${k + 1}` }));
      },
      processItem(item, ctx) {
        started.push({ stage: ctx.stage, id: item.id, attempt: ctx.attempt, key: ctx.idempotencyKey });
        return new Promise((resolve, reject) => {
          const entry: Pending = {
            stage: ctx.stage,
            item,
            attempt: ctx.attempt,
            key: ctx.idempotencyKey,
            signal: ctx.signal,
            resolve: (cost) => resolve({ cost }),
            reject,
          };
          ctx.signal.addEventListener('abort', () => {
            aborted.push(ctx.idempotencyKey);
            pending.splice(pending.indexOf(entry), 1);
            reject(new Error('aborted'));
          });
          pending.push(entry);
          notify();
        });
      },
    })),
  };

  /** Resolves once `n` items are waiting to be finished. */
  async function inFlight(n: number): Promise<Pending[]> {
    while (pending.length < n) await new Promise<void>((r) => waiters.push(r));
    return pending.slice(0, n);
  }

  /** Finishes the oldest item in flight (waits for one if none is). */
  async function finish(cost = 1): Promise<Pending> {
    const [p] = await inFlight(1);
    pending.splice(pending.indexOf(p!), 1);
    p!.resolve(cost);
    return p!;
  }

  async function fail(message = 'flaky upstream'): Promise<Pending> {
    const [p] = await inFlight(1);
    pending.splice(pending.indexOf(p!), 1);
    p!.reject(new Error(message));
    return p!;
  }

  /** Resolves once the stage named by `holdLoadOf` is loading (its load waits for `releaseLoad`). */
  async function loadHeldNow(): Promise<void> {
    while (!loadHeld) await new Promise<void>((r) => waiters.push(r));
  }

  return { pipeline, pending, started, aborted, inFlight, finish, fail, loadHeldNow, releaseLoad: () => releaseHeldLoad() };
}
