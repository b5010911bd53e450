/** Rows of cells, the first row the header; right-aligns every column but the first. */
export type Table = string[][];

export function textTable(rows: Table): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

export function markdownTable(rows: Table): string {
  const line = (r: string[]) => `| ${r.join(' | ')} |`;
  const rule = `|${rows[0]!.map((_, c) => (c === 0 ? '---' : '---:')).join('|')}|`;
  return [line(rows[0]!), rule, ...rows.slice(1).map(line)].join('\n');
}
