// Streams the service's run and stage actors to a Stately inspector relay
// (`RUNSTATE_INSPECT=ws://…`, relay: `npm run inspect`). Off the hot path: only the run and
// stage machines are forwarded (never the item, loader or timer actors, whose inputs name
// items), at most `maxPerSecond` events a second (the rest are counted and dropped), and the
// inspector's own buffer while the relay is away is bounded.
import { createWebSocketInspector } from '@statelyai/inspect';
import type { Logger } from 'pino';
import type { InspectionEvent } from 'xstate';

export interface InspectionOptions {
  url: string;
  logger: Logger;
  /** [2000] Events forwarded per second at most. */
  maxPerSecond?: number;
}

export interface Inspection {
  observe(ev: InspectionEvent): void;
  /** Events not forwarded because of the rate bound. */
  readonly dropped: number;
  readonly forwarded: number;
  stop(): void;
}

const FORWARDED = new Set(['@xstate.actor', '@xstate.event', '@xstate.snapshot']);

/** Whether an actor is a run or a stage machine (ids `x:<n>` at the root, `stage.<n>` below). */
function isRunOrStage(ev: InspectionEvent): boolean {
  if (ev.rootId === ev.actorRef.sessionId) return true;
  return /^stage\.\d+$/.test((ev.actorRef as { id?: string }).id ?? '');
}

export function createInspection(opts: InspectionOptions): Inspection {
  const maxPerSecond = opts.maxPerSecond ?? 2000;
  const inspector = createWebSocketInspector({ url: opts.url, maxDeferredEvents: 1000 });
  let windowStart = performance.now();
  let inWindow = 0;
  let dropped = 0;
  let forwarded = 0;
  opts.logger.info({ url: opts.url }, 'streaming run and stage actors to a Stately inspector relay');
  return {
    observe(ev) {
      if (!FORWARDED.has(ev.type) || !isRunOrStage(ev)) return;
      const now = performance.now();
      if (now - windowStart >= 1000) {
        windowStart = now;
        inWindow = 0;
      }
      if (inWindow >= maxPerSecond) {
        dropped += 1;
        return;
      }
      inWindow += 1;
      forwarded += 1;
      inspector.inspect.next?.(ev);
    },
    get dropped() {
      return dropped;
    },
    get forwarded() {
      return forwarded;
    },
    stop() {
      inspector.stop();
    },
  };
}
