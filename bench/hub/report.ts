// The hub part's report: its figures, tables and aims, from what its sessions measured.
import { report, table, type Column, type PartReport } from '../harness/report.js';
import { fmtInt, Histogram, median, range } from '../harness/stats.js';
import type { HubOptions, PhaseOutcome, SessionResult } from './index.js';
import type { Variant } from './server.js';

export const LABEL: Record<Variant, string> = {
  naive: 'A: naive send loop',
  serial: 'B: serial await, 2 s timeout',
  hub: 'C: hub',
};

const sum = <T>(list: readonly T[], of: (x: T) => number) => list.reduce((n, x) => n + of(x), 0);

/** From a phase's first append to its last delivery: a server that falls behind is timed until it has caught up. */
function span(p: PhaseOutcome): number {
  return Math.max(p.server.ms, (p.stats?.lastAt ?? 0) - p.server.startedAt);
}

/** What one or more phases come to, taken together (the two no-stall phases of a rate are one sample), for the tables and the aims. */
function figures(phases: readonly PhaseOutcome[], healthy: number) {
  // Each second's healthy latencies, and all of them together.
  const windows = phases.flatMap((p) => p.stats?.windows ?? []).filter((w) => w.length > 0);
  const h = new Histogram();
  for (const w of windows) h.merge(w);
  const total = (of: (p: PhaseOutcome) => number) => sum(phases, of);
  const expected = total((p) => p.server.events) * healthy;
  const received = total((p) => p.stats?.healthyDeliveries ?? 0);
  const wall = total((p) => p.server.ms);
  const lost = Math.max(0, expected - received);
  const seconds = windows.map((w) => new Histogram().merge(w).quantile(0.99));
  // The times to evict stalled clients (Infinity: never); `missing`: the healthy clients' deliveries that never arrived.
  const times = phases.flatMap((p) => p.evictions.map((t) => t ?? Infinity));
  return {
    deliveriesPerSec: (total((p) => p.stats?.deliveries ?? 0) / total(span)) * 1000,
    missing: expected === 0 ? 0 : lost / expected,
    p50: h.quantile(0.5, lost),
    p99: h.quantile(0.99, lost),
    p999: h.quantile(0.999, lost),
    // The p99 of each second, median over the seconds: one background hiccup delays every client's frames at once and alone
    // sets a whole-phase p99; this moves only if most seconds are slower. With deliveries lost it is as lost as the whole.
    p99Seconds: lost > 0 && !Number.isFinite(h.quantile(0.99, lost)) ? Infinity : seconds.length ? median(seconds) : NaN,
    evicted: times.filter(Number.isFinite).length,
    evictMedian: times.length ? median(times) : NaN,
    evictMax: times.length ? Math.max(...times) : NaN,
    eldP99: Math.max(...phases.map((p) => p.server.eldP99)),
    eldMax: Math.max(...phases.map((p) => p.server.eldMax)),
    serverCpu: total((p) => p.server.cpuMs) / wall,
    clientCpu: total((p) => p.clientCpuMs) / wall,
  };
}
type Figures = ReturnType<typeof figures>;
type Paced = ReturnType<typeof paced>[number];

/** The phases at `rate` with `stalled` clients stalled (0: the baseline before and after the stall phases). */
function at(s: SessionResult, rate: number, stalled: number): Figures {
  return figures(s.phases.filter((p) => p.rate === rate && p.stalled === stalled), s.healthy);
}

/** A duration; Infinity (an eviction that never came) as `never`. */
function ms(v: number): string {
  if (!Number.isFinite(v)) return 'never';
  return v >= 1000 ? `${(v / 1000).toFixed(2)} s` : v >= 10 ? `${v.toFixed(0)} ms` : `${v.toFixed(1)} ms`;
}

/** A latency; Infinity means the percentile falls among deliveries that never came. */
function latency(v: number, f?: Figures): string {
  return Number.isFinite(v) ? ms(v) : f ? `lost (${pct(f.missing)})` : 'lost';
}

