// Pure: one machine microstep in, the events it means out (docs/architecture.md, "Events"):
// every transition of the run or a stage is one `state_change`; a stage that has loaded its
// items adds `stage_start`, one that finished (or turned out empty) adds `stage_complete`.
import { triggerOf, type StageContext } from '../../machines/index.js';
import { RUN_MACHINE, events, stageMachineName, type NewEvent } from '../events.js';
import { formatElapsed } from '../format.js';

/** The counts of a stage that its events report, from the stage machine's context. */
export type StageCounts = Pick<StageContext, 'total' | 'processed' | 'failed' | 'creditsUsed' | 'startedAt'>;

export type Microstep =
  | { machine: 'run'; from: string; to: string; /** The XState event type that caused it. */ eventType: string }
  | { machine: 'stage'; stage: number; stageName: string; from: string; to: string; eventType: string; context: StageCounts };

/** The state a machine is taken to be in before its first transition is seen. */
export function initialStateOf(machine: Microstep['machine']): string {
  return machine === 'run' ? 'idle' : 'pending';
}

/** The events one microstep appends, stamped at `now` (epoch ms); none when the state did not change. */
export function transitionEvents(step: Microstep, now: number): NewEvent[] {
  if (step.from === step.to) return [];
  const timestamp = new Date(now).toISOString();
  const change = events.stateChange(
    {
      machine_name: step.machine === 'run' ? RUN_MACHINE : stageMachineName(step.stage),
      payload: { from_state: step.from, to_state: step.to, event_trigger: triggerOf(step.eventType), timestamp: now / 1000 },
    },
    timestamp,
  );
  if (step.machine === 'run') return [change];
  const out: NewEvent[] = [change];
  const ctx = step.context;
  if (step.from === 'loading' && (step.to === 'running' || step.to === 'paused' || step.to === 'empty')) {
    out.push(events.stageStart({ stage: step.stage, stage_name: step.stageName, total_items: ctx.total ?? 0 }, timestamp));
  }
  if (step.to === 'completed' || step.to === 'empty') {
    out.push(
      events.stageComplete(
        {
          stage: step.stage,
          processed_count: ctx.processed,
          failed_count: ctx.failed,
          time_elapsed: formatElapsed(ctx.startedAt === null ? 0 : now - ctx.startedAt),
          credits_used: Math.round(ctx.creditsUsed * 1e6) / 1e6,
        },
        timestamp,
      ),
    );
  }
  return out;
}
