// What a part hands back, and how it reaches the console and its section of docs/benchmarks.md.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { fmtInt, median, range } from './stats.js';

/** Rows of cells, the first row the header; every column but the first is right-aligned. */
export type Table = string[][];

/** The tables printed to the console, and the part's docs/benchmarks.md section (below its heading and machine line). */
export type PartReport = { tables: Titled[]; markdown: string };

export interface BenchPart {
  /** Names the section's markers, `<!-- bench:<key>:start -->`, and `BENCH_PARTS`. */
  key: string;
  title: string;
  /** The script that owns the section, named in it. */
  source: string;
  run(): Promise<PartReport>;
}

export function textTable(rows: Table): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

function markdownTable(rows: Table): string {
  const line = (r: string[]) => `| ${r.join(' | ')} |`;
  return [line(rows[0]!), `|${rows[0]!.map((_, c) => (c === 0 ? '---' : '---:')).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}

/** A ratio against the baseline measured in the same run, with its verdict against an aim (`≥ aim`) when there is one. */
export function ratio(value: number, base: number, aim?: number): string {
  const r = value / base;
  return aim === undefined ? r.toFixed(2) : `${r.toFixed(2)} ${r >= aim ? `(meets ≥ ${aim})` : `(below ${aim})`}`;
}

/** A figure against an upper bound, `meets < 500 MB` or `above 500 MB` (`≤` when `inclusive`). */
export function under(value: number, bound: number, { unit = '', inclusive = false } = {}): string {
  const text = `${inclusive ? '≤' : '<'} ${fmtInt(bound)}${unit}`;
  return (inclusive ? value <= bound : value < bound) ? `meets ${text}` : `above ${text.slice(2)}`;
}

/** A table for the console (under `title`) and the docs. */
export type Titled = { title: string; rows: Table };

/** A part's report from its blocks in order: markdown (headings, paragraphs) and titled tables, each table printed and written. */
export function report(...blocks: (string | Titled)[]): PartReport {
  return {
    tables: blocks.filter((b) => typeof b !== 'string'),
    markdown: blocks.map((b) => (typeof b === 'string' ? b : markdownTable(b.rows))).join('\n\n'),
  };
}

/** A column of a table spec: its header, and the cell it makes of a row. */
export type Column<R> = readonly [header: string, cell: (row: R) => string];

/** A table spec rendered: the headers, then one line of cells per row. */
export function table<R>(columns: readonly Column<R>[], rows: readonly R[]): Table {
  return [columns.map(([header]) => header), ...rows.map((row) => columns.map(([, cell]) => cell(row)))];
}

/** The table of a throughput comparison: each variant's median rate and range, then the `more` columns (`med(v)`: a variant's median, for ratios). */
export function rateTable<V extends string>(samples: Record<V, readonly { perSec: number }[]>, [first, unit]: [string, string], more: (med: (v: V) => number) => Column<V>[] = () => []): Table {
  const of = (v: V) => samples[v].map((s) => s.perSec);
  const med = (v: V) => median(of(v));
  return table<V>([[first, (v) => v], [`${unit} (median)`, (v) => fmtInt(med(v))], ['min – max', (v) => range(of(v))], ...more(med)], Object.keys(samples) as V[]);
}

/** Replaces the text between a part's markers; the rest stays. */
export function writeSection(path: string, part: string, body: string): void {
  const start = `<!-- bench:${part}:start -->`;
  const end = `<!-- bench:${part}:end -->`;
  const block = `${start}\n${body.trim()}\n${end}`;
  const text = readFileSync(path, 'utf8');
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  // Missing or misplaced markers mean someone edited them; guessing could eat their text.
  if (i === -1 || j < i) throw new Error(`${path}: the ${part} section's markers are missing or broken; fix ${start} … ${end} by hand`);
  const next = text.slice(0, i) + block + text.slice(j + end.length);
  // Write then rename: a bench killed halfway never leaves a torn file.
  writeFileSync(`${path}.tmp`, next);
  renameSync(`${path}.tmp`, path);
}
