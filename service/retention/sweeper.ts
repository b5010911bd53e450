// The retention sweep (RUNSTATE_RETENTION, docs/operations.md): every so often, deletes closed and
// finished runs untouched for longer than the retention, in small batches, with their rows and
// their trace directory. The diagnostic log keeps its line for each.
import { rm } from 'node:fs/promises';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { TraceWriter } from '../trace/trace-writer.js';
import type { RetentionStore } from './types.js';

export interface RetentionSweeperOptions {
  store: RetentionStore;
  /** `<data>`: trace directories are under `<data>/logs/`. */
  dataDir: string;
  /** How long a closed or finished run is kept after it was last touched, in ms; 0 keeps every run. */
  retentionMs: number;
  /** [intervalMs=60000] between sweeps. */
  intervalMs?: number;
  /** [batch=50] runs deleted per transaction. */
  batch?: number;
  logger: Logger;
  /** Where `runstate_retention_deleted_runs_total` is registered; none: not counted. */
  registry?: Registry;
  /** [now=Date.now] */
  now?: () => number;
}

export class RetentionSweeper {
  readonly #o: RetentionSweeperOptions & { intervalMs: number; batch: number; now: () => number };
  readonly #deleted: Counter | undefined;
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<number> | undefined;
  #stopped = true;
  /** Set by stop(): a sweep in progress ends after its batch. */
  #halted = false;

  constructor(options: RetentionSweeperOptions) {
    this.#o = { intervalMs: 60_000, batch: 50, now: Date.now, ...options };
    if (!Number.isFinite(this.#o.retentionMs) || this.#o.retentionMs < 0) {
      throw new TypeError(`Expected \`retentionMs\` to be 0 or more, got ${String(this.#o.retentionMs)}.`);
    }
    if (!Number.isInteger(this.#o.batch) || this.#o.batch < 1) throw new TypeError(`Expected \`batch\` to be a positive integer, got ${String(this.#o.batch)}.`);
    this.#deleted = options.registry
      ? new Counter({
          name: 'runstate_retention_deleted_runs_total',
          help: 'Runs deleted by the retention sweep (RUNSTATE_RETENTION)',
          registers: [options.registry],
        })
      : undefined;
  }

  /** Sweeps every `intervalMs`; with a retention of 0, never. */
  start(): void {
    if (this.#o.retentionMs === 0 || !this.#stopped) return;
    this.#stopped = false;
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#halted = true;
    clearTimeout(this.#timer);
    await this.#sweeping?.catch(() => undefined);
  }

  /** One sweep, batch after batch until none is left; resolves with how many runs were deleted. */
  sweep(): Promise<number> {
    this.#sweeping ??= this.#sweep().finally(() => {
      this.#sweeping = undefined;
    });
    return this.#sweeping;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.sweep()
        .catch((err: unknown) => this.#o.logger.warn({ err }, 'retention sweep failed; trying again at the next one'))
        .finally(() => this.#schedule());
    }, this.#o.intervalMs).unref();
  }

  async #sweep(): Promise<number> {
    if (this.#o.retentionMs === 0) return 0;
    const cutoff = new Date(this.#o.now() - this.#o.retentionMs).toISOString();
    let total = 0;
    for (;;) {
      const runs = await this.#o.store.expired(cutoff, this.#o.batch);
      if (runs.length === 0) break;
      // Files first: a crash in between leaves rows that the next sweep deletes, never a
      // directory that no row names any more.
      await Promise.all(runs.map((r) => rm(TraceWriter.runDir(this.#o.dataDir, r), { recursive: true, force: true })));
      const deleted = await this.#o.store.deleteRuns(
        runs.map((r) => r.runId),
        cutoff,
      );
      total += deleted.length;
      this.#deleted?.inc(deleted.length);
      if (runs.length < this.#o.batch || deleted.length === 0 || this.#halted) break;
      // A turn of the event loop between batches: requests and runs go on during a long sweep.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (total > 0) {
      await this.#o.store.reclaim();
      this.#o.logger.info({ runs: total, cutoff }, 'retention: deleted runs past their retention');
    }
    return total;
  }
}
