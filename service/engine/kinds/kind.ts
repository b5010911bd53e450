// The one interface behind which each kind of run lives (docs/architecture.md, "The engine"):
// runs the service works itself (internal.ts) and runs an engine outside feeds (external.ts).
// The engine front asks the kind; nothing outside kinds/ tells the kinds apart.
import type { Command } from '../../events.js';
import type { RunRecord } from '../../store/store.js';
import type { ProcessingView, RunView } from '../view.js';

export interface StartRunRequest {
  accountId: string;
  siteId: string;
  pipeline: string;
  /** [default: 'manual'] */
  trigger?: string;
  options?: unknown;
  /** Runs fed from outside only: the name of the engine's machine (docs/ingest.md). */
  machineName?: string;
}

export interface CommandRequest {
  /** Who sent it: the token's name. */
  by: string;
  reason?: string | undefined;
}

export interface CommandResult {
  /** False when the command changed nothing (pausing a paused run). */
  accepted: boolean;
  run: RunView;
}

/** A run's view as of its last durable write, with that write's seq. */
export interface DurableView {
  seq: number;
  run: RunView & { processing: ProcessingView | null };
}

/** What a kind makes of a start request, checked, before the run exists. */
export interface PreparedStart {
  machineName: string | null;
  /** The options as the run keeps them (for a pipeline with a schema, with its defaults filled in). */
  options: Record<string, unknown>;
  /** Starts the run just created and answers its first view. */
  start(record: RunRecord, trigger: string): Promise<RunView>;
}

export interface RunKind {
  /** Whether runs of this pipeline are of this kind. */
  serves(pipeline: string): boolean;
  /** An instance of this service works the run and so leases it; false for runs fed from outside. */
  readonly hosted: boolean;
  /** Checks what is the kind's to check in a start request; a `RunstateError` says what is wrong. */
  prepare(req: StartRunRequest): PreparedStart;
  /** The run as `GET /runs/:id` shows it. */
  view(record: RunRecord): RunView;
  /** The processing card (`GET /current_processing/`); undefined when there is nothing to show. */
  processing(record: RunRecord): ProcessingView | undefined;
  durableView(record: RunRecord): Promise<DurableView>;
  /** Applies a command by the rules of commands.ts; throws `COMMAND_NOT_ALLOWED` when they refuse. */
  command(record: RunRecord, command: Command, req: CommandRequest): Promise<CommandResult>;
}
