// Whether the service can do its work right now: the database answers and the disk has room.
// Faults are a state of the service (GET /healthz, runstate_database_up), never a crash.
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import { faultKind, faultReason, type FaultKind } from './store/faults.js';
import type { Store } from './store/store.js';

/** Where components report faults that pass (and their end): the journal, the trace writer, the pool. */
export interface FaultSink {
  /** `source` failed with `err`: the service is degraded until `ok(source)`. */
  fault(source: string, err: unknown): void;
  ok(source: string): void;
}

export type HealthStatus = { status: 'ok' } | { status: 'degraded'; reason: string };

export interface HealthOptions {
  store: Store;
  logger: Logger;
  /** How often the database is asked. [intervalMs=250] */
  intervalMs?: number;
  /** How long one ask may take before the database counts as gone. [timeoutMs=1000] */
  timeoutMs?: number;
}

interface Fault {
  kind: FaultKind;
  reason: string;
  since: number;
}

/** The probe's own source: cleared by the probe only. */
const PROBE = 'database';

/**
 * The service's health: the database is asked every `intervalMs` (a round trip that fails
 * within `timeoutMs`, so a connection that hangs counts as gone within about
 * `intervalMs + timeoutMs`), and components report the faults they meet (a write held on a
 * full disk, a trace file that cannot be appended). Degraded while any fault stands.
 */
export class Health implements FaultSink {
  readonly #opts: Required<HealthOptions>;
  readonly #faults = new Map<string, Fault>();
  #timer: NodeJS.Timeout | undefined;
  #probing = false;

  constructor(opts: HealthOptions) {
    this.#opts = { intervalMs: 250, timeoutMs: 1000, ...opts };
    for (const key of ['intervalMs', 'timeoutMs'] as const) {
      const v = this.#opts[key];
      if (!Number.isFinite(v) || v <= 0) throw new TypeError(`Expected \`${key}\` to be a positive number, got ${String(v)}.`);
    }
  }

  /** Starts asking the database; returns once the first answer (or failure) is in. */
  async start(): Promise<void> {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.probe(), this.#opts.intervalMs);
    this.#timer.unref();
    await this.probe();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Asks the database once. A database that answers also clears what writes reported about the database (not about the disk). */
  async probe(): Promise<void> {
    if (this.#probing) return;
    this.#probing = true;
    const { store, timeoutMs } = this.#opts;
    let timer: NodeJS.Timeout | undefined;
    try {
      const asked = store.ping ? store.ping(timeoutMs) : store.countRunsByStatus().then(() => undefined);
      await Promise.race([
        asked,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(Object.assign(new Error(`the database did not answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
        }),
      ]);
      this.ok(PROBE);
      for (const [source, f] of [...this.#faults]) if (f.kind === 'database') this.ok(source);
    } catch (err) {
      this.fault(PROBE, faultKind(err) === undefined ? Object.assign(new Error('the database check failed'), { cause: err }) : err);
    } finally {
      clearTimeout(timer);
      this.#probing = false;
    }
  }

  fault(source: string, err: unknown): void {
    const kind = faultKind(err) ?? 'database';
    const reason = faultReason(err);
    const was = this.#faults.get(source);
    if (was && was.reason === reason) return;
    this.#faults.set(source, { kind, reason, since: Date.now() });
    if (!was) this.#opts.logger.warn({ err, source, reason }, `degraded: ${reason}`);
  }

  ok(source: string): void {
    const was = this.#faults.get(source);
    if (!was) return;
    this.#faults.delete(source);
    this.#opts.logger.warn({ source, reason: was.reason, downMs: Date.now() - was.since }, `recovered: ${was.reason}`);
  }

  /** Whether the database answers (no fault of the database kind stands). */
  get databaseUp(): boolean {
    for (const f of this.#faults.values()) if (f.kind === 'database') return false;
    return true;
  }

  status(): HealthStatus {
    if (this.#faults.size === 0) return { status: 'ok' };
    const faults = [...this.#faults.values()];
    // The disk first: "disk full" is what an operator can act on.
    const reason = faults.find((f) => f.reason === 'disk full')?.reason ?? faults[0]!.reason;
    return { status: 'degraded', reason };
  }
}

/** `runstate_database_up` and `runstate_trace_lag_events` in `registry`. */
export function registerHealthMetrics(registry: Registry, health: Health, traceLag: () => number): void {
  new Gauge({
    name: 'runstate_database_up',
    help: '1 while the database answers, 0 while it does not',
    registers: [registry],
    collect() {
      this.set(health.databaseUp ? 1 : 0);
    },
  });
  new Gauge({
    name: 'runstate_degraded',
    help: '1 while /healthz answers 503 (database away, disk full), else 0',
    registers: [registry],
    collect() {
      this.set(health.status().status === 'ok' ? 0 : 1);
    },
  });
  new Gauge({
    name: 'runstate_trace_lag_events',
    help: 'Events durable in the log but not yet in the trace files, over all runs',
    registers: [registry],
    collect() {
      this.set(traceLag());
    },
  });
}
