// A generated section of a doc page, between two HTML comment markers: spliced in, and written
// or checked from the command line (`--check` fails when the page is stale).
import { readFileSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';

export interface DocSection {
  /** The page, an absolute path. */
  doc: string;
  /** `machines:diagram` for `<!-- machines:diagram:start -->` … `<!-- machines:diagram:end -->`. */
  marker: string;
  /** The section's body (without its markers). */
  body: () => string;
  /** The npm script that regenerates it, named in messages. */
  script: string;
}

export function withSection(section: DocSection, text: string): string {
  const start = `<!-- ${section.marker}:start -->`;
  const end = `<!-- ${section.marker}:end -->`;
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from === -1 || to === -1) throw new Error(`${section.doc} has no ${start} … ${end} section`);
  return `${text.slice(0, from)}${start}\n${section.body()}\n${end}${text.slice(to + end.length)}`;
}

/** Writes the section into its page, or with `--check` exits 1 when the page is stale. */
export function writeOrCheck(section: DocSection, argv: readonly string[] = process.argv): void {
  const name = relative(process.cwd(), section.doc);
  const text = readFileSync(section.doc, 'utf8');
  const next = withSection(section, text);
  if (next === text) return;
  if (argv.includes('--check')) {
    console.error(`${name} is stale: run \`${section.script}\``);
    process.exit(1);
  }
  writeFileSync(section.doc, next);
  console.log(`${name}: ${section.marker} updated`);
}
