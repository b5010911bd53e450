// The human-readable run and stage logs of docs/operations.md, from the same events as the JSONL trace.

import { formatElapsed } from '../format.js';
import { RUN_MACHINE, stageOf, stageOfEvent, type ItemRef, type StoredEvent } from '../events.js';

type Level = 'info' | 'warn' | 'error';
const LEVELS: Record<Level, string> = { info: 'INFO', warn: 'WARN', error: 'ERROR' };

/**
 * Lines for people, from the same events as the JSONL trace: `[2025-12-04 19:03:32.123] INFO: …`
 * (UTC), the shape pino-pretty gives a pino line. Written here directly, because going through
 * pino and pino-pretty (a JSON line made, parsed and re-formatted) cost every item about 5% of the
 * service's time (docs/benchmarks.md, "The service as users run it").
 */
export class HumanLog {
  /** The run log's text and each stage log's text for these events. */
  format(events: readonly StoredEvent[]): { run: string; stages: Map<number, string> } {
    const run: string[] = [];
    const stages = new Map<number, string[]>();
    for (const e of events) {
      const line = this.#line(e);
      if (line === undefined) continue;
      run.push(line);
      const stage = stageOfEvent(e);
      if (stage !== undefined) {
        const lines = stages.get(stage) ?? [];
        lines.push(line);
        stages.set(stage, lines);
      }
    }
    return { run: run.join(''), stages: new Map([...stages].map(([k, v]) => [k, v.join('')])) };
  }

  summary(s: {
    time: string;
    runId: string;
    accountId: string;
    siteId: string;
    pipeline: string;
    status: string;
    processed: number;
    failed: number;
    events: number;
    durationMs: number;
  }): string {
    const msg = `${s.runId} ${s.status}: ${s.pipeline} for ${s.accountId}/${s.siteId}, ${s.processed} items processed, ${s.failed} failed, ${s.events} events in ${formatElapsed(s.durationMs)}`;
    return this.#emit(s.status === 'completed' ? 'info' : 'warn', s.time, msg);
  }

  #emit(level: Level, time: string, msg: string): string {
    // Titles and errors come from pipelines: one event stays one line.
    // eslint-disable-next-line no-control-regex -- stripping control characters is the point
    return `[${clock(time)}] ${LEVELS[level]}: ${msg.replace(/[\u0000-\u001f\u007f]+/g, ' ')}\n`;
  }

  #line(e: StoredEvent): string | undefined {
    const itemText = (item: ItemRef) => `#${String(item.id)} "${item.title}"`;
    switch (e.event) {
      case 'run_started':
        return this.#emit('info', e.timestamp, `Run ${e.run_id} started (trigger: ${e.trigger})`);
      case 'state_change': {
        const p = e.payload;
        const stage = stageOf(e.machine_name);
        const who = e.machine_name === RUN_MACHINE ? 'Run' : stage !== undefined ? `Stage ${stage}` : e.machine_name;
        const level = p.to_state === 'failed' ? 'error' : 'info';
        return this.#emit(level, e.timestamp, `${who}: ${String(p.from_state)} → ${p.to_state} (${p.event_trigger})`);
      }
      case 'stage_start':
        return this.#emit('info', e.timestamp, `Stage ${e.stage} "${e.stage_name}" started with ${e.total_items} items`);
      case 'stage_item_processed':
        return this.#emit('info', e.timestamp, `Stage ${e.stage}: ${e.processed}/${e.total} processed ${itemText(e.item)}`);
      case 'stage_item_failed':
        return this.#emit('warn', e.timestamp, `Stage ${e.stage}: ${itemText(e.item)} failed after ${e.attempts} attempts: ${String(e.error)}`);
      case 'stage_complete':
        return this.#emit(
          'info',
          e.timestamp,
          `Stage ${e.stage} complete: ${e.processed_count} processed, ${e.failed_count} failed in ${e.time_elapsed}, ${e.credits_used} credits`,
        );
      case 'activity_log':
        return this.#emit('info', e.timestamp, e.message);
      case 'command': {
        const reason = e.reason ? ` (reason: ${e.reason})` : '';
        return this.#emit('info', e.timestamp, `Command ${e.command} by ${e.by}${reason}`);
      }
    }
  }
}

/** The last time formatted, and how: a batch's events mostly share their millisecond. */
let lastClock = { time: '', shown: '' };

/** `2025-12-04 19:03:32.123` (UTC) for an ISO 8601 time; a time that does not parse is shown as given. */
function clock(time: string): string {
  if (time !== lastClock.time) lastClock = { time, shown: formatClock(time) };
  return lastClock.shown;
}

function formatClock(time: string): string {
  const ms = Date.parse(time);
  if (Number.isNaN(ms)) return time;
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}`;
}
