// Hub part (`BENCH_PARTS=hub`): 1,000 WebSocket clients on loopback, three servers side by side
// in the same run (A a naive send loop, B the incident's serial-await fix, C the real Hub), C
// judged against the hub's aims with A and B as its baselines. This file drives the two child
// processes of each session, server.ts and clients.ts, through the phases; report.ts makes the tables.
import { setTimeout as sleep } from 'node:timers/promises';
import { start, type Child } from '../harness/child.js';
import { report, table, type BenchPart } from '../harness/report.js';
import { BENCH_TOKEN } from '../harness/service.js';
import { fmtInt, progress, QUICK, size } from '../harness/stats.js';
import type { PhaseStats } from './clients.js';
import { aims, closes, LABEL, tables } from './report.js';
import type { PhaseResult, Variant } from './server.js';

const VARIANTS: readonly Variant[] = ['naive', 'serial', 'hub'];
/** Phase numbers the report never reads: the warm-up, and the backlog test's live traffic; bursts from BURST_PH. */
const WARM_UP_PH = 1000;
const BACKLOG_PH = 1001;
const BURST_PH = 2000;
/** A burst's deliveries are over when the count has not moved for this long. */
const QUIET_MS = 500;

function options() {
  const q = QUICK;
  return {
    clients: size('HUB_CLIENTS', 1000, 40),
    /** Share of clients that stall in a phase. */
    stallShares: q ? [0, 0.1] : [0, 0.01, 0.1],
    // 200/s: C keeps up on this 2-core box with room to spare, so what is measured is C, not
    // the load generator (see Method); 20/s: a quiet run, where only a heartbeat finds a stall.
    rates: q ? [200] : [20, 200],
    /** Seconds each phase generates events; a stall phase runs `stallSeconds` so a 5 s eviction shows. */
    seconds: q ? 1 : 4,
    stallSeconds: q ? 1 : 6,
    /** Seconds of unreported traffic before the first phase. */
    warmUpSeconds: q ? 1 : 3,
    /** After a phase, late deliveries still count (by the phase stamped in the event); how long the bench waits for them. */
    graceMs: q ? 300 : 1000,
    /** Backlog replays to time (C only). */
    backlogReps: q ? 1 : 5,
    backlogEvents: q ? 50 : 1000,
    // Saturation: bursts of `burstEvents` events, appended `burstBatch` at a time as fast as the variant
    // takes them. 300 events (about 100 KB) per client: well inside C's 256 KiB bound, so a burst measures fan-out, not eviction.
    burstReps: q ? 1 : 3,
    burstEvents: q ? 30 : 300,
    burstBatch: 10,
  };
}
export type HubOptions = ReturnType<typeof options>;

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

/**
 * One variant, one server process and one load-generator process: connect every client,
 * then for each rate run a phase with no client stalled, one per stall share and a second
 * with none stalled; victims (the last 10% of ids) stall as their phase starts and are
 * replaced after it, so every phase starts from the same fleet and the healthy clients are
 * the same ones throughout. Then the backlog test (C) and the saturation bursts.
 */
