// What the schedule tables hold, and the contract both adapters of service/schedules/ implement
// (docs/api.md "Schedules", docs/operations.md "Schedules").

/** `skip`: no run starts while the schedule's previous run is unfinished; `allow`: starts anyway. */
export const OVERLAPS = ['skip', 'allow'] as const;
export type Overlap = (typeof OVERLAPS)[number];

export type ScheduleStatus = 'active' | 'paused';

export interface Schedule {
  scheduleId: string;
  accountId: string;
  siteId: string;
  pipeline: string;
  /** As given (the pipeline's schema defaults are filled in when each run starts). */
  options: Record<string, unknown>;
  cron: string;
  /** An IANA name. */
  timezone: string;
  overlap: Overlap;
  status: ScheduleStatus;
  /** The token name that made it. */
  createdBy: string;
  createdAt: string;
  /**
   * Epoch ms of the latest fire time handled (or of creation, or of the last resume): the fires
   * after it are due. Advanced by whichever instance claims a fire.
   */
  lastFireAt: number;
}

/**
 * `claimed`: an instance took the fire and is starting its run (a claim left by a crash is taken
 * again after a while); `started`: its run exists; `skipped`: the previous run was unfinished
 * (overlap `skip`); `missed`: a claim left by a crash that a later fire overtook; `failed`: the
 * run could not be started (the pipeline is gone, its options no longer pass its schema).
 */
export type FireState = 'claimed' | 'started' | 'skipped' | 'missed' | 'failed';

export interface Fire {
  scheduleId: string;
  /** Epoch ms of the fire time: with the schedule, the unique key of the fire. */
  fireAt: number;
  state: FireState;
  runId: string | null;
  /** The run's status now; null when there is no run (or it was deleted by retention). */
  runStatus: string | null;
  error: string | null;
  claimedBy: string;
  /** Epoch ms, by the claiming instance's clock. */
  claimedAt: number;
}

export interface ScheduleStore {
  create(schedule: Schedule): Promise<void>;
  get(scheduleId: string): Promise<Schedule | undefined>;
  /** Oldest first; `siteIds` set: only those sites'. */
  list(filter: { siteIds?: readonly string[] }): Promise<Schedule[]>;
  /** The active ones: what the ticker looks at. */
  active(): Promise<Schedule[]>;
  /** Deletes the schedule and its fires (its runs stay); false if there was none. */
  remove(scheduleId: string): Promise<boolean>;
  /**
   * Pauses or resumes. Resuming sets `lastFireAt` to `nowMs`: fires that fell while it was paused
   * are not caught up. Returns the schedule as it is now, undefined if there is none.
   */
  setStatus(scheduleId: string, status: ScheduleStatus, nowMs: number): Promise<Schedule | undefined>;
  /**
   * Takes fire `fireAt` for `owner`: in one transaction, moves the schedule's `lastFireAt` to
   * `fireAt` if the schedule is active and its `lastFireAt` is earlier, and inserts the fire
   * (`claimed`) under its unique key. False when another instance took this fire or a later one,
   * or the schedule is paused or gone: then nothing is written.
   */
  claimFire(scheduleId: string, fireAt: number, owner: string, nowMs: number): Promise<boolean>;
  /** Records how a claimed fire ended. */
  settleFire(scheduleId: string, fireAt: number, outcome: { state: Exclude<FireState, 'claimed'>; runId?: string; error?: string }): Promise<void>;
  /**
   * Takes over a fire left `claimed` since before `staleBefore` (its instance died or lost the
   * database while starting it): true if this caller now holds it.
   */
  reclaimFire(scheduleId: string, fireAt: number, owner: string, staleBefore: number, nowMs: number): Promise<boolean>;
  /** Fires left `claimed` since before `staleBefore`, oldest first. */
  staleFires(staleBefore: number): Promise<Fire[]>;
  /** The latest fire before `fireAt` that has or is making a run (`started` or `claimed`). */
  previousRunFire(scheduleId: string, fireAt: number): Promise<Fire | undefined>;
  /**
   * Deletes the schedule's fires beyond its newest `keep`, except the latest one with a run (the
   * overlap check needs it): the table stays small however often a schedule fires.
   */
  pruneFires(scheduleId: string, keep: number): Promise<void>;
  /** Each schedule's latest `limit` fires, newest first, with their runs' status. */
  lastFires(scheduleIds: readonly string[], limit: number): Promise<Map<string, Fire[]>>;
}
