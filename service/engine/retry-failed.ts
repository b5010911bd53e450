// What `retry_failed` retries (docs/api.md, "Retry failed items"): the items recorded as failed
// in the stages that completed, read from the ledger, as the run machine's event. Pure: the
// engine reads the ledger and the stages' items, this decides.
import type { RunContext, RunEvent, StageContext, StageRetry } from '../../machines/index.js';
import type { Item, LedgerEntry } from '../store/store.js';
import { stageContextOf } from './items.js';

interface PersistedRun {
  value?: unknown;
  context?: Partial<RunContext>;
  children?: Record<string, { snapshot?: { value?: unknown; status?: string; context?: StageContext } } | undefined>;
}

/**
 * The stages whose failed items `retry_failed` would retry now: those `completed` with failed
 * items (a failed stage is `retry`'s to resume), none while a retry is under way.
 */
export function retryableStages(snapshot: unknown): number[] {
  const run = snapshot as PersistedRun | null;
  if (!run?.children || (run.context?.retry ?? null) !== null) return [];
  const stages: number[] = [];
  for (let n = 1; ; n++) {
    const child = run.children[`stage.${n}`];
    if (!child) return stages;
    // A stage persisted when `completed` was final (status `done`) takes no more events.
    const open = child.snapshot?.value === 'completed' && child.snapshot.status !== 'done';
    if (open && (stageContextOf(snapshot, n)?.failed ?? 0) > 0) stages.push(n);
  }
}

/** How many items `retry_failed` would give new attempts now (0: it is refused). */
export function failedToRetry(snapshot: unknown): number {
  return retryableStages(snapshot).reduce((n, stage) => n + (stageContextOf(snapshot, stage)?.failed ?? 0), 0);
}

/**
 * The run machine's `retry_failed_requested`: per retryable stage, its items recorded as
 * failed, by position in the stage's items, with the attempts they made.
 */
export function retryFailedEvent(
  stages: readonly number[],
  ledger: readonly LedgerEntry[],
  itemsOf: (stage: number) => readonly Item[] | undefined,
): Extract<RunEvent, { type: 'retry_failed_requested' }> {
  const out: StageRetry[] = [];
  for (const stage of stages) {
    const failed = new Map<string, number>();
    for (const l of ledger) if (l.stage === stage && l.status === 'failed') failed.set(String(l.itemId), l.attempts);
    const items = (itemsOf(stage) ?? []).flatMap((item, index) => {
      const attempt = failed.get(String(item.id));
      return attempt === undefined ? [] : [{ index, attempt }];
    });
    if (items.length > 0) out.push({ stage, items });
  }
  return { type: 'retry_failed_requested', stages: out };
}
