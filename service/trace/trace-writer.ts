import { appendFile, mkdir, open, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { isTerminalRunState, type RunContext } from '../../machines/index.js';
import { runEnteredState, type StoredEvent } from '../events.js';
import type { FaultSink } from '../health.js';
import type { RunRecord, Store } from '../store/store.js';
import { HumanLog } from './human-log.js';

export interface TraceWriterOptions {
  /** `<data>`: files go under `<data>/logs/`. */
  dataDir: string;
  store: Store;
  logger: Logger;
  /** Told when trace files cannot be written (disk full) and when they catch up again. */
  faults?: FaultSink;
  /** Delay before the n-th retry of a run whose files could not be written (n from 0). [100 ms doubling to 2 s, with jitter] */
  retryDelay?: (attempt: number) => number;
  /**
   * How long events wait to be written with those that follow them: one append per file for
   * many batches rather than three per batch, off the engine's hot path. `flush` does not wait. [20]
   */
  coalesceMs?: number;
}

interface RunFiles {
  run: RunRecord;
  dir: string;
  dirMade: boolean;
  /** Events waiting to be written; a writer that falls behind writes them in one go. */
  queued: StoredEvent[];
  /** The drain in progress, if any. */
  draining: Promise<void> | null;
  /** The drain to come, while events wait to be written with the next ones. */
  timer: NodeJS.Timeout | null;
  human: HumanLog;
  /** The highest seq handed to `write`, and the highest in the trace file: their difference is the lag. */
  announced: number;
  written: number;
  /** A write failed: the file is brought up to the log from the store before anything else is appended. */
  behind: boolean;
}

/** The run machine's transition into completed or cancelled: the last event but `close`. */
function isFinish(e: StoredEvent): e is StoredEvent<'state_change'> {
  const to = runEnteredState(e);
  return to !== undefined && isTerminalRunState(to);
}

/** Whether the run's persisted snapshot has a `retry_failed` under way (its context's `retry`, docs/machines.md). */
function isRetrying(snapshot: unknown): boolean {
  return ((snapshot as { context?: Partial<Pick<RunContext, 'retry'>> } | null)?.context?.retry ?? null) !== null;
}

/**
 * Writes the plain files of docs/operations.md ("Data directory") from the event stream, after the events are durable:
 * `run_trace.jsonl` (each line byte-for-byte the stored event), the human-readable
 * `automation_run.log` and `stage_<n>.log`, and one line per finished run in
 * `automation_diagnostic.log`. Writes for one run happen one after another, in seq order;
 * nothing here slows an append down. After a crash, `repair` brings every trace that may lag
 * its log back in line.
 */
export class TraceWriter {
  readonly #opts: TraceWriterOptions;
  readonly #runs = new Map<string, RunFiles>();
  readonly #diagnostic: HumanLog;
  #diagnosticTail: Promise<void> = Promise.resolve();

  constructor(opts: TraceWriterOptions) {
    this.#opts = opts;
    this.#diagnostic = new HumanLog();
  }

  static runDir(dataDir: string, run: Pick<RunRecord, 'accountId' | 'siteId' | 'runId'>): string {
    return join(dataDir, 'logs', run.accountId, run.siteId, run.runId);
  }

  /** Queues the events of one run for writing; returns at once. */
  write(run: RunRecord, events: readonly StoredEvent[]): void {
    const files = this.#files(run);
    files.queued.push(...events);
    files.announced = Math.max(files.announced, events.at(-1)?.seq ?? 0);
    // A drain under way takes what is queued when its write is done; otherwise wait a moment for more.
    if (files.draining || files.timer) return;
    files.timer = setTimeout(() => this.#kick(files), this.#opts.coalesceMs ?? 20);
  }

  /** Resolves once everything queued for the run (or for every run) is on disk. */
  async flush(runId?: string): Promise<void> {
    const files = runId === undefined ? [...this.#runs.values()] : [this.#runs.get(runId)].filter((f) => f !== undefined);
    for (const f of files) this.#kick(f);
    await Promise.all(files.map((f) => f.draining));
    await this.#diagnosticTail;
  }

  /** Events durable in the log that the trace files of this process do not hold yet, over all runs. */
  lagEvents(): number {
    let n = 0;
    for (const f of this.#runs.values()) n += Math.max(0, f.announced - f.written);
    return n;
  }

  /** Starts the drain now (if one is not under way), not waiting out the coalescing delay. */
  #kick(files: RunFiles): void {
    if (files.timer) clearTimeout(files.timer);
    files.timer = null;
    if (files.queued.length > 0) files.draining ??= this.#drain(files);
  }

  /**
   * Writes what is queued. A write that fails (ENOSPC) is not dropped: the run is marked
   * behind, and retried with backoff by bringing its trace file up to the log from the store
   * (cutting a torn last line), then going on with the queue: the files catch up by
   * themselves once there is room.
   */
  async #drain(files: RunFiles): Promise<void> {
    const delay = this.#opts.retryDelay ?? ((n: number) => Math.min(2000, 100 * 2 ** n) * (0.5 + Math.random() / 2));
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          if (files.behind) {
            await this.#catchUp(files);
            files.behind = false;
            this.#opts.faults?.ok(`traces`);
            this.#opts.logger.info({ runId: files.run.runId, seq: files.written }, 'the trace caught up with the log');
          }
          while (files.queued.length > 0) {
            const events = files.queued.filter((e) => e.seq > files.written);
            files.queued = [];
            if (events.length > 0) await this.#append(files, events);
          }
          return;
        } catch (err) {
          if (!files.behind) this.#opts.logger.error({ err, runId: files.run.runId }, 'writing the trace failed; it catches up from the log once it can');
          this.#opts.faults?.fault('traces', err);
          files.behind = true;
          // The store holds them: the catch-up reads them from there.
          files.queued = [];
          await new Promise((resolve) => setTimeout(resolve, delay(attempt)));
        }
      }
    } finally {
      files.draining = null;
    }
  }

  /** Brings one run's trace file up to its log: what `repair` does, from the run as the store has it now. */
  async #catchUp(files: RunFiles): Promise<void> {
    const run = (await this.#opts.store.getRun(files.run.runId)) ?? files.run;
    files.run = run;
    await this.#repairRun(files, run);
  }

  /**
   * Brings the trace of every run that may lag (every run not marked fully traced, or the runs
   * given) up to its event log: a torn last line is cut off, the missing events are appended.
   */
  async repair(only?: readonly RunRecord[]): Promise<number> {
    const runs = only ?? (await this.#opts.store.listUntraced());
    for (const run of runs) {
      const files = this.#files(run);
      this.#kick(files);
      await files.draining;
      try {
        await this.#repairRun(files, run);
      } catch (err) {
        // No room (or the store away) now: the run's drain catches it up by itself, before anything else is appended.
        this.#opts.logger.error({ err, runId: run.runId }, 'repairing the trace failed; it catches up from the log once it can');
        this.#opts.faults?.fault('traces', err);
        files.behind = true;
        files.draining ??= this.#drain(files);
      }
    }
    return runs.length;
  }

  async #repairRun(files: RunFiles, run: RunRecord): Promise<void> {
    const tracePath = join(files.dir, 'run_trace.jsonl');
    const lastSeq = await lastTracedSeq(tracePath);
    files.written = lastSeq;
    // A crash may have come between the trace's last finish and its diagnostic line: in a
    // finished run, or in one that finished and is now retrying its failed items.
    if (isTerminalRunState(run.status) || isRetrying(run.snapshot)) await this.#diagnoseLastFinish(run, lastSeq);
    let after = lastSeq;
    for (;;) {
      const events = await this.#opts.store.readEvents(run.runId, after, 5000);
      if (events.length === 0) break;
      await this.#append(files, events);
      after = events[events.length - 1]!.seq;
    }
    if (lastSeq === after && isTerminalRunState(run.status)) await this.#opts.store.markTraced(run.runId, run.lastSeq);
  }

  /** Writes the diagnostic line of the run's last finish at or before `upTo` (the trace's end), unless the log has it. */
  async #diagnoseLastFinish(run: RunRecord, upTo: number): Promise<void> {
    if (upTo === 0) return;
    const tail = await this.#opts.store.readEvents(run.runId, Math.max(0, upTo - 100), Math.min(upTo, 100));
    const finished = tail.findLast(isFinish);
    if (finished && !(await this.#diagnosticHas(run.runId, finished.seq))) await this.#writeDiagnostic(run, finished);
  }

  /** Whether the diagnostic log's recent lines (read from its end, 256 KiB at most) hold the line of the run's finish at `seq`. */
  async #diagnosticHas(runId: string, seq: number): Promise<boolean> {
    const path = join(this.#opts.dataDir, 'logs', 'automation_diagnostic.log');
    let handle;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    try {
      const { size } = await handle.stat();
      const length = Math.min(size, 256 * 1024);
      const buf = Buffer.alloc(length);
      await handle.read(buf, 0, length, size - length);
      return buf
        .toString('utf8')
        .split('\n')
        .some((line) => line.includes(`${runId} `) && line.includes(`, ${seq} events in `));
    } finally {
      await handle.close();
    }
  }

  #files(run: RunRecord): RunFiles {
    let files = this.#runs.get(run.runId);
    if (!files) {
      files = {
        run,
        dir: TraceWriter.runDir(this.#opts.dataDir, run),
        dirMade: false,
        queued: [],
        draining: null,
        timer: null,
        human: new HumanLog(),
        announced: 0,
        written: 0,
        behind: false,
      };
      this.#runs.set(run.runId, files);
    }
    return files;
  }

  async #append(files: RunFiles, events: readonly StoredEvent[]): Promise<void> {
    const { run } = files;
    if (!files.dirMade) {
      await mkdir(files.dir, { recursive: true });
      files.dirMade = true;
    }
    await appendFile(join(files.dir, 'run_trace.jsonl'), events.map((e) => `${JSON.stringify(e)}\n`).join(''));
    files.written = events[events.length - 1]!.seq;
    files.announced = Math.max(files.announced, files.written);
    const { run: runLines, stages } = files.human.format(events);
    if (runLines) await appendFile(join(files.dir, 'automation_run.log'), runLines);
    for (const [stage, lines] of stages) await appendFile(join(files.dir, `stage_${stage}.log`), lines);
    // A line per finish: a batch caught up after a crash may hold two (a run finished, then
    // finished again after retry_failed).
    const finishes = events.filter(isFinish);
    for (const finished of finishes) await this.#writeDiagnostic(run, finished);
    // After its terminal event a run only ever gets `close`: either one means the trace is whole.
    if (finishes.length > 0 || events.some((e) => e.event === 'command' && e.command === 'close')) {
      await this.#opts.store.markTraced(run.runId, events[events.length - 1]!.seq);
      // A finished run writes nothing more but `close`: that reopens its entry.
      if (files.queued.length === 0) this.#runs.delete(run.runId);
    }
  }

  async #writeDiagnostic(run: RunRecord, finished: StoredEvent<'state_change'>): Promise<void> {
    const ledger = await this.#opts.store.ledger(run.runId);
    const line = this.#diagnostic.summary({
      time: finished.timestamp,
      runId: run.runId,
      accountId: run.accountId,
      siteId: run.siteId,
      pipeline: run.pipeline,
      status: finished.payload.to_state,
      processed: ledger.filter((l) => l.status === 'done').length,
      failed: ledger.filter((l) => l.status === 'failed').length,
      events: finished.seq,
      durationMs: Date.parse(finished.timestamp) - Date.parse(run.createdAt),
    });
    const path = join(this.#opts.dataDir, 'logs', 'automation_diagnostic.log');
    // One failed append (ENOSPC) must not fail every later one: each waits for the last to settle.
    const written = this.#diagnosticTail.catch(() => undefined).then(() => appendFile(path, line));
    this.#diagnosticTail = written.catch(() => undefined);
    await written;
  }
}