const pct = (v: number) => (v === 0 ? '0%' : v < 0.001 ? '<0.1%' : `${(v * 100).toFixed(1)}%`);
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/** Rows of the paced tables: a variant's phases at each rate with each number of clients stalled (0: before and after), taken together. */
function paced(s: SessionResult, o: HubOptions) {
  const counts = [...new Set(o.stallShares.map((share) => Math.round(o.clients * share)))];
  return o.rates.flatMap((rate) => counts.map((stalled) => ({ s, rate, stalled, phases: s.phases.filter((p) => p.rate === rate && p.stalled === stalled), f: at(s, rate, stalled), base: at(s, rate, 0) })));
}

/** A variant's bursts: deliveries/s of each, and the medians of the rest. */
function bursts(s: SessionResult, o: HubOptions) {
  const each = s.bursts.map((b) => figures([b], s.healthy));
  const mid = (of: (f: Figures) => number) => median(each.map(of));
  return {
    s,
    perSec: each.map((f) => f.deliveriesPerSec),
    made: median(s.bursts.map((b) => (b.stats?.deliveries ?? 0) / (o.burstEvents * o.clients))),
    f: { eldMax: mid((f) => f.eldMax), serverCpu: mid((f) => f.serverCpu), clientCpu: mid((f) => f.clientCpu) },
  };
}

/** Server memory at the end of the stall window the memory aim is read at: the last phase with the most clients stalled. */
function memory(s: SessionResult, o: HubOptions) {
  const most = Math.max(...s.phases.map((p) => p.stalled));
  const worst = s.phases.filter((p) => p.stalled === most).at(-1)!;
  // The aim's allowance above idle: 16 KB per client, 256 KiB per stalled client.
  return { s, worst, above: worst.server.rss - s.rssIdle, allowance: o.clients * 16 * 1024 + worst.stalled * 256 * 1024 };
}

const VARIANT: Column<{ s: SessionResult }> = ['variant', ({ s }) => LABEL[s.variant]];
const RATE: Column<Paced> = ['events/s', ({ rate }) => String(rate)];
const HEALTHY: Column<Paced>[] = [
  ['healthy p50', ({ f }) => latency(f.p50, f)],
  ['p99', ({ f }) => latency(f.p99, f)],
  ['p99.9', ({ f }) => latency(f.p999, f)],
];
const CPU: Column<{ f: { serverCpu: number; clientCpu: number } }>[] = [
  ['server CPU', ({ f }) => `${Math.round(f.serverCpu * 100)}%`],
  ['load-gen CPU', ({ f }) => `${Math.round(f.clientCpu * 100)}%`],
];

