// Small run views for tests of the dashboard's pure parts, shaped as the service's RunView.
import type { ProcessingView, RunView } from '../../service/engine/view.js';
import type { StoredEvent } from '../../service/events.js';

export function runView(over: Partial<RunView> = {}): RunView {
  return {
    run_id: 'run_20250101_000000_manual',
    account_id: 'a',
    site_id: 'site-5',
    pipeline: 'content',
    machine_name: null,
    trigger: 'manual',
    status: 'running',
    state: 'running',
    current_stage: 1,
    error: null,
    options: {},
    last_seq: 1,
    created_at: '2025-01-01T00:00:00.000Z',
    updated_at: '2025-01-01T00:00:00.000Z',
    closed_at: null,
    allowed_commands: ['pause', 'cancel'],
    stages: [
      { number: 1, name: 'Stage 1', type: 's1', state: 'running', total_items: 4, processed_items: 1, failed_items: 0, credits_used: 0, error: null },
      { number: 2, name: 'Stage 2', type: 's2', state: 'pending', total_items: null, processed_items: 0, failed_items: 0, credits_used: 0, error: null },
    ],
    ...over,
  };
}

export function processingView(over: Partial<ProcessingView> = {}): ProcessingView {
  return {
    stage_number: 1,
    stage_name: 'Stage 1',
    stage_type: 's1',
    total_items: 4,
    processed_items: 1,
    percentage: 25,
    currently_processing: [{ id: 2, title: 'item 2' }],
    up_next: [{ id: 3, title: 'item 3' }, { id: 4, title: 'item 4' }],
    remaining_count: 3,
    status: 'running',
    stage_state: 'running',
    ...over,
  };
}

export function processed(seq: number, processedCount: number, id: number, at = `2025-01-01T00:00:${String(seq).padStart(2, '0')}.000Z`): StoredEvent {
  return { event: 'stage_item_processed', run_id: 'run_20250101_000000_manual', seq, stage: 1, processed: processedCount, total: 4, item: { id, title: `item ${id}` }, timestamp: at };
}

export function activity(seq: number, message = 'hello'): StoredEvent {
  return { event: 'activity_log', run_id: 'run_20250101_000000_manual', seq, message, timestamp: '2025-01-01T00:00:00.000Z' };
}
