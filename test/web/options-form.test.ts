import { describe, expect, it } from 'vitest';
import { optionFields, optionsFrom } from '../../web/lib/options-form.js';

const schema = {
  type: 'object',
  properties: {
    seed: { title: 'Seed', type: 'integer', minimum: 0, default: 1 },
    fail_rate: { title: 'Failure rate', type: 'number', minimum: 0, maximum: 1, default: 0 },
    review: { type: 'boolean', default: false, description: 'Wait for approval before publishing' },
    tone: { type: 'string', enum: ['dry', 'warm'], default: 'dry' },
    note: { type: 'string' },
    items_per_stage: { title: 'Items per stage', oneOf: [{ type: 'integer' }, { type: 'array' }], default: [10, 4] },
  },
};

describe('start form from an options schema', () => {
  it('gives each option an input of its kind, with the schema’s default', () => {
    const fields = optionFields(schema);
    expect(fields.map((f) => [f.name, f.kind, f.initial])).toEqual([
      ['seed', 'integer', '1'],
      ['fail_rate', 'number', '0'],
      ['review', 'boolean', 'false'],
      ['tone', 'choice', 'dry'],
      ['note', 'text', ''],
      ['items_per_stage', 'json', '[10,4]'],
    ]);
    expect(fields[1]).toMatchObject({ label: 'Failure rate', min: 0, max: 1 });
    expect(fields[3]!.choices).toEqual(['dry', 'warm']);
    expect(optionFields(undefined)).toEqual([]);
  });

  it('turns the values into options, leaving empty ones to their defaults, and names a bad field', () => {
    const fields = optionFields(schema);
    expect(optionsFrom(fields, { seed: '7', review: 'true', items_per_stage: '[1, 0]' })).toEqual({
      options: { seed: 7, fail_rate: 0, review: true, tone: 'dry', items_per_stage: [1, 0] },
    });
    expect(optionsFrom(fields, { seed: '1.5' })).toEqual({ error: 'Seed must be a whole number.' });
    expect(optionsFrom(fields, { items_per_stage: '[1,' })).toEqual({ error: 'Items per stage must be JSON, like [10,4].' });
  });
});
