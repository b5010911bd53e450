// Events from engines outside the service (docs/ingest.md): their shape, checked line by line.
import { RUN_STATES } from '../../machines/index.js';
import { RunstateError } from '../errors.js';
import type { IngestEvent } from '../engine/kinds/external.js';
import { isRunId } from '../ids.js';

export type { IngestEvent };

const NAME_MAX = 100;

function str(v: unknown, max: number): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= max;
}

/** Checks one event's shape; a `RunstateError('BAD_REQUEST')` says what is wrong. */
export function parseIngestEvent(raw: unknown): IngestEvent {
  const bad = (message: string) => new RunstateError('BAD_REQUEST', message);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('Expected an event object.');
  const e = raw as Record<string, unknown>;
  if (!isRunId(e.run_id)) throw bad('Expected `run_id` to be a run id (run_<yyyymmdd>_<hhmmss>_<trigger>).');
  if (e.event_id !== undefined && e.event_id !== null && !str(e.event_id, 200)) throw bad('Expected `event_id` to be a string of 1–200 characters.');
  if (!str(e.machine_name, NAME_MAX)) throw bad(`Expected \`machine_name\` to be a string of 1–${NAME_MAX} characters.`);
  const p = e.payload;
  if (typeof p !== 'object' || p === null || Array.isArray(p)) throw bad('Expected `payload` to be an object.');
  const payload = p as Record<string, unknown>;
  switch (e.event_type) {
    case 'state_change': {
      if (!str(payload.to_state, NAME_MAX)) throw bad('Expected `payload.to_state` to be a state name.');
      if (payload.from_state !== undefined && payload.from_state !== null && !str(payload.from_state, NAME_MAX)) throw bad('Expected `payload.from_state` to be a state name.');
      if (payload.event_trigger !== undefined && !str(payload.event_trigger, NAME_MAX)) throw bad('Expected `payload.event_trigger` to be a string.');
      if (payload.timestamp !== undefined && (typeof payload.timestamp !== 'number' || !Number.isFinite(payload.timestamp))) {
        throw bad('Expected `payload.timestamp` to be seconds since the epoch.');
      }
      if (e.machine_name === 'run' && !(RUN_STATES as readonly string[]).includes(payload.to_state)) {
        throw bad(`The \`run\` machine's states are ${RUN_STATES.join(', ')}.`);
      }
      break;
    }
    case 'activity_log':
      if (typeof payload.message !== 'string' || payload.message.length > 4000) throw bad('Expected `payload.message` to be a string of at most 4,000 characters.');
      break;
    case 'item_processed': {
      const { processed, total, item } = payload;
      if (!Number.isSafeInteger(processed) || (processed as number) < 0) throw bad('Expected `payload.processed` to be a whole number ≥ 0.');
      if (!Number.isSafeInteger(total) || (total as number) < (processed as number)) throw bad('Expected `payload.total` to be a whole number ≥ `processed`.');
      const it = item as Record<string, unknown> | null | undefined;
      if (!it || typeof it !== 'object' || (typeof it.id !== 'string' && typeof it.id !== 'number') || typeof it.title !== 'string') {
        throw bad('Expected `payload.item` to be `{id, title}`.');
      }
      break;
    }
    default:
      throw bad('Expected `event_type` to be state_change, activity_log or item_processed.');
  }
  return {
    run_id: e.run_id,
    event_id: (e.event_id as string | undefined) ?? null,
    machine_name: e.machine_name,
    event_type: e.event_type,
    payload,
  };
}
