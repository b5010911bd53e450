// Hub part: 1,000 WebSocket clients and three servers in turn (A a naive send loop, B the incident's serial-await
// fix, C the real Hub). This file drives each session's server.ts and clients.ts; report.ts judges C against A and B.
import { setTimeout as sleep } from 'node:timers/promises';
import { withChildren, type Child } from '../harness/child.js';
import type { BenchPart, PartReport } from '../harness/report.js';
import { BENCH_TOKEN } from '../harness/service.js';
import { fmtInt, progress, QUICK, size } from '../harness/stats.js';
import type { PhaseStats } from './clients.js';
import { hubReport, LABEL } from './report.js';
import type { PhaseResult, Variant } from './server.js';

/** Phases no table reads (the warm-up, the backlog test's traffic), and the first burst's number. */
const WARM_UP_PH = 1000;
const BACKLOG_PH = 1001;
const BURST_PH = 2000;
/** A burst's deliveries are over when the count has not moved for this long. */
const QUIET_MS = 500;

function options() {
  const q = QUICK;
  return {
    clients: size('HUB_CLIENTS', 1000, 40),
    stallShares: q ? [0, 0.1] : [0, 0.01, 0.1],
    rates: q ? [200] : [20, 200],
    /** Seconds a phase generates events; a stall phase's are enough for a 5 s eviction to show. */
    seconds: q ? 1 : 4,
    stallSeconds: q ? 1 : 6,
    warmUpSeconds: q ? 1 : 3,
    /** How long after a phase its late deliveries are waited for (they count against it). */
    graceMs: q ? 300 : 1000,
    backlogReps: q ? 1 : 5,
    backlogEvents: q ? 50 : 1000,
    burstReps: q ? 1 : 3,
    burstEvents: q ? 30 : 300,
    burstBatch: 10,
  };
}
export type HubOptions = ReturnType<typeof options>;
export type SessionResult = Awaited<ReturnType<typeof runSession>>;
export type PhaseOutcome = SessionResult['phases'][number];

const ids = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

/** Waits until the load generator's count of deliveries for phase `ph` stops growing. */
async function settled(load: Child, ph: number): Promise<void> {
  let last = -1;
  for (let n = await load.call<number>('count', { ph }); n !== last; n = await load.call<number>('count', { ph })) {
    last = n;
    await sleep(QUIET_MS);
  }
}

