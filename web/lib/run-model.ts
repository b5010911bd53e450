// What the page knows of one run, and how each event moves it on. Pure: the same function
// folds a replay and live events, so a page that reconnects ends where one that never left is.
import type { ProcessingView, RunView } from '../../service/engine/view.js';
import type { StoredEvent } from '../../service/store/store.js';

export type { ProcessingView, RunView, StoredEvent };

export interface RunModel {
  run: RunView;
  processing: ProcessingView | null;
  /** The last seq folded in. */
  seq: number;
  /** Every event seen, in seq order (the log panel virtualises it). */
  events: StoredEvent[];
  /** When each item currently in flight was first seen in flight (epoch ms), by item id. */
  inFlightSince: Record<string, number>;
}

export function modelFrom(run: RunView, processing: ProcessingView | null, seq: number, events: StoredEvent[] = []): RunModel {
  return { run, processing, seq, events, inFlightSince: {} };
}

const stageNumber = (name: unknown): number | null => {
  const m = typeof name === 'string' ? /^stage_(\d+)$/.exec(name) : null;
  return m ? Number(m[1]) : null;
};

/** Folds events (in seq order; ones already folded are skipped) into a new model. */
export function applyEvents(model: RunModel, events: readonly StoredEvent[]): RunModel {
  const fresh = events.filter((e) => e.seq > model.seq);
  if (fresh.length === 0) return model;
  const run: RunView = { ...model.run, stages: model.run.stages.map((s) => ({ ...s })) };
  let processing = model.processing ? { ...model.processing } : null;
  for (const e of fresh) {
    const payload: { to_state?: string } = e.event === 'state_change' ? e.payload : {};
    if (e.event === 'state_change' && e.machine_name === 'run' && payload.to_state) {
      run.status = payload.to_state;
      run.state = payload.to_state;
    } else if (e.event === 'state_change') {
      const n = stageNumber(e.machine_name);
      const stage = n === null ? undefined : run.stages[n - 1];
      if (n !== null && stage && payload.to_state) {
        stage.state = payload.to_state;
        if (payload.to_state === 'loading') {
          run.current_stage = n;
          processing = {
            stage_number: n,
            stage_name: stage.name,
            stage_type: stage.type,
            total_items: 0,
            processed_items: 0,
            percentage: 0,
            currently_processing: [],
            up_next: [],
            remaining_count: 0,
            status: run.status,
            stage_state: 'loading',
          };
        } else if (processing && processing.stage_number === n) {
          processing.stage_state = payload.to_state;
          if (payload.to_state === 'empty') processing.percentage = 100;
          if (['paused', 'completed', 'failed', 'cancelled'].includes(payload.to_state)) processing.currently_processing = [];
        }
      }
    } else if (e.event === 'stage_start') {
      const stage = run.stages[(e.stage as number) - 1];
      if (stage) stage.total_items = e.total_items as number;
      if (processing && processing.stage_number === e.stage) {
        processing.total_items = e.total_items as number;
        processing.remaining_count = e.total_items as number;
      }
    } else if (e.event === 'stage_item_processed' || e.event === 'stage_item_failed') {
      const stage = run.stages[(e.stage as number) - 1];
      const processed = e.processed as number;
      const total = e.total as number;
      if (stage) {
        stage.processed_items = Math.max(stage.processed_items, processed);
        if (e.event === 'stage_item_failed') stage.failed_items += 1;
      }
      if (processing && processing.stage_number === e.stage && processed >= processing.processed_items) {
        const item = e.item as { id: string | number } | undefined;
        processing.processed_items = processed;
        processing.total_items = total;
        processing.percentage = total > 0 ? Math.min(100, Math.floor((100 * processed) / total)) : 100;
        processing.currently_processing = processing.currently_processing.filter((i) => i.id !== item?.id);
        processing.remaining_count = Math.max(0, total - processed - processing.currently_processing.length);
      }
    } else if (e.event === 'stage_complete') {
      const stage = run.stages[(e.stage as number) - 1];
      if (stage) stage.credits_used = e.credits_used as number;
    } else if (e.event === 'command' && e.command === 'close') {
      run.closed_at = e.timestamp;
    }
  }
  if (processing) processing.status = run.status;
  const last = fresh[fresh.length - 1]!;
  run.last_seq = last.seq;
  return { ...model, run, processing, seq: last.seq, events: model.events.concat(fresh) };
}

/** Takes the server's current_processing answer (items in flight, up next) into the model. */
export function withProcessing(model: RunModel, processing: ProcessingView | null, now: number): RunModel {
  if (!processing) return model;
  const since: Record<string, number> = {};
  for (const item of processing.currently_processing) since[String(item.id)] = model.inFlightSince[String(item.id)] ?? now;
  // Counts from events are at least as new as a response that was in flight while they came.
  const current = model.processing;
  const sameStage = current && current.stage_number === processing.stage_number;
  const merged = sameStage && current.processed_items > processing.processed_items ? { ...processing, processed_items: current.processed_items, percentage: current.percentage } : processing;
  return { ...model, processing: merged, inFlightSince: since };
}

/** Which commands the run's state allows (the same rules as the API's). */
export function allowedCommands(run: RunView, pauseUnderWay = false): Set<string> {
  const s = run.status;
  const allowed = new Set<string>();
  if (s === 'running' && !pauseUnderWay) allowed.add('pause');
  if (s === 'paused') allowed.add('resume');
  if (s === 'idle' || s === 'running' || s === 'paused' || s === 'failed') allowed.add('cancel');
  if (s === 'failed') allowed.add('retry');
  if ((s === 'completed' || s === 'cancelled') && run.closed_at === null) allowed.add('close');
  return allowed;
}
