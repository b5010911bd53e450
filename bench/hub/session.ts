// Drives one variant of the hub part: a server process and a load-generator process, through the phases.
import { setTimeout as sleep } from 'node:timers/promises';
import { start, type Child } from '../harness/child.js';
import { BENCH_TOKEN } from '../harness/service.js';
import { progress } from '../harness/stats.js';
import type { PhaseStats } from './clients.js';
import type { PhaseResult, Variant } from './server.js';

export const RUN_ID = 'run_20250101_000000_bench';
export const TOPIC = `run:${RUN_ID}`;

type Proc = Child<unknown>;

export interface SessionOptions {
  clients: number;
  /** Share of clients that stall in a phase: [0, 0.01, 0.1]. */
  stallShares: readonly number[];
  rates: readonly number[];
  /** Seconds each phase generates events; a stall phase runs `stallSeconds` so a 5 s eviction shows. */
  seconds: number;
  stallSeconds: number;
  /** Seconds of unreported traffic before the first phase. */
  warmUpSeconds: number;
  /** After a phase, late deliveries still count (by the phase stamped in the event); how long the bench waits for them. */
  graceMs: number;
  /** Backlog replays to time (C only). */
  backlogReps: number;
  backlogEvents: number;
  /** Saturation: bursts of `burstEvents` events, appended `burstBatch` at a time as fast as the variant takes them. */
  burstReps: number;
  burstEvents: number;
  burstBatch: number;
}

export interface PhaseOutcome {
  /** The phase number stamped in its events. */
  ph: number;
  /** Events/s; 0 for a burst. */
  rate: number;
  share: number;
  stalled: number;
  server: PhaseResult;
  /** Load-generator CPU over the phase, ms. */
  clientCpuMs: number;
  /** Per stalled client: ms from its stall to the server closing it; null when it never did. */
  evictions: (number | null)[];
  /** Healthy clients the server closed during the phase (or its grace). */
  healthyLost: number;
  /** Filled in at the end of the session, when late deliveries have arrived. */
  stats?: PhaseStats;
}

export interface SessionResult {
  variant: Variant;
  healthy: number;
  rssBare: number;
  rssIdle: number;
  phases: PhaseOutcome[];
  bursts: PhaseOutcome[];
  backlogMs: number[];
  healthyClosed: number;
  /** Closes the server itself counted, by reason (C: its eviction metric; B: its loop's terminations). */
  closesByReason: Record<string, number>;
}

/** Phase numbers the report never reads: the warm-up, and the backlog test's live traffic. */
const WARM_UP_PH = 1000;
const BACKLOG_PH = 1001;
const BURST_PH = 2000;
/** A burst's deliveries are over when the count has not moved for this long. */
const QUIET_MS = 500;

/**
 * One variant, one server process and one load-generator process: connect every client,
 * then for each rate run a phase with no client stalled, one per stall share and a second
 * with none stalled; victims (the last 10% of ids) stall as their phase starts and are
 * replaced after it, so every phase starts from the same fleet and the healthy clients are
 * the same ones throughout. Then the backlog test (C) and the saturation bursts.
 */
