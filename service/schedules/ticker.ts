// The schedules' one timer per process (docs/operations.md "Schedules"): it wakes at the next
// fire time of the active schedules (or after `maxWaitMs`, to see schedules other instances
// made), claims each due fire, settles it, and arms itself again. A database away holds it:
// it tries again a `maxWaitMs` later and says so once.
import { Counter, type Registry } from 'prom-client';
import { isTransient } from '../store/faults.js';
import { dueFire, dueFires, nextFireAfter } from './cron.js';
import { settleClaimedFire, type FireDeps, type FireOutcome } from './fire.js';
import type { Schedule } from './types.js';

/** Fires kept per schedule (the API shows the last few; the rest is history for operators). */
export const KEEP_FIRES = 100;

export interface TickerOptions extends FireDeps {
  /** This instance's name in fire claims. */
  owner: string;
  /** [1000] The longest sleep: how soon a schedule made or resumed on another instance is seen. */
  maxWaitMs?: number;
  /** [15000] How long a claim may stay unsettled before another tick takes it over. */
  staleMs?: number;
  /** [Date.now] Epoch ms. */
  now?: () => number;
  /** Where `runstate_schedule_fires_total{outcome}` is registered; none: not counted. */
  registry?: Registry;
}

export class ScheduleTicker {
  readonly #o: TickerOptions & { maxWaitMs: number; staleMs: number; now: () => number };
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  #again = false;
  #stopped = true;
  /** Set while the database is away, so the fault is logged once, not every tick. */
  #faulted = false;
  /** When this ticker last looked (a tick began): fire times after it are ones it woke late for. */
  #lookedAt = 0;
  readonly #fires: Counter<'outcome'> | undefined;

  constructor(options: TickerOptions) {
    this.#o = { maxWaitMs: 1000, staleMs: 15_000, now: Date.now, ...options };
    this.#fires = options.registry
      ? new Counter({
          name: 'runstate_schedule_fires_total',
          help: 'Fire times this instance claimed, by outcome: started, skipped (overlap), failed (start refused), missed (a stale claim overtaken)',
          labelNames: ['outcome'],
          registers: [options.registry],
        })
      : undefined;
    for (const k of ['maxWaitMs', 'staleMs'] as const) {
      if (!Number.isFinite(this.#o[k]) || this.#o[k] <= 0) throw new TypeError(`Expected \`${k}\` to be a positive number, got ${String(this.#o[k])}.`);
    }
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    // What fell before this start was missed (downtime): merged into one run.
    this.#lookedAt = this.#o.now();
    this.nudge();
  }

  /** Looks at the schedules now rather than at the next wake (one was made, resumed or deleted here). */
  nudge(): void {
    if (this.#stopped) return;
    if (this.#ticking) {
      this.#again = true;
      return;
    }
    this.#arm(0);
  }

  /** Clears the timer and waits for a tick in progress (its run starts finish). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#ticking;
  }

  // Not `this.#fires?.inc(await …)`: optional chaining would skip evaluating the argument.
  #count(outcome: FireOutcome | 'missed'): void {
    this.#fires?.inc({ outcome });
  }

  #arm(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#ticking = this.#tick().finally(() => {
        this.#ticking = undefined;
      });
    }, ms);
  }

  async #tick(): Promise<void> {
    let wait = this.#o.maxWaitMs;
    try {
      wait = Math.min(wait, await this.#fireDue());
      if (this.#faulted) this.#o.logger.info('schedules: the database is back; due fires go on');
      this.#faulted = false;
    } catch (err) {
      if (!isTransient(err)) this.#o.logger.error({ err }, 'schedules: a tick failed');
      else if (!this.#faulted) this.#o.logger.warn({ err }, 'schedules: the database is unavailable; fires wait for it');
      this.#faulted ||= isTransient(err);
    }
    if (this.#stopped) return;
    if (this.#again) {
      this.#again = false;
      wait = 0;
    }
    this.#arm(wait);
  }

  /** Claims and settles what is due; answers how long until the next fire time. */
  async #fireDue(): Promise<number> {
    const { store, owner, now } = this.#o;
    // A look that the database refuses counts too: what falls due meanwhile is merged (an outage costs one run).
    const t = now();
    const lookedAt = this.#lookedAt;
    this.#lookedAt = t;
    const schedules = await store.active();
    const byId = new Map(schedules.map((s) => [s.scheduleId, s]));
    await this.#takeOverStale(byId, t);
    const results = await Promise.allSettled(
      schedules.map(async (s) => {
        // In order: a claim moves the schedule's last fire forward, so an earlier one cannot follow.
        for (const fireAt of dueFires(s, s.lastFireAt, lookedAt, t)) {
          if (this.#stopped) return;
          if (!(await store.claimFire(s.scheduleId, fireAt, owner, now()))) continue;
          this.#count(await settleClaimedFire(this.#o, s, fireAt));
        }
        await store.pruneFires(s.scheduleId, KEEP_FIRES);
      }),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const after = this.#o.now();
    let next = Infinity;
    for (const s of schedules) next = Math.min(next, nextFireAfter(s, Math.max(after, s.lastFireAt)) ?? Infinity);
    // One ms past the fire time: a timer is never early, but the clock is read in whole ms.
    return Math.max(0, next - after + 1);
  }

  /**
   * A claim left unsettled (its instance died or lost the database while starting the run) is
   * taken over: started after all if it is still its schedule's latest fire (the idempotency key
   * makes that safe even if its first claimer did start it), otherwise marked missed: a later
   * fire has overtaken it.
   */
  async #takeOverStale(active: ReadonlyMap<string, Schedule>, t: number): Promise<void> {
    const { store, owner, staleMs } = this.#o;
    for (const f of await store.staleFires(t - staleMs)) {
      if (!(await store.reclaimFire(f.scheduleId, f.fireAt, owner, t - staleMs, t))) continue;
      const s = active.get(f.scheduleId);
      if (s && s.lastFireAt === f.fireAt && dueFire(s, f.fireAt, t) === null) {
        this.#count(await settleClaimedFire(this.#o, s, f.fireAt));
      } else {
        await store.settleFire(f.scheduleId, f.fireAt, { state: 'missed' });
        this.#count('missed');
      }
    }
  }
}
