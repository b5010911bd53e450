// The W3C Trace Context `traceparent` header (https://www.w3.org/TR/trace-context/): parsed
// here, without the SDK, so that a run keeps its caller's trace whether or not telemetry is on.

export interface TraceParent {
  traceId: string;
  spanId: string;
  /** The trace-flags byte: bit 0 is `sampled`. */
  flags: number;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * The parsed header, or undefined when it is absent or not valid (then the caller's trace is
 * ignored, as the spec says, rather than the request refused). Version ff, all-zero ids, and
 * extra fields on version 00 are invalid.
 */
export function parseTraceParent(header: unknown): TraceParent | undefined {
  if (typeof header !== 'string') return undefined;
  const m = TRACEPARENT.exec(header.trim().toLowerCase());
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined];
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, spanId, flags: parseInt(flags, 16) };
}

/** The canonical (version 00) header. */
export function formatTraceParent(tp: TraceParent): string {
  return `00-${tp.traceId}-${tp.spanId}-${tp.flags.toString(16).padStart(2, '0')}`;
}