/** The seq of the last whole line of a trace file (0 if none), after cutting off a torn last line. */
async function lastTracedSeq(path: string): Promise<number> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  try {
    const { size } = await handle.stat();
    if (size === 0) return 0;
    const chunk = Math.min(size, 256 * 1024);
    const buf = Buffer.alloc(chunk);
    await handle.read(buf, 0, chunk, size - chunk);
    const lastNewline = buf.lastIndexOf(0x0a);
    if (lastNewline === -1 && chunk < size) throw new Error(`the last line of ${path} is longer than ${chunk} bytes`);
    const wholeEnd = size - chunk + lastNewline + 1;
    if (wholeEnd < size) {
      await handle.close();
      handle = undefined;
      await truncate(path, wholeEnd);
    }
    if (lastNewline === -1) return 0;
    const start = buf.lastIndexOf(0x0a, lastNewline - 1) + 1;
    if (start === 0 && chunk < size) throw new Error(`the last line of ${path} is longer than ${chunk} bytes`);
    const seq = (JSON.parse(buf.subarray(start, lastNewline).toString('utf8')) as { seq?: unknown }).seq;
    if (typeof seq !== 'number') throw new Error(`the last line of ${path} has no seq`);
    return seq;
  } finally {
    await handle?.close();
  }
}
