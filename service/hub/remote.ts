// Runs another instance works: their events are read from the store, on a hint and every second.
import type { Logger } from 'pino';
import type { Engine } from '../engine/engine.js';
import { asRunstateError } from '../errors.js';
import type { StoredEvent } from '../store/store.js';

/** Events read from the store at a time. */
const PAGE = 1000;

export interface RemoteOptions {
  engine: Engine;
  logger: Logger;
  /** Whether this instance works the run and so publishes its events itself. */
  isLocal: (runId: string) => boolean;
  /** Runs someone here follows. */
  followed: () => Iterable<string>;
  /** Where to read from: the lowest seq any follower of the run has; undefined when none needs one. */
  lowestSeq: (runId: string) => number | undefined;
  publish: (runId: string, events: readonly StoredEvent[]) => void;
  /** [1000] How often every followed remote run is read, for whatever a hint did not bring. */
  resyncMs?: number;
}

export class RemotePull {
  readonly #opts: RemoteOptions;
  /** Runs being read: run id → read again when done. */
  readonly #pulling = new Map<string, boolean>();
  readonly #timer: NodeJS.Timeout;

  constructor(opts: RemoteOptions) {
    this.#opts = opts;
    // NOTIFY is a hint; this catches whatever a hint did not bring.
    this.#timer = setInterval(() => this.resync(), opts.resyncMs ?? 1000);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** Another instance appended events to a run up to `lastSeq`. */
  appended(runId: string, lastSeq: number): void {
    const low = this.#opts.lowestSeq(runId);
    if (low !== undefined && low < lastSeq) this.#pull(runId);
  }

  resync(): void {
    for (const runId of [...this.#opts.followed()]) if (!this.#opts.isLocal(runId)) this.#pull(runId);
  }

  /** Publishes a remote run's events after the lowest seq any of its followers has. */
  #pull(runId: string): void {
    if (this.#pulling.has(runId)) {
      this.#pulling.set(runId, true);
      return;
    }
    this.#pulling.set(runId, false);
    const work = async () => {
      do {
        this.#pulling.set(runId, false);
        for (;;) {
          const from = this.#opts.lowestSeq(runId);
          if (from === undefined) break;
          const page = await this.#opts.engine.store.readEvents(runId, from, PAGE);
          if (page.length === 0) break;
          this.#opts.publish(runId, page);
          if (page.length < PAGE) break;
        }
      } while (this.#pulling.get(runId));
    };
    work()
      .catch((err: unknown) => {
        // The database away: the next resync reads again; the health state says why, once.
        if (asRunstateError(err).code === 'DATABASE_UNAVAILABLE') this.#opts.logger.debug({ err, runId }, 'reading a remote run failed');
        else this.#opts.logger.error({ err, runId }, 'reading a remote run failed');
      })
      .finally(() => this.#pulling.delete(runId));
  }
}
