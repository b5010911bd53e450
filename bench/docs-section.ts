import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

const PREAMBLE = `# Benchmarks

Numbers written by the bench scripts (\`npm run bench\` and friends). Each part owns the
text between its \`<!-- bench:<part>:start -->\` and \`<!-- bench:<part>:end -->\` markers and
rewrites only that; everything outside the markers is kept as it is.
`;

/**
 * Replaces the text between `<!-- bench:<part>:start -->` and `<!-- bench:<part>:end -->` in
 * the file (creating the file, or appending the section, when missing), leaving the rest alone.
 */
export function writeSection(path: string, part: string, body: string): void {
  const start = `<!-- bench:${part}:start -->`;
  const end = `<!-- bench:${part}:end -->`;
  const block = `${start}\n${body.trim()}\n${end}`;
  const text = existsSync(path) ? readFileSync(path, 'utf8') : PREAMBLE;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if ((i === -1) !== (j === -1) || j < i) {
    // A half-present section means someone edited the markers; guessing could eat their text.
    throw new Error(`${path}: the ${part} section's markers are broken; fix ${start} … ${end} by hand`);
  }
  const next = i === -1 ? `${text.trimEnd()}\n\n${block}\n` : text.slice(0, i) + block + text.slice(j + end.length);
  // Write then rename: a bench killed halfway never leaves a torn file for the other parts.
  writeFileSync(`${path}.tmp`, next);
  renameSync(`${path}.tmp`, path);
}
