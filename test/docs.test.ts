import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { withDiagram } from '../scripts/machines-diagram.js';

const ROOT = join(import.meta.dirname, '..');

describe('docs', () => {
  it('shows the machines as they are defined (npm run machines:diagram)', () => {
    const doc = readFileSync(join(import.meta.dirname, '..', 'docs', 'architecture.md'), 'utf8');
    expect(doc).toBe(withDiagram(doc));
  });
});

describe('machine export for the Stately editor', () => {
  it('matches the machines as defined (npm run machines:export)', async () => {
    const { exportFiles } = await import('../scripts/machines-export.js');
    for (const [name, text] of Object.entries(exportFiles())) {
      expect(readFileSync(join(import.meta.dirname, '..', 'docs', 'machines', name), 'utf8'), name).toBe(text);
    }
  });
});

describe('error table', () => {
  it('lists every error code in docs/api.md with its status and close code', async () => {
    const { ERROR_CODES } = await import('../service/errors.js');
    const doc = readFileSync(join(import.meta.dirname, '..', 'docs', 'api.md'), 'utf8');
    for (const [code, spec] of Object.entries(ERROR_CODES)) {
      const close = 'wsClose' in spec ? String(spec.wsClose) : '';
      expect(doc, code).toContain(`| ${spec.http} | \`${code}\` | ${close}${close ? ' ' : ''}|`);
    }
  });
});

describe('module map', () => {
  it('shows the modules as they import each other (npm run modules:diagram)', async () => {
    const { withDiagram: withModules } = await import('../scripts/modules-diagram.js');
    const doc = readFileSync(join(import.meta.dirname, '..', 'docs', 'architecture.md'), 'utf8');
    expect(doc).toBe(withModules(doc));
  });

  it('has no cycle: no module imports back up the chain', async () => {
    const { moduleGraph } = await import('../scripts/modules-diagram.js');
    const graph = moduleGraph();
    const state = new Map<string, 'open' | 'done'>();
    const cycles: string[] = [];
    const visit = (node: string, path: string[]) => {
      if (state.get(node) === 'done') return;
      if (state.get(node) === 'open') return void cycles.push([...path.slice(path.indexOf(node)), node].join(' → '));
      state.set(node, 'open');
      for (const next of graph.get(node) ?? []) visit(next, [...path, node]);
      state.set(node, 'done');
    };
    for (const node of graph.keys()) visit(node, []);
    expect(cycles).toEqual([]);
  });
});

describe('citations', () => {
  it('cites the project’s own docs/: no file in the repository points at a design document it does not hold', () => {
    const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' }).split('\0');
    const texts = tracked.filter((f) => /\.(ts|tsx|mjs|js|py|md|json)$/.test(f) && f !== 'test/docs.test.ts');
    const citing = texts.filter((f) => /DESIGN(\.md| ?§)/.test(readFileSync(join(ROOT, f), 'utf8')));
    expect(citing).toEqual([]);
  });
});
