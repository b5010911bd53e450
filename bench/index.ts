// `npm run bench`: runs each part in turn, prints its tables, and rewrites its section of
// docs/benchmarks.md. Other parts (hub, ingest, postgres, browser) plug in as BenchParts.
import { cpus } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSection } from './docs-section.js';
import { enginePart } from './engine.js';
import type { BenchPart } from './part.js';
import { textTable } from './table.js';

const DOCS = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'benchmarks.md');
const PARTS: readonly BenchPart[] = [enginePart];

function machine(): string {
  const cores = cpus();
  return `${cores[0]?.model.trim() ?? 'unknown CPU'}, ${cores.length} cores, Node ${process.version}, ${process.platform}/${process.arch}`;
}

async function main(): Promise<void> {
  for (const part of PARTS) {
    process.stderr.write(`${part.title}…\n`);
    const started = performance.now();
    const report = await part.run();
    const seconds = Math.round((performance.now() - started) / 1000);
    for (const t of report.tables) console.log(`\n${t.title}\n${textTable(t.rows)}`);
    const header = `## ${part.title}

_Written by \`npm run bench\` (${part.source}) on ${new Date().toISOString().slice(0, 10)} in ${seconds} s; do not edit
between the markers: the next run replaces it._

Machine: ${machine()}.`;
    writeSection(DOCS, part.key, `${header}\n\n${report.markdown}`);
    process.stderr.write(`\n${part.title}: written to docs/benchmarks.md\n`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
