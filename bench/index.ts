// `npm run bench`: runs each part in turn, prints its tables, and rewrites its section of docs/benchmarks.md.
// `BENCH_PARTS=hub,ingest` runs only those; `--quick` (or BENCH_QUICK=1) runs all at tiny sizes and writes nothing.
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { browserPart } from './browser.js';
import { enginePart, inspectPart, integrationsPart } from './engine.js';
import { ROOT } from './harness/child.js';
import { textTable, writeSection, type BenchPart } from './harness/report.js';
import { QUICK } from './harness/stats.js';
import { hubPart } from './hub/index.js';
import { ingestPart } from './ingest.js';
import { scalePart } from './scale.js';
import { servicePart } from './service.js';
import { watchersPart } from './watchers.js';
import { workersPart } from './workers.js';

const DOCS = join(ROOT, 'docs', 'benchmarks.md');
const ALL: readonly BenchPart[] = [enginePart, hubPart, watchersPart, ingestPart, scalePart, servicePart, inspectPart, integrationsPart, workersPart, browserPart];

function selected(): readonly BenchPart[] {
  const keys = process.env.BENCH_PARTS?.split(',').map((k) => k.trim()).filter(Boolean);
  if (!keys?.length) return ALL;
  const unknown = keys.filter((k) => !ALL.some((p) => p.key === k));
  if (unknown.length) throw new TypeError(`Expected \`BENCH_PARTS\` to name parts among ${ALL.map((p) => p.key).join(', ')}, got ${unknown.map((k) => JSON.stringify(k)).join(', ')}.`);
  return ALL.filter((p) => keys.includes(p.key));
}

const cores = cpus();
const machine = `${cores[0]?.model.trim() ?? 'unknown CPU'}, ${cores.length} cores, Node ${process.version}, ${process.platform}/${process.arch}`;

for (const part of selected()) {
  process.stderr.write(`${part.title}${QUICK ? ' (quick)' : ''}…\n`);
  const started = performance.now();
  const loadBefore = loadavg()[0]!;
  const report = await part.run();
  const seconds = Math.round((performance.now() - started) / 1000);
  for (const t of report.tables) console.log(`\n${t.title}\n${textTable(t.rows)}`);
  if (QUICK) {
    process.stderr.write(`\n${part.title}: ran in ${seconds} s (quick: nothing written)\n`);
    continue;
  }
  const header = `## ${part.title}

_Written by \`npm run bench\` (${part.source}) on ${new Date().toISOString().slice(0, 10)} in ${seconds} s; do not edit
between the markers: the next run replaces it._

Machine: ${machine}. Load average (1 min) ${loadBefore.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end.`;
  writeSection(DOCS, part.key, `${header}\n\n${report.markdown}`);
  process.stderr.write(`\n${part.title}: written to docs/benchmarks.md\n`);
}
