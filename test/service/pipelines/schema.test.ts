import { describe, expect, it } from 'vitest';
import { contentPipeline } from '../../../service/pipelines/content.js';
import { checkPipeline, describePipeline } from '../../../service/pipelines/loader.js';
import { compileOptionsSchema, resolveOptions } from '../../../service/pipelines/schema.js';
import type { AnyPipeline } from '../../../service/pipelines/types.js';

const stage = { key: 'a', name: 'A', loadItems: async () => [], processItem: async () => {} };

function problems(def: unknown, json = false): string[] {
  const checked = checkPipeline(def, json);
  return 'problems' in checked ? checked.problems : [];
}

describe('options schemas', () => {
  const pipeline: AnyPipeline = {
    name: 'p',
    stages: [stage],
    options_schema: {
      type: 'object',
      additionalProperties: false,
      required: ['to'],
      properties: {
        to: { type: 'string', format: 'email' },
        retries: { type: 'integer', minimum: 0, default: 2 },
        tags: { type: 'array', items: { type: 'string' }, default: [] },
        nested: { type: 'object', properties: { depth: { type: 'integer', maximum: 3 } } },
      },
    },
  };

  it('fills in the defaults without touching the options it was given', () => {
    const raw = { to: 'ops@example.com' };
    expect(resolveOptions(pipeline, raw)).toEqual({ stored: { to: 'ops@example.com', retries: 2, tags: [] }, options: { to: 'ops@example.com', retries: 2, tags: [] } });
    expect(raw).toEqual({ to: 'ops@example.com' });
  });

  it('names the field and the rule of the most telling error', () => {
    const message = (raw: unknown) => {
      try {
        resolveOptions(pipeline, raw);
      } catch (err) {
        return (err as Error).message;
      }
      return 'accepted';
    };
    expect(message({})).toBe('Invalid options for p: `to` is required (rule `required`).');
    expect(message({ to: 'not-mail' })).toBe('Invalid options for p: `to` must match format "email" (rule `format`).');
    expect(message({ to: 'a@b.co', tags: ['x', 3] })).toBe('Invalid options for p: `tags[1]` must be string (rule `type`).');
    expect(message({ to: 'a@b.co', nested: { depth: 9 } })).toBe('Invalid options for p: `nested.depth` must be <= 3 (rule `maximum`).');
    expect(message({ to: 'a@b.co', extra: 1 })).toBe('Invalid options for p: `extra` is not a known option (rule `additionalProperties`).');
    expect(message('x')).toBe('Expected `options` to be an object.');
  });

  it('runs the demo options through their schema and then into per-stage arrays', () => {
    const { stored, options } = resolveOptions(contentPipeline, { items_per_stage: 2, delay_ms: 0 });
    expect(stored).toMatchObject({ items_per_stage: 2, concurrency: 2, seed: 1, review: false });
    expect(options).toMatchObject({ items_per_stage: [2, 2, 2, 2, 2, 2, 2], concurrency: [2, 2, 2, 2, 2, 2, 2], delay_ms: 0 });
    expect(describePipeline(contentPipeline).options_schema).toBe(contentPipeline.options_schema);
  });

  it('refuses schemas that are not JSON Schema for an object, saying why', () => {
    expect(() => compileOptionsSchema({ type: 'array' })).toThrow('`options_schema` must describe an object (`"type": "object"`), not "array"');
    expect(() => compileOptionsSchema({ type: 'object', properties: { n: { type: 'integer', minimun: 1 } } })).toThrow(/strict mode: unknown keyword: "minimun"/);
    expect(() => compileOptionsSchema([])).toThrow('`options_schema` must be a JSON Schema object');
  });
});

describe('checking a definition', () => {
  it('takes a plain object with stages', () => {
    expect(checkPipeline({ name: 'ok', stages: [stage] })).toHaveProperty('pipeline');
  });

  it('names what is wrong, field by field', () => {
    expect(problems('pipeline')).toEqual(['expected a pipeline definition (an object with `name` and `stages`), got a string']);
    expect(problems({ stages: [stage] })).toEqual(['`name` must be a string, got nothing']);
    expect(problems({ name: 'external', stages: [stage] })).toEqual(['`name` "external" is reserved for engines outside the service']);
    expect(problems({ name: 'x', stages: [] })).toEqual(['`stages` must be a non-empty array, got an empty one']);
    expect(problems({ name: 'x', stages: [stage, { key: 'b', name: 'B', loadItems: async () => [] }] })).toEqual(['stage 2 has no `processItem` and no `queue`']);
    expect(problems({ name: 'x', stages: [{ ...stage, queue: 'q' }] })).toEqual(['stage 1 has both `processItem` and `queue`; it runs either here or on workers']);
    expect(problems({ name: 'x', stages: [stage, { ...stage }] })).toEqual(['stage 2 repeats the key "a"']);
    expect(problems({ name: 'x', stages: [{ ...stage, concurrency: 0 }] })).toEqual(["stage 1's `concurrency` must be a positive integer"]);
    expect(problems({ name: 'x', stage: [stage], stages: [stage] })[0]).toMatch(/^unknown field `stage` \(known: name, description, options_schema, stages/);
  });

  it('holds .json declarations to stages on queues', () => {
    expect(problems({ name: 'j', stages: [{ key: 'a', name: 'A' }] }, true)).toEqual(["stage 1 has no `queue` (a .json pipeline's stages all run on workers)"]);
    expect(problems({ name: 'j', stages: [{ key: 'a', name: 'A', queue: 'q', processItem: 1 }] }, true)[0]).toMatch(/^stage 1 has an unknown field `processItem`/);
    const checked = checkPipeline({ $schema: 'x', name: 'j', stages: [{ key: 'a', name: 'A', queue: 'q' }] }, true);
    expect('pipeline' in checked && describePipeline(checked.pipeline)).toEqual({
      name: 'j',
      description: '',
      stages: [{ number: 1, key: 'a', name: 'A', queue: 'q' }],
      options_schema: null,
    });
  });
});
