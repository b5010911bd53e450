// Which instance works which run (docs/operations.md, "Several instances on one Postgres"):
// claims runs nobody works, keeps their leases alive, lets go of runs whose lease was lost,
// and carries commands between instances through the store's command queue. An instance that
// cannot renew its leases in time lets its runs go before they can run out (the watchdog).
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { RunstateError, isErrorCode } from '../errors.js';
import type { Command } from '../events.js';
import { isTransient } from '../store/faults.js';
import type { CommandOutcome, QueuedCommand, RunRecord, Store } from '../store/store.js';

export interface OwnershipOptions {
  store: Store;
  /** This instance's name in run leases. */
  owner: string;
  /** How long a lease lasts without renewal; another instance takes the run over after it. */
  leaseMs: number;
  /** How long a command for a run another instance holds may wait for that instance. */
  commandTimeoutMs: number;
  logger: Logger;
  /** Called with runs about to be resumed (claimed at start or taken over), before they run. */
  beforeResume: ((runs: readonly RunRecord[]) => Promise<void>) | undefined;
  /** The runs this instance holds now, and whether each still needs its lease (it is not finished). */
  held: () => Iterable<{ runId: string; live: boolean }>;
  /** Puts a claimed run into memory; false when it cannot run here (its lease is then released). */
  resume: (record: RunRecord) => boolean;
  /** The run's lease was lost (or is about to run out unrenewed): stop it without writing. */
  lose: (runId: string) => void;
  /** Applies a command another instance queued for a run held here. */
  apply: (cmd: QueuedCommand) => Promise<CommandOutcome>;
}

/** Polls of the command queue, in ms: a queued command waits about this long for its holder. */
const COMMAND_POLL_MS = 200;
const OUTCOME_POLL_MS = 20;

export class Ownership {
  readonly #opts: OwnershipOptions;
  readonly #timers: NodeJS.Timeout[] = [];
  #claiming: Promise<unknown> = Promise.resolve();
  #stopped = false;
  /** When the last renewal that succeeded was sent (performance.now()): the leases run from no earlier. */
  #renewedAt = performance.now();
  /** Runs let go because their leases could not be renewed in time (or leased but worked nowhere): released once the store answers. */
  readonly #letGo = new Set<string>();
  /** Runs claimed by the claim in progress and not hosted yet. */
  readonly #claimingNow = new Set<string>();
  /** When recently retired runs left memory: a renewal sent before may still name them. */
  readonly #retiredAt = new Map<string, number>();

  constructor(opts: OwnershipOptions) {
    if (!Number.isFinite(opts.leaseMs) || opts.leaseMs < 100) throw new TypeError(`Expected \`leaseMs\` to be at least 100, got ${opts.leaseMs}.`);
    this.#opts = opts;
  }

  /** Claims runs nobody works (with `all`, every live run) and resumes them; one claim at a time, so a run is hosted once. */
  claim(all: boolean): Promise<RunRecord[]> {
    const run = () => this.#claim(all).finally(() => this.#claimingNow.clear());
    const result = this.#claiming.then(run, run);
    this.#claiming = result.catch(() => undefined);
    return result;
  }

  /** The claim at start (`recover`): the leases it takes run from now at the earliest. */
  recover(all: boolean): Promise<RunRecord[]> {
    this.#renewedAt = performance.now();
    return this.claim(all);
  }

