// The hub part's figures and tables, from what its sessions measured.
import type { Table } from '../harness/report.js';
import { fmtInt, Histogram, median } from '../harness/stats.js';
import type { PhaseOutcome, SessionResult } from './session.js';

export const LABEL: Record<SessionResult['variant'], string> = {
  naive: 'A: naive send loop',
  serial: 'B: serial await, 2 s timeout',
  hub: 'C: hub',
};

/** From a phase's first append to its last delivery: a server that falls behind is timed until it has caught up. */
function span(p: PhaseOutcome): number {
  return Math.max(p.server.ms, (p.stats?.lastAt ?? 0) - p.server.startedAt);
}

/** What one or more phases come to, taken together (the two no-stall phases of a rate are one sample), for the tables and the aims. */
export function figures(phases: readonly PhaseOutcome[], healthy: number) {
  const h = new Histogram();
  let expected = 0;
  let received = 0;
  let deliveries = 0;
  let time = 0;
  let wall = 0;
  let serverCpu = 0;
  let clientCpu = 0;
  for (const p of phases) {
    if (p.stats) h.merge(p.stats.latency);
    expected += p.server.events * healthy;
    received += p.stats?.healthyDeliveries ?? 0;
    deliveries += p.stats?.deliveries ?? 0;
    time += span(p);
    wall += p.server.ms;
    serverCpu += p.server.cpuMs;
    clientCpu += p.clientCpuMs;
  }
  const lost = Math.max(0, expected - received);
  const seconds = phases.flatMap((p) =>
    (p.stats?.windows ?? []).filter((w) => w.length > 0).map((w) => new Histogram().merge(w).quantile(0.99)),
  );
  const times = phases.flatMap((p) => p.evictions.map((t) => t ?? Infinity));
  // missing: healthy clients' deliveries that never arrived, as a share of what was sent them;
  // evicted, evictMedian, evictMax: stalled clients the server closed and the times to it (Infinity: never).
  return {
    deliveriesPerSec: (deliveries / time) * 1000,
    missing: expected === 0 ? 0 : lost / expected,
    p50: h.quantile(0.5, lost),
    p99: h.quantile(0.99, lost),
    p999: h.quantile(0.999, lost),
    // The p99 of each second, median over the seconds: one background hiccup delays every client's
    // frames at once and alone sets a whole-phase p99; this moves only if most seconds are slower.
    // A variant that lost deliveries has no meaningful per-second figure: it is as lost as the whole.
    p99Seconds: lost > 0 && !Number.isFinite(h.quantile(0.99, lost)) ? Infinity : seconds.length ? median(seconds) : NaN,
    evicted: times.filter(Number.isFinite).length,
    evictMedian: times.length ? median(times) : NaN,
    evictMax: times.length ? Math.max(...times) : NaN,
    eldP99: Math.max(...phases.map((p) => p.server.eldP99)),
    eldMax: Math.max(...phases.map((p) => p.server.eldMax)),
    serverCpu: serverCpu / wall,
    clientCpu: clientCpu / wall,
  };
}

/** The phases at `rate` with `stalled` clients stalled (0: the baseline before and after the stall phases). */
export function at(s: SessionResult, rate: number, stalled: number): ReturnType<typeof figures> {
  return figures(
    s.phases.filter((p) => p.rate === rate && p.stalled === stalled),
    s.healthy,
  );
}

/** A duration; Infinity (an eviction that never came) as `never`. */
export function ms(v: number): string {
  if (!Number.isFinite(v)) return 'never';
  return v >= 1000 ? `${(v / 1000).toFixed(2)} s` : v >= 10 ? `${v.toFixed(0)} ms` : `${v.toFixed(1)} ms`;
}

/** A latency; Infinity means the percentile falls among deliveries that never came. */
export function latency(v: number, f?: ReturnType<typeof figures>): string {
  return Number.isFinite(v) ? ms(v) : f ? `lost (${pct(f.missing)})` : 'lost';
}

function pct(v: number): string {
  return v === 0 ? '0%' : v < 0.001 ? '<0.1%' : `${(v * 100).toFixed(1)}%`;
}

export function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function rates(s: SessionResult): number[] {
  return [...new Set(s.phases.map((p) => p.rate))];
}

export function fanoutTable(sessions: readonly SessionResult[], clients: number): Table {
  const rows: Table = [['variant', 'events/s', 'deliveries/s (offered)', 'healthy p50', 'p99', 'p99.9', 'never delivered', 'event-loop delay p99 / max', 'server CPU', 'load-gen CPU']];
  for (const s of sessions) {
    for (const rate of rates(s)) {
      const f = at(s, rate, 0);
      rows.push([
        LABEL[s.variant],
        String(rate),
        `${fmtInt(f.deliveriesPerSec)} (${fmtInt(rate * clients)})`,
        latency(f.p50, f),
        latency(f.p99, f),
        latency(f.p999, f),
        pct(f.missing),
        `${ms(f.eldP99)} / ${ms(f.eldMax)}`,
        `${Math.round(f.serverCpu * 100)}%`,
        `${Math.round(f.clientCpu * 100)}%`,
      ]);
    }
  }
  return rows;
}

