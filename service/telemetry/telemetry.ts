// What the engine tells about a run for tracing, and nothing else: RunHost calls these hooks
// when it has a `RunTelemetry`, and has none (a `?.` and no more) when OpenTelemetry is off.
import type { RunRecord } from '../store/store.js';

/** Ends an item attempt's span. */
export interface AttemptSpan {
  end(outcome: 'done' | 'error', error?: string): void;
}

/** The spans of one run while one process hosts it. */
export interface RunSpans {
  /** The stage is at work (loading or running); starts its span unless one is open. */
  stageActive(stage: number, name: string): void;
  /** The stage reached `state` (completed, empty, failed, cancelled): its span ends. */
  stageEnded(stage: number, state: string, error: string | null): void;
  /** One attempt of one item, a child of its stage's span. */
  attempt(stage: number, itemId: string | number, attempt: number): AttemptSpan;
  /** The run machine is at work again (a retry after failed): a new run span unless one is open. */
  runActive(): void;
  /** The run reached `state` (completed, failed, cancelled): its span and any stage span still open end. */
  runEnded(state: string, error: string | null): void;
  /** The process stops hosting the run (shutdown, lease lost): open spans end as `interrupted`. */
  stop(): void;
}

export interface RunTelemetry {
  /** The run is put in memory: new (`resumed` false) or taken back up after a restart or takeover. */
  runHosted(record: RunRecord, resumed: boolean): RunSpans;
  /** Exports what is buffered and stops. */
  shutdown(): Promise<void>;
}
