// Run topics in events mode: every event in seq order to every subscriber, framed once, never waiting on one.
import { canSeeSite } from '../auth/tokens.js';
import type { Engine } from '../engine/engine.js';
import { RunstateError } from '../errors.js';
import { isRunId } from '../ids.js';
import type { StoredEvent } from '../store/store.js';
import type { Client } from './client.js';
import { type Frame, frames, joined } from './frames.js';
import type { RunTopic } from './topics.js';
import { topics } from './topics.js';

/** Live events held for one syncing subscriber at most; past that the replay re-reads them. */
const SYNC_BUFFER = 5000;
export const REPLAY_PAGE = 200;

interface Subscription {
  /** Live events wait here while the snapshot or the replay is being sent. */
  syncing: StoredEvent[] | null;
  /** The buffer overflowed since the replay last read the log: read once more before going live. */
  overflowed: boolean;
  /** The last seq this client has been sent on this topic. */
  seq: number;
}

export interface FanoutOptions {
  engine: Engine;
  /** Hands frames to a client's queue (and evicts it when they pass its bound). */
  send: (client: Client, frames: readonly Frame[]) => void;
}

export class RunFanout {
  readonly #opts: FanoutOptions;
  /** Run id → its subscribers. */
  readonly #runs = new Map<string, Map<Client, Subscription>>();

  constructor(opts: FanoutOptions) {
    this.#opts = opts;
  }

  /** Runs with subscribers. */
  runIds(): IterableIterator<string> {
    return this.#runs.keys();
  }

  /** The lowest seq a live subscriber of the run has been sent (those syncing read the log themselves). */
  lowestSeq(runId: string): number | undefined {
    let low: number | undefined;
    for (const sub of this.#runs.get(runId)?.values() ?? []) {
      if (!sub.syncing && (low === undefined || sub.seq < low)) low = sub.seq;
    }
    return low;
  }

  /**
   * A durable batch, in seq order (repeats are skipped per subscriber). Client by client, the
   * whole batch in one write: a socket write per client per event is what limits fan-out to a
   * thousand clients, not the framing.
   */
  publish(runId: string, events: readonly StoredEvent[], appendedAt: number): void {
    const subs = this.#runs.get(runId);
    if (!subs || subs.size === 0) return;
    const topic = topics.run(runId).name;
    // Framed once, on first need, and shared by every subscriber.
    const framed = new Array<Frame | undefined>(events.length);
    const frameOf = (i: number) => (framed[i] ??= frames.event(topic, events[i]!, appendedAt));
    // The whole batch as one buffer, for the subscribers (nearly all) that are sent all of it.
    let whole: Frame | undefined;
    const first = events[0]?.seq ?? 0;
    const last = events.at(-1)?.seq ?? 0;
    for (const [client, sub] of subs) {
      if (sub.syncing) {
        for (const e of events) {
          if (sub.syncing.length >= SYNC_BUFFER) {
            sub.syncing = [];
            sub.overflowed = true;
          }
          sub.syncing.push(e);
        }
        continue;
      }
      if (sub.seq < first) {
        whole ??= joined(events.map((_, i) => frameOf(i)));
        sub.seq = last;
        this.#opts.send(client, [whole]);
        continue;
      }
      const batch: Frame[] = [];
      events.forEach((e, i) => {
        if (e.seq <= sub.seq) return;
        batch.push(frameOf(i));
        sub.seq = e.seq;
      });
      if (batch.length > 0) this.#opts.send(client, batch);
    }
  }

  /**
   * The hand-over: the subscription is registered (buffering live events) before the
   * snapshot or replay is read, and live events are let through only past the last seq the
   * client was sent. Nothing falls between the two, and nothing is sent twice.
   */
  async subscribe(client: Client, topic: RunTopic, afterSeq: number | undefined): Promise<void> {
    if (!isRunId(topic.id)) throw new RunstateError('INVALID_RUN_ID', `${JSON.stringify(topic.id)} is not a run id.`);
    const sub: Subscription = { syncing: [], overflowed: false, seq: 0 };
    let subs = this.#runs.get(topic.id);
    if (!subs) this.#runs.set(topic.id, (subs = new Map()));
    subs.set(client, sub);
    const current = () => !client.closed && this.#runs.get(topic.id)?.get(client) === sub;

    const durable = await this.#opts.engine.durableView(topic.id);
    if (!durable) throw new RunstateError('RUN_NOT_FOUND', `No run with id ${topic.id}.`);
    if (!canSeeSite(client.principal, durable.run.site_id)) throw new RunstateError('FORBIDDEN', `This token may not reach run ${topic.id}.`);
    if (!current()) return; // unsubscribed meanwhile

    if (afterSeq === undefined || afterSeq > durable.seq) {
      // No position, or one from a log this run never had: a fresh snapshot, said as such.
      const build = afterSeq === undefined ? frames.snapshot : frames.reset;
      this.#opts.send(client, [build(topic.name, durable.seq, durable.run)]);
      sub.seq = durable.seq;
    } else {
      // Replay from the log at the pace the client reads: a long backlog is not a slow consumer.
      sub.seq = afterSeq;
      for (;;) {
        sub.overflowed = false;
        const page = await this.#opts.engine.store.readEvents(topic.id, sub.seq, REPLAY_PAGE);
        if (!current()) return;
        if (page.length === 0 && !sub.overflowed) break;
        // One write per frame: the socket takes each as it can, so a page is not one lump past the bound.
        for (const e of page) this.#opts.send(client, [frames.event(topic.name, e)]);
        if (page.length > 0) sub.seq = page[page.length - 1]!.seq;
        await client.roomFor(0);
      }
    }
    const waiting = sub.syncing ?? [];
    sub.syncing = null;
    for (const e of waiting) {
      if (e.seq <= sub.seq) continue;
      sub.seq = e.seq;
      this.#opts.send(client, [frames.event(topic.name, e)]);
    }
  }

  unsubscribe(client: Client, runId: string): void {
    const subs = this.#runs.get(runId);
    subs?.delete(client);
    if (subs?.size === 0) this.#runs.delete(runId);
  }

  clear(): void {
    this.#runs.clear();
  }
}
