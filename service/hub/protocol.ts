// The WebSocket protocol (docs/protocol.md): what clients may send, what the hub answers.
import { RunstateError } from '../errors.js';

export type Topic = { kind: 'run'; id: string; name: string } | { kind: 'site'; id: string; name: string };

export type ClientMessage =
  | { type: 'subscribe'; topic: Topic; afterSeq: number | undefined }
  | { type: 'unsubscribe'; topic: Topic };

const TOPIC = /^(run|site):(.{1,100})$/;

export function parseTopic(raw: unknown): Topic {
  if (typeof raw !== 'string') throw new RunstateError('INVALID_TOPIC', 'Expected `topic` to be "run:<run_id>" or "site:<site_id>".');
  const m = TOPIC.exec(raw);
  if (!m) throw new RunstateError('INVALID_TOPIC', `Unknown topic ${JSON.stringify(raw.slice(0, 120))}: expected "run:<run_id>" or "site:<site_id>".`);
  return { kind: m[1] as 'run' | 'site', id: m[2]!, name: raw };
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
    const topic = parseTopic(m.topic);
    const after = m.after_seq;
    if (after !== undefined && after !== null && (typeof after !== 'number' || !Number.isSafeInteger(after) || after < 0)) {
      throw new RunstateError('BAD_REQUEST', 'Expected `after_seq` to be a whole number ≥ 0.');
    }
    if (after !== undefined && after !== null && topic.kind !== 'run') {
      throw new RunstateError('BAD_REQUEST', '`after_seq` applies to run topics only.');
    }
    return { type: 'subscribe', topic, afterSeq: after ?? undefined };
  }
  if (m.type === 'unsubscribe') return { type: 'unsubscribe', topic: parseTopic(m.topic) };
  throw new RunstateError('BAD_REQUEST', `Unknown message type ${JSON.stringify(m.type)}: expected "subscribe" or "unsubscribe".`);
}