export function stallTable(sessions: readonly SessionResult[], windowMs: number): Table {
  const rows: Table = [['variant', 'events/s', 'stalled', 'healthy p50', 'p99', 'p99.9', 'p99 per second (median)', 'vs none stalled', 'stalled evicted', 'time to evict median / max', 'healthy closed', 'event-loop delay p99']];
  for (const s of sessions) {
    for (const rate of rates(s)) {
      const base = at(s, rate, 0);
      const counts = [...new Set(s.phases.filter((p) => p.rate === rate).map((p) => p.stalled))].sort((x, y) => x - y);
      for (const stalled of counts) {
        const f = at(s, rate, stalled);
        const share = s.phases.find((p) => p.rate === rate && p.stalled === stalled)!.share;
        const lost = s.phases.filter((p) => p.rate === rate && p.stalled === stalled).reduce((n, p) => n + p.healthyLost, 0);
        const ratio = Number.isFinite(f.p99Seconds) && Number.isFinite(base.p99Seconds) ? `${(f.p99Seconds / base.p99Seconds).toFixed(2)}×` : '—';
        rows.push([
          LABEL[s.variant],
          String(rate),
          stalled === 0 ? 'none (before + after)' : `${stalled} (${Math.round(share * 100)}%)`,
          latency(f.p50, f),
          latency(f.p99, f),
          latency(f.p999, f),
          latency(f.p99Seconds, f),
          stalled === 0 ? '1.00×' : ratio,
          stalled === 0 ? '—' : `${f.evicted} / ${stalled}`,
          stalled === 0 ? '—' : f.evicted === 0 ? `none within ${ms(windowMs)}` : `${ms(f.evictMedian)} / ${ms(f.evictMax)}`,
          String(lost),
          ms(f.eldP99),
        ]);
      }
    }
  }
  return rows;
}

/** The allowance of the aim: idle + 16 KB per client + 256 KiB per stalled client. */
export function rssBudget(clients: number, stalled: number): number {
  return clients * 16 * 1024 + stalled * 256 * 1024;
}

/** The last phase with the most clients stalled: the end of the stall window the memory aim is read at. */
export function worstStall(s: SessionResult): PhaseOutcome {
  const most = Math.max(...s.phases.map((p) => p.stalled));
  return s.phases.filter((p) => p.stalled === most).at(-1)!;
}

export function memoryTable(sessions: readonly SessionResult[], clients: number): Table {
  const rows: Table = [['variant', 'before clients', `idle, ${fmtInt(clients)} connected`, 'per client at idle', 'end of 10% stall window', 'above idle', 'allowance', 'within?', 'held for clients then']];
  for (const s of sessions) {
    const worst = worstStall(s);
    const above = worst.server.rss - s.rssIdle;
    const allowance = rssBudget(clients, worst.stalled);
    rows.push([
      LABEL[s.variant],
      mb(s.rssBare),
      mb(s.rssIdle),
      `${((s.rssIdle - s.rssBare) / clients / 1024).toFixed(1)} KB`,
      `${mb(worst.server.rss)} (${worst.rate} ev/s)`,
      mb(above),
      mb(allowance),
      above <= allowance ? 'yes' : 'no',
      mb(worst.server.heldBytes),
    ]);
  }
  return rows;
}

/** Median deliveries/s over a session's bursts. */
export function burstRate(s: SessionResult): number {
  return median(s.bursts.map((b) => figures([b], s.healthy).deliveriesPerSec));
}

export function burstTable(sessions: readonly SessionResult[], clients: number, events: number): Table {
  const rows: Table = [['variant', 'deliveries/s (median)', 'min – max', 'deliveries made', 'healthy closed', 'event-loop delay max (median)', 'server CPU', 'load-gen CPU']];
  for (const s of sessions) {
    const each = s.bursts.map((b) => figures([b], s.healthy));
    const per = each.map((f) => f.deliveriesPerSec);
    const made = median(s.bursts.map((b) => (b.stats?.deliveries ?? 0) / (events * clients)));
    rows.push([
      LABEL[s.variant],
      fmtInt(burstRate(s)),
      `${fmtInt(Math.min(...per))} – ${fmtInt(Math.max(...per))}`,
      pct(made),
      String(s.bursts.reduce((n, b) => n + b.healthyLost, 0)),
      ms(median(each.map((f) => f.eldMax))),
      `${Math.round(median(each.map((f) => f.serverCpu)) * 100)}%`,
      `${Math.round(median(each.map((f) => f.clientCpu)) * 100)}%`,
    ]);
  }
  return rows;
}
