// View mode: each watcher gets the run's newest server-side view, at most max_hz a second, at once on a new state.
import type { Logger } from 'pino';
import { canSeeSite } from '../auth/tokens.js';
import type { Engine } from '../engine/engine.js';
import { RunstateError } from '../errors.js';
import { isRunId } from '../ids.js';
import { processingOf } from '../engine/processing.js';
import type { StoredEvent } from '../store/store.js';
import type { Client } from './client.js';
import { type Frame, frames } from './frames.js';
import type { RunTopic } from './topics.js';

/** No room computes its view more often than this, and no watcher gets two views closer than this: 60 a second. */
export const MIN_GAP_MS = 1000 / 60;

interface Watcher {
  client: Client;
  /** 1000 / max_hz. */
  intervalMs: number;
  /** When it was last sent a view (-Infinity: never). */
  sentAt: number;
  /** The seq of the last view it was sent. */
  sentSeq: number;
  /** Not yet sent its first view (its token is still being checked against the run). */
  pending: boolean;
}

interface CachedView {
  seq: number;
  siteId: string;
  frame: Frame;
  /** When it was computed. */
  at: number;
}

/** One run's watchers: the view is computed once per due tick, framed once, shared by all. */
interface Room {
  runId: string;
  topic: string;
  watchers: Map<Client, Watcher>;
  /** The newest seq the run is known to have. */
  latestSeq: number;
  /** The newest state change not yet in a view sent to every watcher (0: none). */
  urgentSeq: number;
  cache: CachedView | null;
  computing: Promise<CachedView | undefined> | null;
  timer: NodeJS.Timeout | null;
  timerAt: number;
  flushing: boolean;
  /** After a view failed to compute, none is tried again before this. */
  retryAt: number;
}

export interface ViewFeedOptions {
  engine: Pick<Engine, 'getRun' | 'currentProcessing'>;
  logger: Logger;
  send: (client: Client, frames: readonly Frame[]) => void;
  /** [performance.now] The clock views are paced by. */
  now?: () => number;
}

/**
 * The pacing, per watcher: a view is due when the run has moved past the last one it was sent,
 * at the first tick of its `max_hz` grid at least one interval after that one (so watchers of
 * one rate fall on the same ticks and share one view); a state change makes it due at once.
 * A view not yet sent to a slow socket is replaced by the newer one in the client's queue
 * (see `Frame.slot`), never queued behind it. The cost is per tick, not per event or watcher:
 * a published batch only moves `latestSeq`.
 */
export class ViewFeed {
  readonly #opts: ViewFeedOptions;
  readonly #now: () => number;
  readonly #rooms = new Map<string, Room>();

  constructor(opts: ViewFeedOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? (() => performance.now());
  }

  /** Runs with watchers. */
  runIds(): IterableIterator<string> {
    return this.#rooms.keys();
  }

  /**
   * Where a read of the run's log for these watchers starts (they need only what is new, to see
   * state changes); undefined when none watches it or its first view is still being read.
   */
  lowestSeq(runId: string): number | undefined {
    const room = this.#rooms.get(runId);
    return room?.cache ? room.latestSeq : undefined;
  }

  publish(runId: string, events: readonly StoredEvent[]): void {
    const room = this.#rooms.get(runId);
    if (!room || events.length === 0) return;
    let urgent = false;
    for (const e of events) {
      if (e.seq <= room.latestSeq) continue;
      room.latestSeq = e.seq;
      if (e.event === 'state_change') {
        room.urgentSeq = e.seq;
        urgent = true;
      }
    }
    if (urgent || room.timer === null) this.#schedule(room);
  }

  /** Sends the first view at once; throws `INVALID_RUN_ID`, `RUN_NOT_FOUND` or `FORBIDDEN`. */
  async subscribe(client: Client, topic: RunTopic, maxHz: number): Promise<void> {
    if (!isRunId(topic.id)) throw new RunstateError('INVALID_RUN_ID', `${JSON.stringify(topic.id)} is not a run id.`);
    let room = this.#rooms.get(topic.id);
    if (!room) {
      room = { runId: topic.id, topic: topic.name, watchers: new Map(), latestSeq: 0, urgentSeq: 0, cache: null, computing: null, timer: null, timerAt: Infinity, flushing: false, retryAt: -Infinity };
      this.#rooms.set(topic.id, room);
    }
    const w: Watcher = { client, intervalMs: 1000 / maxHz, sentAt: -Infinity, sentSeq: -1, pending: true };
    room.watchers.set(client, w);
    const view = room.cache !== null && room.cache.seq >= room.latestSeq ? room.cache : await this.#fresh(room);
    if (!view) throw new RunstateError('RUN_NOT_FOUND', `No run with id ${topic.id}.`);
    if (!canSeeSite(client.principal, view.siteId)) throw new RunstateError('FORBIDDEN', `This token may not reach run ${topic.id}.`);
    if (client.closed || room.watchers.get(client) !== w) return; // unsubscribed meanwhile
    this.#opts.send(client, [view.frame]);
    w.pending = false;
    w.sentAt = this.#now();
    w.sentSeq = view.seq;
    this.#schedule(room);
  }

