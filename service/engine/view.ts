// Pure functions from a run's persisted snapshot to what the API and the dashboard show.
// The same code reads a live actor (its snapshot of this instant) and a finished run (the
// snapshot in the store), so a run looks the same before and after it leaves memory.

import { stageActorId, type StageContext, type RunContext } from '../../machines/index.js';
import type { ItemRef } from '../events.js';
import type { Item, RunRecord } from '../store/store.js';
import { allowedCommands, type Command } from './commands.js';
import { failedToRetry } from './retry-failed.js';

export interface StageView {
  number: number;
  name: string;
  type: string;
  state: string;
  /** null until the stage has loaded its items. */
  total_items: number | null;
  /** Items finished: succeeded, or failed after their last attempt. */
  processed_items: number;
  failed_items: number;
  credits_used: number;
  error: string | null;
}

export interface RunView {
  run_id: string;
  account_id: string;
  site_id: string;
  pipeline: string;
  machine_name: string | null;
  trigger: string;
  /** The run machine's state. */
  status: string;
  /** The run machine's full state value (a string for this machine; an object for nested ones). */
  state: unknown;
  current_stage: number | null;
  error: string | null;
  options: Record<string, unknown>;
  last_seq: number;
  created_at: string;
  updated_at: string;
  closed_at: string | null;
  stages: StageView[];
  /** Items recorded as failed after their last attempt, over every stage (the sum of the stages' `failed_items`). */
  failed_items: number;
  /** The commands that would change something now (engine/commands.ts): what a screen offers. */
  allowed_commands: Command[];
}

export type { ItemRef };

/** The payload of `GET /current_processing/` (docs/api.md). */
export interface ProcessingView {
  stage_number: number;
  stage_name: string;
  stage_type: string;
  total_items: number;
  processed_items: number;
  percentage: number;
  currently_processing: ItemRef[];
  up_next: ItemRef[];
  remaining_count: number;
  status: string;
  stage_state: string;
  /** Only while some of the stage's items wait for a limit (service/limits/): which key, how many. */
  limit_waiting?: { key: string; items: number };
}

export interface StageMeta {
  key: string;
  name: string;
}

interface PersistedActor<C> {
  value?: unknown;
  context?: C;
  children?: Record<string, { snapshot?: PersistedActor<unknown> } | undefined>;
}

export const UP_NEXT_LIMIT = 5;

export function percentage(processed: number, total: number): number {
  if (total <= 0) return 100;
  return Math.min(100, Math.floor((100 * processed) / total));
}

function stageContext(run: PersistedActor<RunContext> | null, stage: number): StageContext | undefined {
  return run?.children?.[stageActorId(stage)]?.snapshot?.context as StageContext | undefined;
}

function stageState(run: PersistedActor<RunContext> | null, stage: number): string {
  const value = run?.children?.[stageActorId(stage)]?.snapshot?.value;
  return typeof value === 'string' ? value : 'pending';
}

/** The fields of a run view that come straight from its record. */
export function recordFields(record: RunRecord, lastSeq = record.lastSeq) {
  return {
    run_id: record.runId,
    account_id: record.accountId,
    site_id: record.siteId,
    pipeline: record.pipeline,
    machine_name: record.machineName,
    trigger: record.trigger,
    options: record.options,
    last_seq: lastSeq,
    created_at: record.createdAt,
    updated_at: record.updatedAt,
    closed_at: record.closedAt,
  };
}

export function describeRun(record: RunRecord, stages: readonly StageMeta[], lastSeq = record.lastSeq): RunView {
  const snap = record.snapshot as PersistedActor<RunContext> | null;
  const status = typeof snap?.value === 'string' ? snap.value : record.status;
  const stageViews = describeStages(snap, stages);
  return {
    ...recordFields(record, lastSeq),
    status,
    state: snap?.value ?? record.status,
    current_stage: snap?.context ? snap.context.current : null,
    error: snap?.context?.error ?? record.error,
    allowed_commands: allowedCommands({
      status,
      closed: record.closedAt !== null,
      pauseRequested: snap?.context?.pauseRequested ?? false,
      failedToRetry: failedToRetry(snap),
    }),
    stages: stageViews,
    failed_items: stageViews.reduce((n, s) => n + s.failed_items, 0),
  };
}

function describeStages(snap: PersistedActor<RunContext> | null, stages: readonly StageMeta[]): StageView[] {
  return stages.map((meta, i) => {
    const number = i + 1;
    const ctx = stageContext(snap, number);
    return {
      number,
      name: meta.name,
      type: meta.key,
      state: stageState(snap, number),
      total_items: ctx?.total ?? null,
      processed_items: ctx?.processed ?? 0,
      failed_items: ctx?.failed ?? 0,
      credits_used: round(ctx?.creditsUsed ?? 0),
      error: ctx?.error ?? null,
    };
  });
}

/**
 * What the processing card shows for the run's current stage. `itemsOf` answers with the
 * loaded items of a stage, or undefined when they are not at hand (the card then lists none).
 */
export function describeProcessing(
  record: RunRecord,
  stages: readonly StageMeta[],
  itemsOf: (stage: number) => readonly Item[] | undefined,
): ProcessingView | undefined {
  const snap = record.snapshot as PersistedActor<RunContext> | null;
  const status = typeof snap?.value === 'string' ? snap.value : record.status;
  const number = snap?.context?.current ?? 1;
  const meta = stages[number - 1];
  if (!meta) return undefined;
  const ctx = stageContext(snap, number);
  const total = ctx?.total ?? 0;
  const processed = ctx?.processed ?? 0;
  const items = itemsOf(number) ?? [];
  const refs = (indexes: number[]): ItemRef[] =>
    indexes.flatMap((i) => {
      const item = items[i];
      return item ? [{ id: item.id, title: item.title }] : [];
    });
  const active = (ctx?.active ?? []).map((a) => a.index);
  // Items waiting out a retry backoff go first when a slot frees up.
  const next = [...(ctx?.waiting ?? []), ...(ctx?.retrying ?? []).slice(0, UP_NEXT_LIMIT)].map((w) => w.index);
  const cursor = ctx?.cursor ?? 0;
  for (let i = cursor; i < total && next.length < UP_NEXT_LIMIT; i++) next.push(i);
  const state = stageState(snap, number);
  return {
    stage_number: number,
    stage_name: meta.name,
    stage_type: meta.key,
    total_items: total,
    processed_items: processed,
    percentage: state === 'empty' ? 100 : ctx?.total == null ? 0 : percentage(processed, total),
    currently_processing: refs(active),
    up_next: refs(next.slice(0, UP_NEXT_LIMIT)),
    // In-flight items are not finished, so they count as remaining (docs/api.md: 7 of 10 processed, 3 remaining).
    remaining_count: Math.max(0, total - processed),
    status,
    stage_state: state,
  };
}

function round(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}
