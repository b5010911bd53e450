import { pino, type Logger } from 'pino';
import { prettyFactory } from 'pino-pretty';
import { formatElapsed } from '../format.js';
import type { StoredEvent } from '../store/store.js';

const prettify = prettyFactory({
  colorize: false,
  translateTime: 'UTC:yyyy-mm-dd HH:MM:ss.l',
  ignore: 'pid,hostname,run_id,seq,stage',
  singleLine: true,
});

interface ItemRef {
  id?: unknown;
  title?: unknown;
}

/** Lines for people, from the same events as the JSONL trace. pino structures them, pino-pretty prints them. */
export class HumanLog {
  #lines: string[] = [];
  readonly #logger: Logger;

  constructor() {
    // pino writes synchronously into a buffer; the caller appends that buffer to the right file.
    this.#logger = pino({ base: null, timestamp: false, level: 'info' }, { write: (line: string) => void this.#lines.push(line) });
  }

  /** The run log's text and each stage log's text for these events. */
  format(events: readonly StoredEvent[]): { run: string; stages: Map<number, string> } {
    const run: string[] = [];
    const stages = new Map<number, string[]>();
    for (const e of events) {
      const line = this.#line(e);
      if (line === undefined) continue;
      run.push(line);
      const stage = stageOf(e);
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
    return this.#emit(s.status === 'completed' ? 'info' : 'warn', s.time, msg) ?? '';
  }

  #emit(level: 'info' | 'warn' | 'error', time: string, msg: string): string | undefined {
    // Titles and errors come from pipelines: one event stays one line.
    // eslint-disable-next-line no-control-regex -- stripping control characters is the point
    this.#logger[level]({ time }, msg.replace(/[\u0000-\u001f\u007f]+/g, ' '));
    const raw = this.#lines.shift();
    return raw === undefined ? undefined : prettify(raw);
  }

  #line(e: StoredEvent): string | undefined {
    const item = (e.item ?? {}) as ItemRef;
    const itemText = `#${String(item.id)} "${String(item.title)}"`;
    switch (e.event) {
      case 'run_started':
        return this.#emit('info', e.timestamp, `Run ${e.run_id} started (trigger: ${String(e.trigger)})`);
      case 'state_change': {
        const p = (e.payload ?? {}) as Record<string, unknown>;
        const who = e.machine_name === 'run' ? 'Run' : String(e.machine_name).replace('stage_', 'Stage ');
        const level = p.to_state === 'failed' ? 'error' : 'info';
        return this.#emit(level, e.timestamp, `${who}: ${String(p.from_state)} → ${String(p.to_state)} (${String(p.event_trigger)})`);
      }
      case 'stage_start':
        return this.#emit('info', e.timestamp, `Stage ${String(e.stage)} "${String(e.stage_name)}" started with ${String(e.total_items)} items`);
      case 'stage_item_processed':
        return this.#emit('info', e.timestamp, `Stage ${String(e.stage)}: ${String(e.processed)}/${String(e.total)} processed ${itemText}`);
      case 'stage_item_failed':
        return this.#emit('warn', e.timestamp, `Stage ${String(e.stage)}: ${itemText} failed after ${String(e.attempts)} attempts: ${String(e.error)}`);
      case 'stage_complete':
        return this.#emit(
          'info',
          e.timestamp,
          `Stage ${String(e.stage)} complete: ${String(e.processed_count)} processed, ${String(e.failed_count)} failed in ${String(e.time_elapsed)}, ${String(e.credits_used)} credits`,
        );
      case 'activity_log':
        return this.#emit('info', e.timestamp, String(e.message));
      case 'command': {
        const reason = e.reason ? ` (reason: ${String(e.reason)})` : '';
        return this.#emit('info', e.timestamp, `Command ${String(e.command)} by ${String(e.by)}${reason}`);
      }
      default:
        return this.#emit('info', e.timestamp, `${e.event}`);
    }
  }
}

function stageOf(e: StoredEvent): number | undefined {
  if (typeof e.stage === 'number') return e.stage;
  if (e.event === 'state_change' && typeof e.machine_name === 'string' && e.machine_name.startsWith('stage_')) {
    const n = Number(e.machine_name.slice('stage_'.length));
    return Number.isInteger(n) ? n : undefined;
  }
  return undefined;
}
