import type { Table } from './table.js';

/** What one part of the bench hands back to bench/index.ts. */
export interface PartReport {
  /** Printed to the console, one after another. */
  tables: { title: string; rows: Table }[];
  /** The part's docs/benchmarks.md section, below the heading and the machine line. */
  markdown: string;
}

export interface BenchPart {
  /** Names the section's markers: `<!-- bench:<key>:start -->`. */
  key: string;
  /** The section's heading. */
  title: string;
  /** The script that owns the section, named in it. */
  source: string;
  run(): Promise<PartReport>;
}
