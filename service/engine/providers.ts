import { setTimeout as sleep } from 'node:timers/promises';
import { fromPromise } from 'xstate';
import { runMachine, stageMachine, type ItemJob, type ItemRecord } from '../../machines/index.js';
import type { RunHost } from './run-host.js';

/**
 * The machines' effects, supplied once per engine. Actors find their run's host by the
 * `runId` in their input, so one provided machine serves every run.
 */
export function provideMachines(hostOf: (runId: string) => RunHost, now: () => number) {
  const stage = stageMachine.provide({
    actors: {
      loadItems: fromPromise(async ({ input, signal }: { input: { runId: string; stage: number }; signal: AbortSignal }) =>
        hostOf(input.runId).loadItems(input.stage, signal),
      ),
      processItem: fromPromise(async ({ input, signal }: { input: ItemJob; signal: AbortSignal }) =>
        hostOf(input.runId).processItem(input, signal),
      ),
      wait: fromPromise(async ({ input, signal }: { input: { until: number }; signal: AbortSignal }) => {
        const ms = input.until - now();
        if (ms > 0) await sleep(ms, undefined, { signal });
      }),
    },
    actions: {
      recordItem: ({ context }, record: ItemRecord) => hostOf(context.runId).recordItem(record),
    },
  });
  return runMachine.provide({ actors: { stage } });
}

export type ProvidedRunMachine = ReturnType<typeof provideMachines>;
