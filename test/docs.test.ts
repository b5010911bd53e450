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