  /**
   * A run was just created here with its lease, taken at `from` (performance.now()). Alone in
   * memory, its lease is the one the watchdog watches: call before the run is hosted.
   */
  leased(from: number): void {
    // Asked at every start: with thousands of runs held, listing them all each time would cost more than the start.
    if (this.#opts.held()[Symbol.iterator]().next().done === true) this.#renewedAt = Math.max(this.#renewedAt, from);
  }

  /**
   * Leases a completed run to this instance so that `retry_failed` can take it back to work
   * (call before the run is hosted); undefined when another instance holds it.
   */
  async leaseFinished(runId: string): Promise<RunRecord | undefined> {
    const from = performance.now();
    const record = await this.#opts.store.leaseFinishedRun(runId, this.#opts.owner, this.#opts.leaseMs);
    if (record) this.leased(from);
    return record;
  }

  /** A run finished and left memory: a renewal sent before may still name it, which is no orphan. */
  retired(runId: string): void {
    this.#retiredAt.set(runId, performance.now());
  }

  /** Renews leases, watches that they were renewed in time, takes over runs whose owner died, applies queued commands: each on its own timer. */
  start(): void {
    const every = (ms: number, work: () => Promise<unknown>) => {
      let busy = false;
      let failing = false;
      const timer = setInterval(() => {
        if (busy || this.#stopped) return;
        busy = true;
        work()
          .then(() => (failing = false))
          .catch((err: unknown) => {
            // The database away: said once per outage, not every tick.
            if (!isTransient(err)) this.#opts.logger.error({ err }, 'ownership task failed');
            else if (!failing) this.#opts.logger.warn({ err }, 'ownership task failed: the database is unavailable; retrying');
            failing = isTransient(err);
          })
          .finally(() => (busy = false));
      }, ms);
      timer.unref();
      this.#timers.push(timer);
    };
    const { leaseMs } = this.#opts;
    every(Math.max(50, Math.floor(leaseMs / 3)), () => this.#renew());
    every(Math.max(20, Math.floor(leaseMs / 20)), async () => this.#watchLeases());
    every(Math.max(50, Math.floor(leaseMs / 2)), () => this.claim(false));
    every(COMMAND_POLL_MS, () => this.#applyQueued());
  }

  /** Stops the timers and waits for a claim under way; `release` then gives the leases up. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    await this.#claiming;
  }

  /** Gives up every lease this instance holds, so another instance may take the runs over at once. */
  async release(): Promise<void> {
    await this.#opts.store.releaseLeases(this.#opts.owner).catch((err: unknown) => this.#opts.logger.error({ err }, 'releasing leases failed'));
  }

  /**
   * A command for a live run another instance holds (or nobody, for a moment after its owner
   * died): queued for the holder, which applies it and answers. Nothing is applied after the
   * wait is given up.
   */
  async commandElsewhere(runId: string, command: Command, by: string, reason: string | undefined): Promise<{ accepted: boolean }> {
    const { store } = this.#opts;
    const id = await store.enqueueCommand({ runId, command, by, reason });
    const deadline = performance.now() + this.#opts.commandTimeoutMs;
    for (;;) {
      const outcome = await store.commandOutcome(id);
      if (outcome === 'expired') break;
      if (outcome !== 'pending') {
        if ('error' in outcome) throw new RunstateError(isErrorCode(outcome.error.code) ? outcome.error.code : 'INTERNAL', outcome.error.message);
        return { accepted: outcome.accepted };
      }
      // Once taken, the holder answers: wait for it. Untaken past the deadline: give it up.
      if (performance.now() > deadline && (await store.expireCommand(id))) break;
      await sleep(OUTCOME_POLL_MS);
    }
    throw new RunstateError('UNAVAILABLE', 'The instance that runs this run did not answer in time; nothing was done. Try again.');
  }

  async #claim(all: boolean): Promise<RunRecord[]> {
    const { store, owner, leaseMs, logger } = this.#opts;
    // Let go, or leased here but in no host (a claim that failed after it took them): nobody
    // works them, and renewing their leases would keep everyone else off them.
    const hosted = new Set([...this.#opts.held()].map((h) => h.runId));
    for (const id of [...this.#letGo]) if (hosted.has(id)) this.#letGo.delete(id);
    const letGo = [...this.#letGo];
    if (letGo.length > 0) {
      // Ours no more in memory: another instance (or this one, just below) may claim them now.
      await store.releaseLeases(owner, letGo);
      for (const id of letGo) this.#letGo.delete(id);
    }
    const found = await store.claimRuns(owner, leaseMs, 100, { all });
    const held = new Set([...this.#opts.held()].map((h) => h.runId));
    const claimed = found.filter((r) => !held.has(r.runId));
    if (claimed.length === 0) return [];
    for (const r of claimed) this.#claimingNow.add(r.runId);
    try {
      await this.#opts.beforeResume?.(claimed);
    } catch (err) {
      // Claimed but not to be worked here now: let them go (now, or once the store answers again).
      for (const r of claimed) this.#letGo.add(r.runId);
      await store.releaseLeases(owner, claimed.map((r) => r.runId)).then(
        () => claimed.forEach((r) => this.#letGo.delete(r.runId)),
        () => undefined,
      );
      throw err;
    }
    const resumed: RunRecord[] = [];
    for (const record of claimed) {
      if (this.#stopped) break;
      if (!this.#opts.resume(record)) {
        await store.releaseLeases(owner, [record.runId]);
        continue;
      }
      resumed.push(record);
      logger.info({ runId: record.runId, status: record.status, lastSeq: record.lastSeq, owner }, 'run resumed');
    }
    return resumed;
  }

  /** A run whose lease was lost is another instance's now: let it go, write nothing. */
  async #renew(): Promise<void> {
    const { store, owner, leaseMs, logger } = this.#opts;
    const sent = performance.now();
    const renewed = new Set(await store.renewLeases(owner, leaseMs));
    this.#renewedAt = sent;
    for (const [id, at] of this.#retiredAt) if (performance.now() - at > leaseMs * 2) this.#retiredAt.delete(id);
    const held = [...this.#opts.held()];
    const hosted = new Set(held.map((h) => h.runId));
    for (const id of renewed) {
      // Leased here, worked nowhere (a host that faulted, a claim that failed half-way):
      // renewing it would keep every instance off it. Let it go, to be claimed again.
      if (!hosted.has(id) && !this.#claimingNow.has(id) && !this.#retiredAt.has(id)) this.#letGo.add(id);
    }
    for (const { runId, live } of held) {
      if (renewed.has(runId) || !live) continue;
      logger.warn({ runId, owner }, 'lease lost: another instance has the run');
      this.#opts.lose(runId);
    }
  }

  /**
   * An instance that cannot renew its leases (the database away, a connection hung) stops
   * working its runs before the leases can run out, so that another instance that claims them
   * then is the only one working them. The leases run from no earlier than the last renewal
   * that succeeded was sent; a quarter of the lease is left as margin.
   */
  #watchLeases(): void {
    const { owner, leaseMs, logger } = this.#opts;
    // Twenty times a lease: the clock first, the runs (thousands, perhaps) only when the leases are late.
    if (performance.now() - this.#renewedAt < leaseMs * 0.75) return;
    const held = [...this.#opts.held()];
    if (held.length === 0) return;
    // Finished runs too: one whose last batch is held is still this instance's until it lands; past the lease it is another's to finish.
    for (const { runId } of held) {
      logger.warn(
        { runId, owner, sinceRenewalMs: Math.round(performance.now() - this.#renewedAt), leaseMs },
        'leases could not be renewed in time: letting the run go until the database is back',
      );
      this.#opts.lose(runId);
      this.#letGo.add(runId);
    }
  }

  async #applyQueued(): Promise<void> {
    for (const cmd of await this.#opts.store.takeCommands(this.#opts.owner)) {
      await this.#opts.store.finishCommand(cmd.id, await this.#opts.apply(cmd));
    }
  }
}