async function runSession(variant: Variant, o: HubOptions): Promise<SessionResult> {
  const procs: Child[] = [];
  try {
    const server = await start<{ port: number; topic: string }>('hub/server.ts', [variant]);
    procs.push(server);
    const load = await start('hub/clients.ts');
    procs.push(load);
    const { topic } = server.ready;
    const url = `ws://127.0.0.1:${server.ready.port}/ws?token=${BENCH_TOKEN}`;
    const healthy = Math.floor(o.clients * 0.9);
    const ids = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
    // Every phase starts from the full fleet: the stalled clients of the last one were dropped,
    // and B may have closed healthy ones; they come back, as browsers would.
    const reconnect = () => load.call<number>('open', { url, ids: ids(0, o.clients), topic, healthyBelow: healthy }, 120_000);
    const events = (rate: number, seconds: number, ph: number) => server.call<PhaseResult>('run', { rate, seconds, ph }, seconds * 1000 + 120_000);

    /** Runs `body`, then `after` (the grace), and counts the load generator's CPU and the healthy clients lost around them. */
    const around = async (body: () => Promise<PhaseResult>, after: () => Promise<unknown>) => {
      const [closed0, cpu0] = [await load.call<number>('healthyClosed'), await load.call<number>('cpu')];
      const result = await body();
      const clientCpuMs = (await load.call<number>('cpu')) - cpu0;
      await after();
      return { server: result, clientCpuMs, healthyLost: (await load.call<number>('healthyClosed')) - closed0 };
    };
    const rssBare = await server.call<number>('rss');
    await reconnect();
    await sleep(1000);
    const rssIdle = await server.call<number>('rss');
    // Unreported: lets V8 compile every variant's send path before the first measured phase,
    // which would otherwise carry the warm-up and flatter every later phase beside it.
    await events(o.rates[0]!, o.warmUpSeconds, WARM_UP_PH);
    await sleep(o.graceMs);

    const phases: PhaseOutcome[] = [];
    const backlogMs: number[] = [];
    for (const rate of o.rates) {
      // The no-stall phase again at the end: the stall phases' baseline brackets them in time.
      for (const share of [...o.stallShares, 0]) {
        const victims = ids(healthy, Math.round(o.clients * share));
        const ph = phases.length;
        await reconnect();
        let stalledAt = 0;
        const m = await around(async () => {
          stalledAt = victims.length > 0 ? await load.call<number>('stall', { ids: victims }) : 0;
          return events(rate, victims.length > 0 ? o.stallSeconds : o.seconds, ph);
        }, () => sleep(o.graceMs));
        let evictions: (number | null)[] = [];
        if (victims.length > 0) {
          const closed = new Map(await server.call<[number, number][]>('closes'));
          evictions = victims.map((cid) => {
            const at = closed.get(cid);
            return at !== undefined && at > stalledAt ? at - stalledAt : null;
          });
          await load.call('drop', { ids: victims });
        }
        phases.push({ ph, rate, share, stalled: victims.length, ...m, evictions });
        progress(`${variant} ${rate} ev/s, ${victims.length} stalled: ${m.server.events} events, ELD p99 ${m.server.eldP99.toFixed(1)} ms`);
        // Once per session, with no client stalled and events flowing: a client comes back behind.
        if (variant === 'hub' && share === 0 && rate === o.rates.at(-1) && backlogMs.length === 0 && o.backlogReps > 0) {
          const flowing = events(rate, o.seconds, BACKLOG_PH);
          for (let i = 0; i < o.backlogReps; i++) {
            const untilSeq = await server.call<number>('lastSeq');
            const afterSeq = Math.max(0, untilSeq - o.backlogEvents);
            backlogMs.push((await load.call<{ ms: number }>('backlog', { url, topic, afterSeq, untilSeq }, 60_000)).ms);
          }
          await flowing;
          progress(`hub backlog of ${o.backlogEvents}: ${backlogMs.map((t) => t.toFixed(0)).join(', ')} ms`);
        }
      }
    }
    // Last, as it may leave B with nothing but a backlog: saturation.
    const bursts: PhaseOutcome[] = [];
    for (let i = 0; i < o.burstReps; i++) {
      await reconnect();
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

/** Waits until the load generator's count of deliveries for phase `ph` stops growing. */
async function settled(load: Child, ph: number): Promise<void> {
  let last = -1;
  for (;;) {
    const n = await load.call<number>('count', { ph });
    if (n === last) return;
    last = n;
    await sleep(QUIET_MS);
  }
}

export const hubPart: BenchPart = {
  key: 'hub',
  title: 'WebSocket hub',
  source: 'bench/hub/',
  async run() {
    const o = options();
    const sessions: SessionResult[] = [];
    for (const v of VARIANTS) {
      progress(`${LABEL[v]}: ${fmtInt(o.clients)} clients`);
      sessions.push(await runSession(v, o));
    }
    const t = tables(sessions, o);
    const verdicts = aims(sessions, o);
    const hub = report(
      `### Aims, for C, against A and B of this run`,
      verdicts.map((x) => `- ${x.met ? '**Met**' : '**Not met**'}: ${x.text}. ${x.evidence}.`).join('\n'),
      `### Fan-out at a fixed rate: ${fmtInt(o.clients)} clients, none stalled`,
      { title: 'Hub fan-out', rows: t.fanout },
      `### Saturation: bursts of ${o.burstEvents} events to ${fmtInt(o.clients)} clients`,
      { title: 'Hub saturation (bursts)', rows: t.saturation },
      `### Healthy clients while others stall, and eviction`,
      { title: 'Hub: stalled clients', rows: t.stalls },
      `### Server memory`,
      { title: 'Hub: server memory', rows: t.server },
      closes(sessions),
    );
    const aimRows = table([['aim', (x) => x.text], ['met', (x) => (x.met ? 'yes' : 'no')], ['evidence', (x) => x.evidence]], verdicts);
    return { ...hub, tables: [...hub.tables, { title: 'Hub aims', rows: aimRows }] };
  },
};
