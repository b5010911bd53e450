// The run page's approval gate: which stage waits for whom, and what the gate's buttons may do,
// read from the server's view of the run alone (docs/api.md, "Approval"). Pure.
import type { RunView } from './run-model.js';

export interface ApprovalGate {
  /** 1-based, as the API counts stages. */
  stage: number;
  name: string;
  /** The stage's key (`stage_type`). */
  key: string;
  /** Items the stage will process, when it has loaded them already (it usually loads on approval). */
  totalItems: number | null;
  canApprove: boolean;
  canReject: boolean;
}

/** The gate the run waits at, or null when it waits at none. */
export function approvalGate(run: RunView): ApprovalGate | null {
  if (run.status !== 'awaiting_approval' || run.current_stage === null) return null;
  const stage = run.stages.find((s) => s.number === run.current_stage);
  if (!stage) return null;
  return {
    stage: stage.number,
    name: stage.name,
    key: stage.type,
    totalItems: stage.total_items,
    canApprove: run.allowed_commands.includes('approve'),
    canReject: run.allowed_commands.includes('reject'),
  };
}

/** The `reason` a command sends: what was typed, trimmed; none when nothing was. */
export function reasonOf(typed: string): string | undefined {
  const r = typed.trim();
  return r ? r : undefined;
}
