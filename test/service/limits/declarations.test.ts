import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkDeclarations, LimitDeclarationError } from '../../../service/limits/index.js';
import { limitProblems, ratePerSecond, spacingMs } from '../../../service/pipelines/limit.js';
import { checkPipeline, loadPipelines, PipelineLoadError } from '../../../service/pipelines/loader.js';
import type { AnyPipeline } from '../../../service/pipelines/types.js';
import { tempDir } from '../../helpers/engine.js';

const stage = (limit: unknown) => ({ key: 'call', name: 'Call', queue: 'q', limit });
const declaration = (name: string, limit: unknown) => ({ name, stages: [stage(limit)] });

function problemsOf(limit: unknown): string[] {
  const checked = checkPipeline(declaration('p', limit), true);
  return 'problems' in checked ? checked.problems : [];
}

describe('limit declarations', () => {
  const dirs: { remove(): void }[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => d.remove()));

  it('takes a key with a rate, a concurrency, or both', () => {
    expect(problemsOf({ key: 'openai', per_second: 10 })).toEqual([]);
    expect(problemsOf({ key: 'openai', per_minute: 90, concurrency: 4 })).toEqual([]);
    expect(spacingMs({ key: 'k', per_second: 10, per_minute: 300 })).toBe(200);
    expect(ratePerSecond({ key: 'k', per_minute: 30 })).toBe(0.5);
    expect(ratePerSecond({ key: 'k', concurrency: 3 })).toBeNull();
  });

  it('refuses bad limits at load, naming the stage, the field and the value', () => {
    expect(problemsOf('openai')).toEqual(['stage 1: `limit` must be an object like {"key": "openai", "per_second": 10}']);
    expect(problemsOf({ per_second: 10 })).toEqual(['stage 1: `limit.key` must be 1–64 letters, digits, `_`, `.` or `-`']);
    expect(problemsOf({ key: 'openai' })).toEqual(['stage 1: `limit` must say at least one of `per_second`, `per_minute`, `concurrency`']);
    expect(problemsOf({ key: 'openai', per_second: 0 })).toEqual(['stage 1: `limit.per_second` must be a number above 0 and at most 100000, got 0']);
    expect(problemsOf({ key: 'openai', per_minute: '60' })).toEqual(['stage 1: `limit.per_minute` must be a number above 0 and at most 6000000, got "60"']);
    expect(problemsOf({ key: 'openai', concurrency: 1.5 })).toEqual(['stage 1: `limit.concurrency` must be a whole number from 1 to 100000, got 1.5']);
    expect(problemsOf({ key: 'openai', per_second: 5, burst: 3 })).toEqual(['stage 1: `limit` has an unknown field `burst` (known: key, per_second, per_minute, concurrency)']);
    expect(limitProblems({ key: 'a b', concurrency: 0 })).toHaveLength(2);
  });

  it('stops the service at start when two pipelines give one key different numbers, naming both', async () => {
    const dir = tempDir('rs-limit-decl-');
    dirs.push(dir);
    writeFileSync(join(dir.path, 'a.json'), JSON.stringify(declaration('first', { key: 'openai', per_second: 10 })));
    writeFileSync(join(dir.path, 'b.json'), JSON.stringify(declaration('second', { key: 'openai', per_second: 5 })));
    const err = await loadPipelines([dir.path]).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(PipelineLoadError);
    expect((err as PipelineLoadError).faults).toEqual([
      {
        file: join(dir.path, 'b.json'),
        message: 'pipeline "second" stage 1 declares the limit "openai" as {"per_second":5}, but pipeline "first" stage 1 declares it as {"per_second":10}: one key, one limit',
      },
    ]);
    writeFileSync(join(dir.path, 'b.json'), JSON.stringify(declaration('second', { key: 'openai', per_second: 10 })));
    expect((await loadPipelines([dir.path])).map((l) => l.pipeline.name)).toEqual(['first', 'second']);
  });

  it('checks the pipelines given in code too', () => {
    const bad = { name: 'coded', stages: [{ key: 's', name: 'S', limit: { key: 'k', per_second: -1 }, loadItems: async () => [], processItem: async () => {} }] } as unknown as AnyPipeline;
    expect(() => checkDeclarations([bad])).toThrow(LimitDeclarationError);
    expect(() => checkDeclarations([bad])).toThrow('pipeline "coded" stage 1: `limit.per_second` must be a number above 0 and at most 100000, got -1');
  });
});
