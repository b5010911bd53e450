// The gate item attempts pass before they run (docs/pipelines.md, "Limits"): per key, attempts
// wait in line here, first come first served; the one at the head takes a slot (concurrency)
// and then a token (rate) from the store, and runs; its slot goes back when it is done. An
// attempt whose run is cancelled or paused while it waits leaves the line with neither.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { AttemptReleasedError } from '../pipelines/attempts.js';
import { isTransient } from '../store/faults.js';
import { spacingMs, type StageLimit } from '../pipelines/limit.js';
import type { LimitStore, LimitUsage } from './store.js';

/** Who waits: an attempt at one item of one stage of one run. */
export interface Attempt {
  runId: string;
  stage: number;
  itemId: string;
}

/** A held slot (when the key has a concurrency); `release` once the attempt is done. */
export interface Permit {
  release(): void;
}

export interface LimiterOptions {
  store: LimitStore;
  /** This instance, in published usage and slot holders. */
  instance: string;
  logger: Logger;
  /** Whether a run's stage is pausing or paused: its waiting attempts are given back. */
  isHeld: (runId: string, stage: number) => boolean;
  /** A slot's lease in the store; renewed every third of it. [15000] */
  slotLeaseMs?: number;
  /** How often a head waiting for a slot asks the store again (slots freed elsewhere send no word). [50] */
  slotPollMs?: number;
  /** How often usage is published for other instances. [1000] */
  publishMs?: number;
}

interface Waiter extends Attempt {
  limit: StageLimit;
  signal: AbortSignal;
  resolve: (permit: Permit) => void;
  reject: (err: unknown) => void;
  /** Set once it has left the line (granted, cancelled, given back). */
  done: boolean;
}

interface Lane {
  line: Waiter[];
  pumping: boolean;
  inFlight: number;
  /** Cuts the head's current wait short: a slot came back here, a waiter left, a run paused. */
  wake: (() => void) | undefined;
}

export class Limiter {
  readonly #opts: LimiterOptions;
  readonly #store: LimitStore;
  readonly #lanes = new Map<string, Lane>();
  /** Slot holders here, for lease renewal: holder → key. */
  readonly #holders = new Map<string, string>();
  readonly #leaseMs: number;
  #renewTimer: NodeJS.Timeout | undefined;
  #publishTimer: NodeJS.Timeout | undefined;
  #published = '';
  #publishedAt = 0;
  #stopped = false;

  constructor(opts: LimiterOptions) {
    this.#opts = opts;
    this.#store = opts.store;
    this.#leaseMs = opts.slotLeaseMs ?? 15_000;
  }