/** The part's report: the aims, then the fan-out, saturation, stall and memory tables. */
export function hubReport(sessions: readonly SessionResult[], o: HubOptions): PartReport {
  const pacedRows = sessions.flatMap((s) => paced(s, o));
  const fanout: Column<Paced>[] = [
    VARIANT,
    RATE,
    ['deliveries/s (offered)', ({ f, rate }) => `${fmtInt(f.deliveriesPerSec)} (${fmtInt(rate * o.clients)})`],
    ...HEALTHY,
    ['never delivered', ({ f }) => pct(f.missing)],
    ['event-loop delay p99 / max', ({ f }) => `${ms(f.eldP99)} / ${ms(f.eldMax)}`],
    ...CPU,
  ];
  const none = (r: Paced, text: string) => (r.stalled === 0 ? '—' : text);
  const stalls: Column<Paced>[] = [
    VARIANT,
    RATE,
    ['stalled', (r) => (r.stalled === 0 ? 'none (before + after)' : `${r.stalled} (${Math.round((r.stalled / o.clients) * 100)}%)`)],
    ...HEALTHY,
    ['p99 per second (median)', ({ f }) => latency(f.p99Seconds, f)],
    ['vs none stalled', ({ f, base, stalled }) => (stalled === 0 ? '1.00×' : Number.isFinite(f.p99Seconds) && Number.isFinite(base.p99Seconds) ? `${(f.p99Seconds / base.p99Seconds).toFixed(2)}×` : '—')],
    ['stalled evicted', (r) => none(r, `${r.f.evicted} / ${r.stalled}`)],
    ['time to evict median / max', (r) => none(r, r.f.evicted === 0 ? `none within ${ms(o.stallSeconds * 1000 + o.graceMs)}` : `${ms(r.f.evictMedian)} / ${ms(r.f.evictMax)}`)],
    ['healthy closed', (r) => String(sum(r.phases, (p) => p.healthyLost))],
    ['event-loop delay p99', ({ f }) => ms(f.eldP99)],
  ];
  const saturation: Column<ReturnType<typeof bursts>>[] = [
    VARIANT,
    ['deliveries/s (median)', (r) => fmtInt(median(r.perSec))],
    ['min – max', (r) => range(r.perSec)],
    ['deliveries made', (r) => pct(r.made)],
    ['healthy closed', (r) => String(sum(r.s.bursts, (b) => b.healthyLost))],
    ['event-loop delay max (median)', (r) => ms(r.f.eldMax)],
    ...CPU,
  ];
  const server: Column<ReturnType<typeof memory>>[] = [
    VARIANT,
    ['before clients', ({ s }) => mb(s.rssBare)],
    [`idle, ${fmtInt(o.clients)} connected`, ({ s }) => mb(s.rssIdle)],
    ['per client at idle', ({ s }) => `${((s.rssIdle - s.rssBare) / o.clients / 1024).toFixed(1)} KB`],
    ['end of 10% stall window', ({ worst }) => `${mb(worst.server.rss)} (${worst.rate} ev/s)`],
    ['above idle', (r) => mb(r.above)],
    ['allowance', (r) => mb(r.allowance)],
    ['within?', (r) => (r.above <= r.allowance ? 'yes' : 'no')],
    ['held for clients then', ({ worst }) => mb(worst.server.heldBytes)],
  ];
  const verdicts = aims(sessions, o);
  const hub = report(
    `### Aims, for C, against A and B of this run`,
    verdicts.map((x) => `- ${x.met ? '**Met**' : '**Not met**'}: ${x.text}. ${x.evidence}.`).join('\n'),
    `### Fan-out at a fixed rate: ${fmtInt(o.clients)} clients, none stalled`,
    { title: 'Hub fan-out', rows: table(fanout, pacedRows.filter((r) => r.stalled === 0)) },
    `### Saturation: bursts of ${o.burstEvents} events to ${fmtInt(o.clients)} clients`,
    { title: 'Hub saturation (bursts)', rows: table(saturation, sessions.map((s) => bursts(s, o))) },
    `### Healthy clients while others stall, and eviction`,
    { title: 'Hub: stalled clients', rows: table(stalls, pacedRows) },
    `### Server memory`,
    { title: 'Hub: server memory', rows: table(server, sessions.map((s) => memory(s, o))) },
    closes(sessions),
  );
  const aimRows = table([['aim', (x) => x.text], ['met', (x) => (x.met ? 'yes' : 'no')], ['evidence', (x) => x.evidence]], verdicts);
  return { ...hub, tables: [...hub.tables, { title: 'Hub aims', rows: aimRows }] };
}

