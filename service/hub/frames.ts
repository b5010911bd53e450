// Every message the hub sends and every code it closes with (docs/protocol.md), each framed once.
import * as ws from 'ws';
import type { ProcessingView, RunView } from '../engine/view.js';
import { ERROR_CODES, type ErrorBody, RunstateError, wsClose, wsErrorFrame } from '../errors.js';
import type { StoredEvent } from '../store/store.js';

/** A message framed once for every client that gets it. */
export interface Frame {
  /** The WebSocket frame: header and payload, shared by every client's write. */
  readonly chunks: readonly Buffer[];
  readonly bytes: number;
  /** performance.now() when the events in it were durably appended (for delivery latency). */
  readonly appendedAt: number | null;
  /**
   * Frames of one slot replace each other while they wait in a client's queue: a view not
   * yet sent is dropped for a newer one rather than queued behind it.
   */
  readonly slot: string | null;
}

/** A run as a subscriber starts from: `GET /runs/:id` plus its processing card. */
export type RunSnapshot = RunView & { processing: ProcessingView | null };
/** `GET /current_processing/?run_id=` data: the card, or null when there is none to show. */
export type ProcessingData = (ProcessingView & { run_id: string }) | null;

export type ServerMessage =
  | { type: 'snapshot'; topic: string; seq: number; run: RunSnapshot }
  | { type: 'reset'; topic: string; seq: number; run: RunSnapshot }
  | { type: 'event'; topic: string; seq: number; event: StoredEvent }
  | { type: 'view'; topic: string; seq: number; run: RunView; processing: ProcessingData }
  | { type: 'snapshot'; topic: string; runs: RunView[] }
  | { type: 'run'; topic: string; seq: number; run: RunView }
  | ({ type: 'error' } & ErrorBody);

export type ServerMessageType = ServerMessage['type'];

// ws exports its frame builder; @types/ws does not declare it.
const Sender = (ws as unknown as { Sender: { frame(data: Buffer, o: object): Buffer[] } }).Sender;

/** Serialises and frames a message once; the frame is then shared by every client's write. */
export function frame(message: ServerMessage, opts: { appendedAt?: number; slot?: string } = {}): Frame {
  const payload = Buffer.from(JSON.stringify(message));
  const chunks = Sender.frame(payload, { fin: true, opcode: 1, mask: false, readOnly: true, rsv1: false });
  return { chunks, bytes: chunks.reduce((n, c) => n + c.length, 0), appendedAt: opts.appendedAt ?? null, slot: opts.slot ?? null };
}

/**
 * Frames that go out together to many clients, joined into one buffer once: a client's write is
 * then one chunk rather than two per frame (header and payload), and the per-chunk cost of a
 * socket write, times every client, is what an event-mode broadcast spends most on.
 */
export function joined(parts: readonly Frame[]): Frame {
  if (parts.length === 1) return parts[0]!;
  const chunk = Buffer.concat(parts.flatMap((f) => f.chunks));
  return { chunks: [chunk], bytes: chunk.length, appendedAt: parts[0]?.appendedAt ?? null, slot: null };
}

/** The frames the hub sends, one builder per message type. */
export const frames = {
  snapshot: (topic: string, seq: number, run: RunSnapshot) => frame({ type: 'snapshot', topic, seq, run }),
  reset: (topic: string, seq: number, run: RunSnapshot) => frame({ type: 'reset', topic, seq, run }),
  event: (topic: string, event: StoredEvent, appendedAt?: number) =>
    frame({ type: 'event', topic, seq: event.seq, event }, appendedAt === undefined ? {} : { appendedAt }),
  /** Views of one topic share a slot: in a client's queue, a newer one replaces an unsent older one. */
  view: (topic: string, seq: number, run: RunView, processing: ProcessingData) =>
    frame({ type: 'view', topic, seq, run, processing }, { slot: `view:${topic}` }),
  siteSnapshot: (topic: string, runs: RunView[]) => frame({ type: 'snapshot', topic, runs }),
  run: (topic: string, run: RunView) => frame({ type: 'run', topic, seq: run.last_seq, run }),
  error: (err: RunstateError) => frame(wsErrorFrame(err)),
};

/** A close for a code of the error table that has a WebSocket close code. */
function closeWith<C extends 'SLOW_CONSUMER' | 'UNAVAILABLE' | 'PAYLOAD_TOO_LARGE'>(code: C) {
  return { code: ERROR_CODES[code].wsClose, reason: wsClose(code).reason };
}

/** The codes the hub closes a connection with (1009, a frame too large, ws closes by itself). */
export const CLOSE = {
  slowConsumer: closeWith('SLOW_CONSUMER'),
  shuttingDown: closeWith('UNAVAILABLE'),
  tooLarge: closeWith('PAYLOAD_TOO_LARGE'),
} as const;

export type CloseCode = (typeof CLOSE)[keyof typeof CLOSE]['code'];
