// What clients may send the hub (docs/protocol.md), parsed into typed messages.
import { RunstateError } from '../errors.js';
import { type RunTopic, type Topic, topics } from './topics.js';

/** `events`: every event in order (the log). `view`: the run's newest server-side view (screens). */
export type Mode = 'events' | 'view';

export const VIEW_HZ = { default: 10, max: 60 } as const;

export type ClientMessage =
  | { type: 'subscribe'; mode: 'events'; topic: Topic; afterSeq: number | undefined }
  | { type: 'subscribe'; mode: 'view'; topic: RunTopic; maxHz: number }
  /** `mode` absent: every subscription on the topic. */
  | { type: 'unsubscribe'; topic: Topic; mode: Mode | undefined };

function parseMode(raw: unknown): Mode | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (raw === 'events' || raw === 'view') return raw;
  throw new RunstateError('BAD_REQUEST', `Unknown mode ${JSON.stringify(raw)}: expected "events" or "view".`);
}

/** Parses one text frame; a `RunstateError` says what is wrong with it. */
export function parseClientMessage(text: string): ClientMessage {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    throw new RunstateError('BAD_REQUEST', 'The message is not valid JSON.');
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw new RunstateError('BAD_REQUEST', 'Expected a JSON object with a `type`.');
  const m = msg as Record<string, unknown>;
  if (m.type === 'subscribe') {
    const topic = topics.parse(m.topic);
    const mode = parseMode(m.mode) ?? 'events';
    const after = m.after_seq ?? undefined;
    const hz = m.max_hz ?? undefined;
    if (mode === 'view') {
      if (topic.kind !== 'run') throw new RunstateError('BAD_REQUEST', 'View mode applies to run topics only.');
      if (after !== undefined) throw new RunstateError('BAD_REQUEST', '`after_seq` applies to the events mode only: a view is always the newest.');
      if (hz !== undefined && (typeof hz !== 'number' || !Number.isFinite(hz) || hz <= 0 || hz > VIEW_HZ.max)) {
        throw new RunstateError('BAD_REQUEST', `Expected \`max_hz\` to be a number above 0 and at most ${VIEW_HZ.max}.`);
      }
      return { type: 'subscribe', mode, topic, maxHz: hz ?? VIEW_HZ.default };
    }
    if (hz !== undefined) throw new RunstateError('BAD_REQUEST', '`max_hz` applies to the view mode only.');
    if (after !== undefined && (typeof after !== 'number' || !Number.isSafeInteger(after) || after < 0)) {
      throw new RunstateError('BAD_REQUEST', 'Expected `after_seq` to be a whole number ≥ 0.');
    }
    if (after !== undefined && topic.kind !== 'run') throw new RunstateError('BAD_REQUEST', '`after_seq` applies to run topics only.');
    return { type: 'subscribe', mode, topic, afterSeq: after };
  }
  if (m.type === 'unsubscribe') return { type: 'unsubscribe', topic: topics.parse(m.topic), mode: parseMode(m.mode) };
  throw new RunstateError('BAD_REQUEST', `Unknown message type ${JSON.stringify(m.type)}: expected "subscribe" or "unsubscribe".`);
}