/** The hub's aims, judged for C against A and B of the same run. */
function aims(sessions: readonly SessionResult[], o: HubOptions): { text: string; met: boolean; evidence: string }[] {
  const by = (v: Variant) => sessions.find((s) => s.variant === v)!;
  const [a, b, c] = [by('naive'), by('serial'), by('hub')];
  const top = o.rates.at(-1)!;
  const most = Math.round(o.clients * Math.max(...o.stallShares));
  const [da, db, dc] = [a, b, c].map((s) => median(bursts(s, o).perSec)) as [number, number, number];
  // Judged on the per-second p99 (see figures); the whole-phase p99 is given beside it. A p99 among
  // deliveries that never came (Infinity) is within nothing.
  const within = (base: number, worst: number) => Number.isFinite(worst) && worst <= Math.max(base * 1.1, base + 5);
  const p99 = o.rates.map((rate) => {
    const [base, worst] = [at(c, rate, 0), at(c, rate, most)];
    const ok = within(base.p99Seconds, worst.p99Seconds);
    const whole = within(base.p99, worst.p99) ? 'within' : 'over';
    const text = `${rate}/s: C ${ms(base.p99Seconds)} → ${ms(worst.p99Seconds)}${ok ? '' : ' (over)'} (whole-phase p99 ${ms(base.p99)} → ${ms(worst.p99)}, ${whole}); `;
    return { ok, text: text + `B ${latency(at(b, rate, 0).p99Seconds)} → ${latency(at(b, rate, most).p99Seconds)}` };
  });
  const stalls = c.phases.filter((p) => p.stalled > 0).map((p) => ({ p, f: figures([p], c.healthy) }));
  const mem = memory(c, o);
  return [
    {
      text: `deliveries/s at least 2× A's (saturation: bursts of ${o.burstEvents} events, median of ${o.burstReps})`,
      met: dc >= 2 * da,
      evidence:
        `C ${fmtInt(dc)}/s, A ${fmtInt(da)}/s: ${(dc / da).toFixed(2)}×; B ${fmtInt(db)}/s. Paced at ${top}/s (offered ${fmtInt(top * o.clients)}/s): ` +
        `C ${fmtInt(at(c, top, 0).deliveriesPerSec)}/s, A ${fmtInt(at(a, top, 0).deliveriesPerSec)}/s, B ${fmtInt(at(b, top, 0).deliveriesPerSec)}/s`,
    },
    { text: 'healthy p99 with 10% stalled within 1.1× (or +5 ms) of the all-healthy p99', met: p99.every((x) => x.ok), evidence: p99.map((x) => x.text).join('; ') },
    {
      text: 'every stalled client evicted within 5 s of stopping to read, at any event rate',
      met: Math.max(...stalls.map(({ f }) => f.evictMax)) <= 5000,
      evidence: `C: ${stalls.map(({ p, f }) => `${p.rate}/s, ${p.stalled} stalled: ${f.evicted}/${p.stalled}, slowest ${ms(f.evictMax)}`).join('; ')}`,
    },
    {
      text: 'server RSS within idle + 16 KB per client + 256 KiB per stalled client',
      met: mem.above <= mem.allowance,
      evidence: `C: ${mb(mem.above)} above idle (${mb(c.rssIdle)}) at the end of the 10% stall window, allowance ${mb(mem.allowance)}`,
    },
    {
      text: `a reconnecting client's ${fmtInt(o.backlogEvents)}-event backlog delivered in under 1 s`,
      met: c.backlogMs.length > 0 && c.backlogMs.every((t) => t < 1000),
      evidence: `C: median ${ms(c.backlogMs.length ? median(c.backlogMs) : Infinity)} of ${c.backlogMs.length} (${c.backlogMs.map((t) => ms(t)).join(', ')}); A and B have no replay`,
    },
  ];
}

/** The one line of the method that is data: who closed whom over the session. */
function closes(sessions: readonly SessionResult[]): string {
  const reasons = (s: SessionResult) => Object.entries(s.closesByReason).map(([k, v]) => `${k} ${v}`).join(', ') || 'no closes of its own';
  const lost = sessions.map((s) => `${LABEL[s.variant].slice(0, 1)} ${s.healthyClosed} (${reasons(s)})`).join('; ');
  return `Healthy clients the server closed over the whole session, and all the server's closes by reason (healthy clients reconnect before the next phase): ${lost}.`;
}
