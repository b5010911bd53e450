import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { withDiagram } from '../scripts/machines-diagram.js';

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