/** One variant's session: per rate, phases with none, then each share, stalled (the last 10% of ids, replaced after), and none again; then C's backlog test and the bursts. */
function runSession(variant: Variant, o: HubOptions) {
  return withChildren(async (start) => {
    const server = await start<{ port: number; topic: string }>('hub/server.ts', [variant]);
    const load = await start('hub/clients.ts');
    const { topic } = server.ready;
    const url = `ws://127.0.0.1:${server.ready.port}/ws?token=${BENCH_TOKEN}`;
    const healthy = Math.floor(o.clients * 0.9);
    // Every phase starts from the full fleet: stalled clients, and healthy ones B closed, come back as browsers would.
    const reconnect = () => load.call<number>('open', { url, ids: ids(0, o.clients), topic, healthyBelow: healthy }, 120_000);
    const events = (rate: number, seconds: number, ph: number) => server.call<PhaseResult>('run', { rate, seconds, ph }, seconds * 1000 + 120_000);

    // Phase `ph` at `rate` (0: a burst) with `victims` stalled: `body`, then `after` (the grace); the load generator's CPU ms,
    // the healthy clients closed, per victim the ms from its stall to its close (null: never); `stats` come at the end.
    const phase = async (ph: number, rate: number, victims: number[], body: () => Promise<PhaseResult>, after: () => Promise<unknown>) => {
      await reconnect();
      const closed0 = await load.call<number>('healthyClosed');
      const cpu0 = await load.call<number>('cpu');
      const stalledAt = victims.length > 0 ? await load.call<number>('stall', { ids: victims }) : 0;
      const result = await body();
      const clientCpuMs = (await load.call<number>('cpu')) - cpu0;
      await after();
      const healthyLost = (await load.call<number>('healthyClosed')) - closed0;
      const closedAt = new Map(victims.length > 0 ? await server.call<[number, number][]>('closedAt') : []);
      const evictions = victims.map((cid) => ((closedAt.get(cid) ?? 0) > stalledAt ? closedAt.get(cid)! - stalledAt : null));
      if (victims.length > 0) await load.call('drop', { ids: victims });
      return { ph, rate, stalled: victims.length, server: result, clientCpuMs, healthyLost, evictions, stats: undefined as PhaseStats | undefined };
    };
    const rssBare = await server.call<number>('rss');
    await reconnect();
    await sleep(1000);
    const rssIdle = await server.call<number>('rss');
    // Unreported: V8 compiles every variant's send path before the first measured phase.
    await events(o.rates[0]!, o.warmUpSeconds, WARM_UP_PH);
    await sleep(o.graceMs);

    const phases: Awaited<ReturnType<typeof phase>>[] = [];
    for (const rate of o.rates) {
      // The no-stall phase again at the end: the stall phases' baseline brackets them in time.
      for (const share of [...o.stallShares, 0]) {
        const victims = ids(healthy, Math.round(o.clients * share));
        const seconds = victims.length > 0 ? o.stallSeconds : o.seconds;
        const p = await phase(phases.length, rate, victims, () => events(rate, seconds, phases.length), () => sleep(o.graceMs));
        phases.push(p);
        progress(`${variant} ${rate} ev/s, ${p.stalled} stalled: ${p.server.events} events, ELD p99 ${p.server.eldP99.toFixed(1)} ms`);
      }
    }
    // With no client stalled and events flowing at the top rate: a client comes back behind.
    const backlogMs: number[] = [];
    if (variant === 'hub') {
      await reconnect();
      const flowing = events(o.rates.at(-1)!, o.seconds, BACKLOG_PH);
      for (let i = 0; i < o.backlogReps; i++) {
        const untilSeq = await server.call<number>('lastSeq');
        const afterSeq = Math.max(0, untilSeq - o.backlogEvents);
        backlogMs.push((await load.call<{ ms: number }>('backlog', { url, topic, afterSeq, untilSeq }, 60_000)).ms);
      }
      await flowing;
      progress(`hub backlog of ${o.backlogEvents}: ${backlogMs.map((t) => t.toFixed(0)).join(', ')} ms`);
    }
    // Last, as it may leave B with nothing but a backlog: saturation.
    const bursts: typeof phases = [];
    for (let ph = BURST_PH; ph < BURST_PH + o.burstReps; ph++) {
      const b = await phase(ph, 0, [], () => server.call<PhaseResult>('burst', { total: o.burstEvents, batch: o.burstBatch, ph }), () => settled(load, ph));
      bursts.push(b);
      progress(`${variant} burst of ${o.burstEvents}: ${b.server.ms.toFixed(0)} ms to hand over, ELD max ${b.server.eldMax.toFixed(0)} ms`);
    }
    const all = await load.call<Record<number, PhaseStats>>('stats');
    for (const p of [...phases, ...bursts]) p.stats = all[p.ph];
    const healthyClosed = await load.call<number>('healthyClosed');
    // Closes the server itself counted, by reason (C: its eviction metric; B: its loop's terminations).
    const closesByReason = await server.call<Record<string, number>>('closesByReason');
    return { variant, healthy, rssBare, rssIdle, phases, bursts, backlogMs, healthyClosed, closesByReason };
  });
}

async function run(): Promise<PartReport> {
  const o = options();
  const sessions: SessionResult[] = [];
  for (const v of ['naive', 'serial', 'hub'] as const) {
    progress(`${LABEL[v]}: ${fmtInt(o.clients)} clients`);
    sessions.push(await runSession(v, o));
  }
  return hubReport(sessions, o);
}

export const hubPart: BenchPart = { key: 'hub', title: 'WebSocket hub', source: 'bench/hub/', run };
