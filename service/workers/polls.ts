// The long polls of one instance's worker door (docs/workers.md, "Long polls"): claims with
// `wait_ms` that found no job wait in line per queue, and a job queued wakes as many of them as
// it takes to hand it out, not every poll on the queue. door.ts claims; this decides who looks when.
import type { ClaimedJob } from '../store/jobs.js';

/** A long poll waiting in line: `wake(n)` ends its wait, for n jobs queued (0: to look again, or to stop). */
interface Poll {
  /** The most jobs it asked for. */
  max: number;
  wake: (share: number) => void;
}

/** What `look` noted before a claim, for `looked` after it. */
export interface Look {
  queue: string;
  count: number;
}

export class PollLine {
  /** [250] How often a waiting poll looks again without a wake (leases run out silently). */
  readonly pollMs: number;
  /** Per queue, the polls waiting, in the order they came. */
  readonly #waiting = new Map<string, Poll[]>();
  /** Per queue, the jobs queued in this turn: polls are woken for them at its end. */
  readonly #wake = new Map<string, number>();
  /**
   * Per queue, the jobs queued here that no claim here took yet, as far as this instance knows
   * (a claim that finds the queue short sets it to 0): a wake is for no more jobs than that.
   */
  readonly #unclaimed = new Map<string, number>();
  /** Per queue, how many jobs were ever queued here (a job queued changes it). */
  readonly #queuedCount = new Map<string, number>();
  /**
   * Queues a claim found short of what it asked for, with #queuedCount then and when: while no
   * job was queued since (and for at most one poll period: a lease that runs out makes a job
   * claimable without a word), a long poll waits in line at once rather than look first.
   */
  readonly #drained = new Map<string, { count: number; at: number }>();

  constructor(pollMs = 250) {
    this.pollMs = pollMs;
  }

  /**
   * A job of `queue` became claimable: at the end of this turn of the event loop, wake as many
   * polls waiting on it as it takes to hand out the jobs queued in the turn (#wakeFor). The jobs
   * a stage queues together then go out in one claim rather than one claim (and one HTTP round
   * trip) each, and the other polls sleep on rather than race for the same jobs and most come
   * back empty.
   */
  queued(queue: string): void {
    if (this.#wake.size === 0) setImmediate(() => this.#wakeQueued());
    this.#wake.set(queue, (this.#wake.get(queue) ?? 0) + 1);
    this.#queuedCount.set(queue, (this.#queuedCount.get(queue) ?? 0) + 1);
    this.#unclaimed.set(queue, (this.#unclaimed.get(queue) ?? 0) + 1);
  }

  #wakeQueued(): void {
    const queues = [...this.#wake];
    this.#wake.clear();
    // Jobs a claim took before this wake (one that came in meanwhile) wake nobody.
    for (const [q, n] of queues) this.wakeFor(q, Math.min(n, this.#unclaimed.get(q) ?? 0));
  }

  /**
   * Wakes the polls waiting on `queue` for `jobs` jobs: the one that asked for the most (the
   * oldest of those) first, then the next while what they asked for falls short of the jobs.
   * A woken poll that cannot claim (gone, a failed claim) passes its share on the same way.
   */
  wakeFor(queue: string, jobs: number): void {
    const polls = this.#waiting.get(queue);
    let left = jobs;
    while (polls && polls.length > 0 && left > 0) {
      let at = 0;
      for (let i = 1; i < polls.length; i++) if (polls[i]!.max > polls[at]!.max) at = i;
      const [poll] = polls.splice(at, 1);
      const share = Math.min(poll!.max, left);
      left -= share;
      poll!.wake(share);
    }
    if (polls?.length === 0) this.#waiting.delete(queue);
  }

  /**
   * Whether a long poll not woken for jobs should look: not when a claim here found the queue
   * short within the poll period, with nothing queued since (that look would have found a lease
   * that ran out too). The claim of `POST /answers` most often, whose answers' successors are not
   * queued yet, and the poll timer of a busy queue.
   */
  worthALook(queue: string): boolean {
    const d = this.#drained.get(queue);
    return d === undefined || d.count !== (this.#queuedCount.get(queue) ?? 0) || Date.now() - d.at >= this.pollMs;
  }

  /** Before a claim of `queue`. */
  look(queue: string): Look {
    return { queue, count: this.#queuedCount.get(queue) ?? 0 };
  }

  /** After it: what it took tells what is left. */
  looked({ queue, count }: Look, max: number, claimed: readonly ClaimedJob[]): void {
    if (claimed.length < max && (this.#queuedCount.get(queue) ?? 0) === count) {
      this.#drained.set(queue, { count, at: Date.now() });
      this.#unclaimed.set(queue, 0);
      return;
    }
    if (claimed.length === max) this.#drained.delete(queue);
    // A job whose lease ran out was not counted queued.
    const taken = claimed.filter((c) => !c.leaseWasLost).length;
    this.#unclaimed.set(queue, Math.max(0, (this.#unclaimed.get(queue) ?? 0) - taken));
  }

  /**
   * Waits in line on `queue` until jobs are queued for this poll (resolves with how many, of the
   * `max` it asked for), or `ms` pass, the worker hangs up (`gone`) or the line closes (0).
   */
  wait(queue: string, max: number, ms: number, gone: AbortSignal | undefined): Promise<number> {
    return new Promise((resolve) => {
      const poll: Poll = {
        max,
        wake: (share) => {
          clearTimeout(timer);
          gone?.removeEventListener('abort', drop);
          resolve(share);
        },
      };
      // Out of the line before it is woken: no job is handed to a poll that left.
      const drop = () => {
        const polls = this.#waiting.get(queue);
        const at = polls?.indexOf(poll) ?? -1;
        if (at >= 0) polls!.splice(at, 1);
        if (polls?.length === 0) this.#waiting.delete(queue);
        poll.wake(0);
      };
      const timer = setTimeout(drop, ms);
      gone?.addEventListener('abort', drop, { once: true });
      const polls = this.#waiting.get(queue);
      if (polls) polls.push(poll);
      else this.#waiting.set(queue, [poll]);
    });
  }

  /** Every waiting poll ends its wait. */
  close(): void {
    const polls = [...this.#waiting.values()].flat();
    this.#waiting.clear();
    for (const p of polls) p.wake(0);
  }
}
