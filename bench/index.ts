// `npm run bench`: runs each part in turn, prints its tables, and rewrites its section of
// docs/benchmarks.md. Other parts (hub, ingest, postgres, browser) plug in as BenchParts.
import { cpus } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSection } from './docs-section.js';
import { enginePart } from './engine.js';
import { browserPart } from './browser.js';
import { hubPart } from './hub.js';
import { ingestPart } from './ingest.js';
import { inspectPart } from './inspect.js';
import type { BenchPart } from './part.js';
import { scalePart } from './scale.js';
import { textTable } from './table.js';
import { workersPart } from './workers.js';

const DOCS = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'benchmarks.md');
const ALL_PARTS: readonly BenchPart[] = [enginePart, hubPart, ingestPart, scalePart, inspectPart, browserPart, workersPart];

/** `BENCH_PARTS=hub npm run bench` runs only the parts named (comma-separated); unset, all of them. */
function selectedParts(): readonly BenchPart[] {
  const raw = process.env.BENCH_PARTS?.trim();
  if (!raw) return ALL_PARTS;
  const keys = raw.split(',').map((k) => k.trim());
  const unknown = keys.filter((k) => !ALL_PARTS.some((p) => p.key === k));
  if (unknown.length > 0) {
    throw new TypeError(`Expected \`BENCH_PARTS\` to name parts among ${ALL_PARTS.map((p) => p.key).join(', ')}, got ${unknown.map((k) => JSON.stringify(k)).join(', ')}.`);
  }
  return ALL_PARTS.filter((p) => keys.includes(p.key));
}

function machine(): string {
  const cores = cpus();
  return `${cores[0]?.model.trim() ?? 'unknown CPU'}, ${cores.length} cores, Node ${process.version}, ${process.platform}/${process.arch}`;
}

async function main(): Promise<void> {
  for (const part of selectedParts()) {
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