  start(): void {
    this.#renewTimer = setInterval(() => void this.#renew(), Math.max(100, this.#leaseMs / 3));
    this.#renewTimer.unref();
    this.#publishTimer = setInterval(() => void this.#publish(), this.#opts.publishMs ?? 1000);
    this.#publishTimer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#renewTimer);
    clearInterval(this.#publishTimer);
    for (const lane of this.#lanes.values()) lane.wake?.();
  }

  /**
   * Waits for the limit, then answers with a permit to release when the attempt is done.
   * Rejects with the signal's reason when it aborts, and with an `AttemptReleasedError`
   * (the attempt goes back to wait, same attempt number) when the run pauses meanwhile.
   */
  acquire(limit: StageLimit, attempt: Attempt, signal: AbortSignal): Promise<Permit> {
    return new Promise<Permit>((resolve, reject) => {
      const lane = this.#lane(limit.key);
      const waiter: Waiter = { ...attempt, limit, signal, resolve, reject, done: false };
      if (signal.aborted) return reject(signal.reason);
      const onAbort = () => {
        if (this.#leave(lane, waiter)) reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      waiter.resolve = (permit) => {
        signal.removeEventListener('abort', onAbort);
        resolve(permit);
      };
      waiter.reject = (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      };
      lane.line.push(waiter);
      this.#pump(limit.key, lane);
    });
  }

  /** A run's attempts may have to leave the line (it paused); the heads look again at once. */
  wake(): void {
    for (const [key, lane] of this.#lanes) {
      this.#giveBackHeld(lane);
      lane.wake?.();
      this.#pump(key, lane);
    }
  }

  /** Attempts waiting here, per key, and those of one run's stage, by item id. */
  waitingItems(runId: string, stage: number): { key: string; itemIds: Set<string> } | undefined {
    for (const [key, lane] of this.#lanes) {
      const ids = new Set(lane.line.filter((w) => w.runId === runId && w.stage === stage).map((w) => w.itemId));
      if (ids.size > 0) return { key, itemIds: ids };
    }
    return undefined;
  }

  /** This instance's waiting and in-flight attempts per key. */
  localUsage(): Map<string, LimitUsage> {
    return new Map([...this.#lanes].map(([key, lane]) => [key, { waiting: lane.line.length, inFlight: lane.inFlight }]));
  }

  /** Every instance's, summed; other instances' as they last published them. */
  async usage(): Promise<Map<string, LimitUsage>> {
    const all = await this.#store.othersUsage(this.#opts.instance);
    for (const [key, mine] of this.localUsage()) {
      const o = all.get(key) ?? { waiting: 0, inFlight: 0 };
      all.set(key, { waiting: o.waiting + mine.waiting, inFlight: o.inFlight + mine.inFlight });
    }
    return all;
  }

  #lane(key: string): Lane {
    let lane = this.#lanes.get(key);
    if (!lane) this.#lanes.set(key, (lane = { line: [], pumping: false, inFlight: 0, wake: undefined }));
    return lane;
  }

  /** Takes a waiter out of the line; false when it had left already. */
  #leave(lane: Lane, waiter: Waiter): boolean {
    if (waiter.done) return false;
    waiter.done = true;
    const at = lane.line.indexOf(waiter);
    if (at !== -1) lane.line.splice(at, 1);
    lane.wake?.();
    return true;
  }

  #giveBackHeld(lane: Lane): void {
    for (const w of [...lane.line]) {
      if (this.#opts.isHeld(w.runId, w.stage) && this.#leave(lane, w)) {
        w.reject(new AttemptReleasedError(`the attempt at item ${w.itemId} waited on the limit ${JSON.stringify(w.limit.key)} and the run is pausing`));
      }
    }
  }

  /** Serves the line's head, then the next, until the line is empty; one pump per key. */
  #pump(key: string, lane: Lane): void {
    if (lane.pumping || this.#stopped) return;
    lane.pumping = true;
    let retryMs = 0;
    this.#serve(key, lane)
      .catch((err: unknown) => {
        // Not a passing fault (those wait inside): the line tries again in a second rather than spin.
        this.#opts.logger.error({ err, key }, 'a limit’s line failed; trying again in 1 s');
        retryMs = 1000;
      })
      .finally(() => {
        lane.pumping = false;
        if (lane.line.length > 0 && !this.#stopped) setTimeout(() => this.#pump(key, lane), retryMs).unref();
      });
  }

  async #serve(key: string, lane: Lane): Promise<void> {
    while (!this.#stopped) {
      this.#giveBackHeld(lane);
      const head = lane.line[0];
      if (!head) return;
      const holder = head.limit.concurrency === undefined ? undefined : await this.#takeSlot(key, lane, head);
      if (head.done) {
        if (holder) await this.#releaseSlot(key, holder);
        continue;
      }
      if (head.limit.concurrency !== undefined && holder === undefined) continue;
      // The slot is kept while the token comes: the head is next either way.
      const spacing = spacingMs(head.limit);
      if (spacing !== undefined) while (!head.done && !this.#stopped && !(await this.#takeToken(key, lane, head, spacing)));
      if (this.#stopped || !this.#leave(lane, head)) {
        // Left meanwhile (aborted, paused), or the limiter stopped: a token taken is spent, the slot goes back.
        if (holder) await this.#releaseSlot(key, holder);
        continue;
      }
      lane.inFlight += 1;
      let released = false;
      head.resolve({
        release: () => {
          if (released) return;
          released = true;
          lane.inFlight -= 1;
          if (holder) void this.#releaseSlot(key, holder).then(() => this.#pump(key, lane));
        },
      });
    }
  }

  /** A slot for the head, or undefined once it has left the line or the store said no (it waited a poll). */
  async #takeSlot(key: string, lane: Lane, head: Waiter): Promise<string | undefined> {
    const holder = `${this.#opts.instance}:${randomBytes(6).toString('hex')}`;
    const taken = await this.#ask(() => this.#store.takeSlot(key, head.limit.concurrency!, holder, this.#leaseMs), lane);
    if (taken === true) {
      this.#holders.set(holder, key);
      return holder;
    }
    if (!head.done) await this.#pause(lane, this.#opts.slotPollMs ?? 50);
    return undefined;
  }

  /** Whether the head took a token; when not, it has waited until one should be back. */
  async #takeToken(key: string, lane: Lane, head: Waiter, spacing: number): Promise<boolean> {
    const wait = await this.#ask(() => this.#store.takeToken(key, spacing), lane);
    if (wait === 0) return true;
    if (!head.done) await this.#pause(lane, wait ?? 100);
    return false;
  }

  /** The store's answer; undefined when it is away for now (the database restarting): the line waits a little. */
  async #ask<T>(work: () => Promise<T>, lane: Lane): Promise<T | undefined> {
    try {
      return await work();
    } catch (err) {
      if (!isTransient(err)) throw err;
      this.#opts.logger.warn({ err }, 'the limits’ store is away for now; attempts keep waiting');
      await this.#pause(lane, 500);
      return undefined;
    }
  }

  /** Waits `ms`, or less when woken. */
  async #pause(lane: Lane, ms: number): Promise<void> {
    const stop = new AbortController();
    lane.wake = () => stop.abort();
    await sleep(ms, undefined, { signal: stop.signal }).catch(() => undefined);
    lane.wake = undefined;
  }

  async #releaseSlot(key: string, holder: string): Promise<void> {
    this.#holders.delete(holder);
    try {
      await this.#store.releaseSlot(key, holder);
    } catch (err) {
      // Its lease runs out by itself: the slot is free again within slotLeaseMs.
      this.#opts.logger.warn({ err, key }, 'giving a limit’s slot back failed; its lease will free it');
    }
    this.#lanes.get(key)?.wake?.();
  }

  async #renew(): Promise<void> {
    try {
      await this.#store.renewSlots([...this.#holders.keys()], this.#leaseMs);
    } catch (err) {
      this.#opts.logger.warn({ err }, 'renewing limit slots failed; trying again');
    }
  }

  async #publish(): Promise<void> {
    const usage = this.localUsage();
    const text = JSON.stringify([...usage]);
    // Unchanged counts are published again now and then: a row not refreshed for 10 s is an instance gone.
    if (text === this.#published && Date.now() - this.#publishedAt < 4000) return;
    try {
      await this.#store.publish(this.#opts.instance, usage);
      this.#published = text;
      this.#publishedAt = Date.now();
    } catch (err) {
      this.#opts.logger.warn({ err }, 'publishing limit usage failed; trying again');
    }
  }
}
