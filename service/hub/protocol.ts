// The WebSocket protocol of DESIGN §5: what clients may send, what the hub answers.

export type Topic = { kind: 'run'; id: string; name: string } | { kind: 'site'; id: string; name: string };

export type ClientMessage =
  | { type: 'subscribe'; topic: Topic; afterSeq: number | undefined }
  | { type: 'unsubscribe'; topic: Topic };

/** Error codes a client can get in `{"type":"error","code",…}`. */
export type ProtocolErrorCode =
  | 'bad_json'
  | 'bad_message'
  | 'bad_topic'
  | 'forbidden'
  | 'not_found'
  | 'rate_limited'
  | 'too_many_subscriptions';

export class ProtocolError extends Error {
  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const TOPIC = /^(run|site):(.{1,100})$/;

export function parseTopic(raw: unknown): Topic {
  if (typeof raw !== 'string') throw new ProtocolError('bad_topic', 'Expected `topic` to be "run:<run_id>" or "site:<site_id>".');
  const m = TOPIC.exec(raw);
  if (!m) throw new ProtocolError('bad_topic', `Unknown topic ${JSON.stringify(raw.slice(0, 120))}: expected "run:<run_id>" or "site:<site_id>".`);
  return { kind: m[1] as 'run' | 'site', id: m[2]!, name: raw };
}

/** Parses one text frame; a `ProtocolError` says what is wrong with it. */
export function parseClientMessage(text: string): ClientMessage {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    throw new ProtocolError('bad_json', 'The message is not valid JSON.');
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw new ProtocolError('bad_message', 'Expected a JSON object with a `type`.');
  const m = msg as Record<string, unknown>;
  if (m.type === 'subscribe') {
    const topic = parseTopic(m.topic);
    const after = m.after_seq;
    if (after !== undefined && after !== null && (typeof after !== 'number' || !Number.isSafeInteger(after) || after < 0)) {
      throw new ProtocolError('bad_message', 'Expected `after_seq` to be a whole number ≥ 0.');
    }
    if (after !== undefined && after !== null && topic.kind !== 'run') {
      throw new ProtocolError('bad_message', '`after_seq` applies to run topics only.');
    }
    return { type: 'subscribe', topic, afterSeq: after ?? undefined };
  }
  if (m.type === 'unsubscribe') return { type: 'unsubscribe', topic: parseTopic(m.topic) };
  throw new ProtocolError('bad_message', `Unknown message type ${JSON.stringify(m.type)}: expected "subscribe" or "unsubscribe".`);
}