export async function runSession(variant: Variant, o: SessionOptions): Promise<SessionResult> {
  const procs: Proc[] = [];
  try {
    const server = await start('hub/server.ts', [variant]);
    procs.push(server);
    const load = await start('hub/clients.ts');
    procs.push(load);
    const url = `ws://127.0.0.1:${String(server.ready)}/ws?token=${BENCH_TOKEN}`;
    const healthy = Math.floor(o.clients * 0.9);
    const ids = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
    const open = (list: number[]) => load.call<number>('open', { url, ids: list, topic: TOPIC, healthyBelow: healthy }, 120_000);

    /** Runs `body`, then `after` (the grace), and counts the load generator's CPU and the healthy clients lost around them. */
    const around = async (body: () => Promise<PhaseResult>, after: () => Promise<unknown>) => {
      const [closed0, cpu0] = [await load.call<number>('healthyClosed'), await load.call<number>('cpu')];
      const result = await body();
      const clientCpuMs = (await load.call<number>('cpu')) - cpu0;
      await after();
      return { server: result, clientCpuMs, healthyLost: (await load.call<number>('healthyClosed')) - closed0 };
    };
    const rssBare = await server.call<number>('rss');
    await open(ids(0, o.clients));
    await sleep(1000);
    const rssIdle = await server.call<number>('rss');
    // Unreported: lets V8 compile every variant's send path before the first measured phase,
    // which would otherwise carry the warm-up and flatter every later phase beside it.
    await server.call('run', { rate: o.rates[0], seconds: o.warmUpSeconds, ph: WARM_UP_PH }, 120_000);
    await sleep(o.graceMs);

    const phases: PhaseOutcome[] = [];
    let backlogMs: number[] = [];
    for (const rate of o.rates) {
      // The no-stall phase again at the end: the stall phases' baseline brackets them in time.
      for (const share of [...o.stallShares, 0]) {
        const victims = ids(healthy, Math.round(o.clients * share));
        const ph = phases.length;
        // Every phase starts from the full fleet: the stalled clients of the last one were
        // dropped, and B may have closed healthy ones; they come back, as browsers would.
        await open(ids(0, o.clients));
        const seconds = victims.length > 0 ? o.stallSeconds : o.seconds;
        let stalledAt = 0;
        const m = await around(async () => {
          stalledAt = victims.length > 0 ? await load.call<number>('stall', { ids: victims }) : 0;
          return server.call<PhaseResult>('run', { rate, seconds, ph }, seconds * 1000 + 120_000);
        }, () => sleep(o.graceMs));
        let evictions: (number | null)[] = [];
        if (victims.length > 0) {
          const closes = new Map(await server.call<[number, number][]>('closes'));
          evictions = victims.map((cid) => {
            const at = closes.get(cid);
            return at !== undefined && at > stalledAt ? at - stalledAt : null;
          });
          await load.call('drop', { ids: victims });
        }
        phases.push({ ph, rate, share, stalled: victims.length, ...m, evictions });
        progress(`${variant} ${rate} ev/s, ${victims.length} stalled: ${m.server.events} events, ELD p99 ${m.server.eldP99.toFixed(1)} ms`);
        // Once per session, with no client stalled and events flowing: a client comes back behind.
        if (variant === 'hub' && share === 0 && rate === o.rates.at(-1) && backlogMs.length === 0 && o.backlogReps > 0) {
          backlogMs = await backlog(server, load, url, rate, o, BACKLOG_PH);
        }
      }
    }
    // Last, as it may leave B with nothing but a backlog: saturation.
    const bursts: PhaseOutcome[] = [];
    for (let i = 0; i < o.burstReps; i++) {
      await open(ids(0, o.clients));
      const ph = BURST_PH + i;
      const m = await around(() => server.call<PhaseResult>('burst', { total: o.burstEvents, batch: o.burstBatch, ph }), () => settled(load, ph));
      bursts.push({ ph, rate: 0, share: 0, stalled: 0, ...m, evictions: [] });
      progress(`${variant} burst of ${o.burstEvents}: ${m.server.ms.toFixed(0)} ms to hand over, ELD max ${m.server.eldMax.toFixed(0)} ms`);
    }

    const all = await load.call<Record<number, PhaseStats>>('stats');
    for (const p of [...phases, ...bursts]) p.stats = all[p.ph];
    const healthyClosed = await load.call<number>('healthyClosed');
    const closesByReason = await server.call<Record<string, number>>('evictions');
    await server.stop();
    await load.stop();
    return { variant, healthy, rssBare, rssIdle, phases, bursts, backlogMs, healthyClosed, closesByReason };
  } finally {
    for (const p of procs) p.kill();
  }
}

/** While events flow at `rate`, a client subscribes `backlogEvents` behind the last seq, `backlogReps` times. */
async function backlog(server: Proc, load: Proc, url: string, rate: number, o: SessionOptions, ph: number): Promise<number[]> {
  const flowing = server.call<PhaseResult>('run', { rate, seconds: o.seconds, ph }, o.seconds * 1000 + 120_000);
  const times: number[] = [];
  for (let i = 0; i < o.backlogReps; i++) {
    const untilSeq = await server.call<number>('lastSeq');
    const r = await load.call<{ ms: number; received: number }>('backlog', { url, topic: TOPIC, afterSeq: Math.max(0, untilSeq - o.backlogEvents), untilSeq }, 60_000);
    times.push(r.ms);
  }
  await flowing;
  progress(`hub backlog of ${o.backlogEvents}: ${times.map((t) => t.toFixed(0)).join(', ')} ms`);
  return times;
}

/** Waits until the load generator's count of deliveries for phase `ph` stops growing. */
async function settled(load: Proc, ph: number): Promise<void> {
  let last = -1;
  for (;;) {
    const n = await load.call<number>('count', { ph });
    if (n === last) return;
    last = n;
    await sleep(QUIET_MS);
  }
}
