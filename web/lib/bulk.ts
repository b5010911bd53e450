// The runs list's bulk commands: which runs are selected, and what `POST /runs/bulk/:command`
// answered for each, said in a line (docs/api.md, "Bulk commands"). Pure.
import type { BulkResult } from '../../service/engine/commands.js';
import type { RunView } from './run-model.js';

export type { BulkResult };

export const BULK_COMMANDS = ['pause', 'resume', 'cancel'] as const;
export type BulkCommand = (typeof BULK_COMMANDS)[number];

const DONE: Record<BulkCommand, string> = { pause: 'paused', resume: 'resumed', cancel: 'cancelled' };
const ALREADY: Record<BulkCommand, string> = { pause: 'already paused', resume: 'already running', cancel: 'already cancelled' };

/** The selection with `ids` all added (when not all of them were in it) or all taken out. */
export function toggleAll(selected: ReadonlySet<string>, ids: readonly string[]): Set<string> {
  const next = new Set(selected);
  const all = ids.length > 0 && ids.every((id) => next.has(id));
  for (const id of ids) {
    if (all) next.delete(id);
    else next.add(id);
  }
  return next;
}

export function toggleOne(selected: ReadonlySet<string>, id: string): Set<string> {
  const next = new Set(selected);
  if (!next.delete(id)) next.add(id);
  return next;
}

/** How many of `ids` are selected: the select-all box is checked, mixed or clear. */
export function selectionOf(selected: ReadonlySet<string>, ids: readonly string[]): 'all' | 'some' | 'none' {
  const n = ids.filter((id) => selected.has(id)).length;
  return n === 0 ? 'none' : n === ids.length ? 'all' : 'some';
}

/** The selected runs the list still knows (a run deleted by retention leaves the selection). */
export function keepKnown(selected: ReadonlySet<string>, runs: ReadonlyMap<string, unknown>): Set<string> {
  return new Set([...selected].filter((id) => runs.has(id)));
}

/** What one run's answer means, in words: `paused`, `not allowed: completed`, `refused: FORBIDDEN`. */
export function outcomeOf(command: BulkCommand, r: BulkResult, before: RunView | undefined): string {
  if ('accepted' in r) return r.accepted ? DONE[command] : ALREADY[command];
  if (r.code === 'COMMAND_NOT_ALLOWED') return `not allowed: ${before?.status ?? 'its state'}`;
  return `refused: ${r.code}`;
}

/**
 * The answers in a line, outcomes counted in the order they first appear:
 * `2 paused, 1 not allowed: completed`. `before` is the runs as the list showed them when the
 * command was sent (a refusal names the state the run was in).
 */
export function bulkSummary(command: BulkCommand, results: readonly BulkResult[], before: ReadonlyMap<string, RunView>): string {
  if (results.length === 0) return 'No run was commanded.';
  const counts = new Map<string, number>();
  for (const r of results) {
    const o = outcomeOf(command, r, before.get(r.run_id));
    counts.set(o, (counts.get(o) ?? 0) + 1);
  }
  return [...counts].map(([o, n]) => `${n} ${o}`).join(', ');
}
