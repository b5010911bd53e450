// What one fire time of a schedule does once an instance has claimed it: skip it while the
// previous run is unfinished (overlap `skip`), or start the run, trigger `scheduled`, under an
// idempotency key of its own, so that a claim taken over after a crash cannot start a second run.
import type { Logger } from 'pino';
import type { Engine } from '../engine/engine.js';
import { RunstateError } from '../errors.js';
import type { Schedule, ScheduleStore } from './types.js';

/** The trigger of the runs schedules start: in the run id and the `run_started` event. */
export const SCHEDULED_TRIGGER = 'scheduled';

/** The idempotency scope of scheduled starts; the key is `schedule:<id>:<fire time ISO>`. */
const SCOPE = 'schedule';

export interface FireDeps {
  store: ScheduleStore;
  engine: Pick<Engine, 'startRunOnce' | 'getRun'>;
  logger: Logger;
}

export type FireOutcome = 'started' | 'skipped' | 'failed';

/**
 * Whether a run in this status holds its schedule back under overlap `skip`: it may still do work
 * without anyone acting. A failed run waits for a person (retry), so it does not.
 */
export function holdsSchedule(status: string | undefined): boolean {
  return status === 'idle' || status === 'running' || status === 'paused' || status === 'awaiting_approval';
}

export function fireKey(scheduleId: string, fireAt: number): string {
  return `schedule:${scheduleId}:${new Date(fireAt).toISOString()}`;
}

/**
 * Settles the claimed fire `fireAt` of `s`: skipped, started, or failed (a start the service
 * refuses, such as a pipeline no longer registered). A passing fault (the database away) is
 * thrown: the fire stays claimed and is taken again later.
 */
export async function settleClaimedFire(deps: FireDeps, s: Schedule, fireAt: number): Promise<FireOutcome> {
  const log = deps.logger.child({ scheduleId: s.scheduleId, fireAt: new Date(fireAt).toISOString() });
  if (s.overlap === 'skip') {
    const previous = await deps.store.previousRunFire(s.scheduleId, fireAt);
    const busy = previous !== undefined && (previous.state === 'claimed' || (previous.runId !== null && holdsSchedule((await deps.engine.getRun(previous.runId))?.status)));
    if (busy) {
      await deps.store.settleFire(s.scheduleId, fireAt, { state: 'skipped', ...(previous.runId ? { error: `run ${previous.runId} is unfinished` } : {}) });
      log.info({ previousRun: previous.runId }, 'schedule fire skipped: the previous run is unfinished');
      return 'skipped';
    }
  }
  const key = fireKey(s.scheduleId, fireAt);
  try {
    const { run } = await deps.engine.startRunOnce(
      { accountId: s.accountId, siteId: s.siteId, pipeline: s.pipeline, trigger: SCHEDULED_TRIGGER, options: s.options },
      { scope: SCOPE, key, fingerprint: key },
    );
    await deps.store.settleFire(s.scheduleId, fireAt, { state: 'started', runId: run.run_id });
    log.info({ runId: run.run_id }, 'scheduled run started');
    return 'started';
  } catch (err) {
    if (!(err instanceof RunstateError) || err.status >= 500) throw err;
    await deps.store.settleFire(s.scheduleId, fireAt, { state: 'failed', error: err.message });
    log.warn({ code: err.code, reason: err.message }, 'scheduled run refused');
    return 'failed';
  }
}