  unsubscribe(client: Client, runId: string): void {
    const room = this.#rooms.get(runId);
    if (!room) return;
    room.watchers.delete(client);
    if (room.watchers.size > 0) return;
    if (room.timer !== null) clearTimeout(room.timer);
    room.timer = null;
    this.#rooms.delete(runId);
  }

  clear(): void {
    for (const room of this.#rooms.values()) if (room.timer !== null) clearTimeout(room.timer);
    this.#rooms.clear();
  }

  #dueAt(room: Room, w: Watcher): number {
    if (w.pending || w.sentSeq >= room.latestSeq) return Infinity;
    const regular = Math.ceil((w.sentAt + w.intervalMs) / w.intervalMs) * w.intervalMs;
    const at = room.urgentSeq > w.sentSeq ? Math.min(regular, w.sentAt + MIN_GAP_MS) : regular;
    // A view computed moments ago that is already behind is not recomputed before the gap.
    const stale = room.cache !== null && room.cache.seq < room.latestSeq ? room.cache.at + MIN_GAP_MS : -Infinity;
    return Math.max(at, stale, room.retryAt);
  }

  #schedule(room: Room): void {
    if (room.flushing || this.#rooms.get(room.runId) !== room) return; // the flush reschedules when done
    let at = Infinity;
    for (const w of room.watchers.values()) at = Math.min(at, this.#dueAt(room, w));
    if (at === Infinity || (room.timer !== null && room.timerAt <= at)) return;
    if (room.timer !== null) clearTimeout(room.timer);
    room.timerAt = at;
    room.timer = setTimeout(() => {
      room.timer = null;
      room.timerAt = Infinity;
      void this.#flush(room);
    }, Math.max(0, at - this.#now()));
    room.timer.unref();
  }

  /** Sends every due watcher the one newest view; never rejects. */
  async #flush(room: Room): Promise<void> {
    room.flushing = true;
    try {
      const now = this.#now();
      const due = [...room.watchers.values()].filter((w) => this.#dueAt(room, w) <= now);
      if (due.length === 0) return;
      const view = room.cache !== null && room.cache.seq >= room.latestSeq ? room.cache : await this.#fresh(room);
      if (!view) {
        // The run is gone (deleted by retention): nothing more to show.
        for (const w of room.watchers.values()) w.sentSeq = room.latestSeq;
        return;
      }
      const sentAt = this.#now();
      for (const w of due) {
        if (w.client.closed || room.watchers.get(w.client) !== w || w.sentSeq >= view.seq) continue;
        w.sentAt = sentAt;
        w.sentSeq = view.seq;
        this.#opts.send(w.client, [view.frame]);
      }
      if (view.seq >= room.urgentSeq) room.urgentSeq = 0;
    } catch (err) {
      room.retryAt = this.#now() + 1000;
      this.#opts.logger.error({ err, runId: room.runId }, 'a run view could not be computed');
    } finally {
      room.flushing = false;
      this.#schedule(room);
    }
  }

  /** The view now, computed once however many ask at the same time. */
  #fresh(room: Room): Promise<CachedView | undefined> {
    room.computing ??= this.#compute(room).finally(() => (room.computing = null));
    return room.computing;
  }

  async #compute(room: Room): Promise<CachedView | undefined> {
    const { engine } = this.#opts;
    const run = await engine.getRun(room.runId);
    if (!run) return undefined;
    const processing = await processingOf(engine, run);
    const view: CachedView = { seq: run.last_seq, siteId: run.site_id, frame: frames.view(room.topic, run.last_seq, run, processing), at: this.#now() };
    room.cache = view;
    room.latestSeq = Math.max(room.latestSeq, view.seq);
    return view;
  }
}
