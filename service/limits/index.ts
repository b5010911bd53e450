// The limits feature wired as one piece (docs/pipelines.md, "Limits"): the declarations
// checked, the store beside the runs (in process on SQLite, in the database on Postgres), the
// gate, the route and the gauges. buildService (service/service.ts) makes one and plugs it in.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { StoredEvent } from '../events.js';
import type { AnyPipeline } from '../pipelines/types.js';
import { PostgresStore } from '../store/postgres.js';
import type { RunRecord, Store } from '../store/store.js';
import { bindLimits } from './bind.js';
import { Limiter } from './limiter.js';
import { MemoryLimitStore } from './memory.js';
import { limitMetrics } from './metrics.js';
import { PostgresLimitStore } from './postgres.js';
import { declaredLimits, limitProblems, type StageLimit } from '../pipelines/limit.js';
import type { LimitStore } from './store.js';

export type { StageLimit };

export interface Limits {
  limiter: Limiter;
  /** Every key the pipelines declare. */
  declared: ReadonlyMap<string, StageLimit>;
  /** The key a stage's items wait on here and how many wait (for the card's line); undefined when none does. */
  waitingOn(runId: string, stage: number): { key: string; items: number } | undefined;
  /** The pipelines with the gate in front of their limited stages. */
  bind(pipelines: readonly AnyPipeline[]): AnyPipeline[];
  /** What the run's events say: a pause gives its waiting attempts back. */
  observe(run: RunRecord, events: readonly StoredEvent[]): void;
  start(): void;
  stop(): Promise<void>;
}

export interface LimitsOptions {
  store: Store;
  pipelines: readonly AnyPipeline[];
  registry: Registry;
  logger: Logger;
  /** This instance's name in slot holders and published usage. */
  instance: string;
  /** The stage's state as its machine has it now (undefined when not hosted here). */
  stageState: (runId: string, stage: number) => string | undefined;
}

/** Thrown when a pipeline given in code declares a bad limit, or two declare one key differently. */
export class LimitDeclarationError extends Error {
  override name = 'LimitDeclarationError';
}

/** Every key the pipelines declare; a bad declaration is a `LimitDeclarationError` naming each fault. */
export function checkDeclarations(pipelines: readonly AnyPipeline[]): Map<string, StageLimit> {
  const stages = pipelines.flatMap((p) => p.stages.map((s, i) => ({ where: `pipeline ${JSON.stringify(p.name)} stage ${i + 1}`, limit: s.limit })));
  const faults = stages.flatMap((s) => (s.limit === undefined ? [] : limitProblems(s.limit).map((m) => `${s.where}: ${m}`)));
  if (faults.length > 0) throw new LimitDeclarationError(faults.join('\n'));
  const { limits, problems } = declaredLimits(stages);
  if (problems.length > 0) throw new LimitDeclarationError(problems.map((p) => p.message).join('\n'));
  return limits;
}

async function openLimitStore(store: Store): Promise<LimitStore> {
  if (store instanceof PostgresStore) return PostgresLimitStore.open(store.connection.pool);
  return new MemoryLimitStore();
}

export async function createLimits(opts: LimitsOptions): Promise<Limits> {
  const declared = checkDeclarations(opts.pipelines);
  const store = await openLimitStore(opts.store);
  const held = (runId: string, stage: number) => {
    const state = opts.stageState(runId, stage);
    return state === 'pausing' || state === 'paused';
  };
  const limiter = new Limiter({ store, instance: opts.instance, logger: opts.logger, isHeld: held });
  limitMetrics(opts.registry, declared, limiter);
  return {
    limiter,
    declared,
    waitingOn(runId, stage) {
      const w = limiter.waitingItems(runId, stage);
      return w && { key: w.key, items: w.itemIds.size };
    },
    bind: (pipelines) => bindLimits(pipelines, limiter),
    observe(_run, events) {
      if (events.some((e) => e.event === 'command' && e.command === 'pause')) limiter.wake();
    },
    start: () => limiter.start(),
    async stop() {
      await limiter.stop();
      await store.close();
    },
  };
}
