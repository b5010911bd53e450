// Pipeline options as JSON Schema (draft 2020-12): compiled once per pipeline with Ajv, the
// validator Fastify itself uses; a run's options are checked, defaults filled in, and a
// refusal names the field and the rule.
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { PipelineOptionsError, type AnyPipeline } from './types.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

/** A JSON Schema, as a plain object. */
export type OptionsSchema = Record<string, unknown>;

function makeAjv(): Ajv2020 {
  // strict: a misspelt keyword (`minimun`) is refused when the pipeline loads, not ignored.
  // Annotation keywords a form may use (`title`, `description`, `examples`, `default`,
  // `readOnly`, …) are part of 2020-12 already.
  const ajv = new Ajv2020({ allErrors: true, useDefaults: true, strict: true, strictRequired: false, allowUnionTypes: true });
  addFormats(ajv);
  return ajv;
}

const compiled = new WeakMap<object, ValidateFunction>();

export class OptionsSchemaError extends Error {}

/** Compiles an options schema; a schema Ajv refuses is an `OptionsSchemaError` saying why. */
export function compileOptionsSchema(schema: unknown): ValidateFunction {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
    throw new OptionsSchemaError('`options_schema` must be a JSON Schema object');
  }
  const cached = compiled.get(schema);
  if (cached) return cached;
  const type = (schema as OptionsSchema).type;
  if (type !== undefined && type !== 'object') {
    throw new OptionsSchemaError(`\`options_schema\` must describe an object (\`"type": "object"\`), not ${JSON.stringify(type)}`);
  }
  let validate: ValidateFunction;
  try {
    // One Ajv per schema: two pipelines' schemas may use the same `$id` without clashing.
    validate = makeAjv().compile(schema);
  } catch (err) {
    throw new OptionsSchemaError(`\`options_schema\` is not a valid JSON Schema (2020-12): ${err instanceof Error ? err.message : String(err)}`);
  }
  compiled.set(schema, validate);
  return validate;
}

/** `/items_per_stage/2` → `items_per_stage[2]`; the root is `options`. */
function fieldOf(instancePath: string, extra?: string): string {
  const parts = instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (extra !== undefined) parts.push(extra);
  if (parts.length === 0) return 'options';
  return parts.reduce((acc, p, i) => (/^\d+$/.test(p) && i > 0 ? `${acc}[${p}]` : i === 0 ? p : `${acc}.${p}`), '');
}

function describe(err: ErrorObject): string {
  const p = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'additionalProperties':
      return `\`${fieldOf(err.instancePath, String(p.additionalProperty))}\` is not a known option (rule \`additionalProperties\`)`;
    case 'required':
      return `\`${fieldOf(err.instancePath, String(p.missingProperty))}\` is required (rule \`required\`)`;
    default:
      return `\`${fieldOf(err.instancePath)}\` ${err.message ?? 'is not valid'} (rule \`${err.keyword}\`)`;
  }
}

/**
 * One sentence for the most telling of Ajv's errors: the deepest field; there, a rule of the
 * branch the value's type chose over the `type` errors of the other branches of a `oneOf`.
 */
export function explainOptionsErrors(errors: readonly ErrorObject[]): string {
  const real = errors.filter((e) => !['oneOf', 'anyOf', 'if'].includes(e.keyword));
  const pool = real.length > 0 ? real : [...errors];
  const depth = (e: ErrorObject) => e.instancePath.split('/').length + (e.keyword === 'required' || e.keyword === 'additionalProperties' ? 1 : 0);
  const deepest = Math.max(...pool.map(depth));
  const here = pool.filter((e) => depth(e) === deepest);
  const specific = here.find((e) => e.keyword !== 'type');
  if (specific) return describe(specific);
  const types = [...new Set(here.map((e) => String((e.params as { type?: unknown }).type)))];
  const first = here[0]!;
  return `\`${fieldOf(first.instancePath)}\` must be ${types.join(' or ')} (rule \`type\`)`;
}

/**
 * The options a run of `pipeline` gets: `raw` checked against its `options_schema` (defaults
 * filled in; `raw` itself is not changed), then through its `parseOptions`, if it has one.
 * Throws `PipelineOptionsError` naming the field and the rule.
 */
export function resolveOptions(pipeline: AnyPipeline, raw: unknown): { stored: Record<string, unknown>; options: unknown } {
  let value: unknown = raw === undefined || raw === null ? {} : structuredClone(raw);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new PipelineOptionsError('Expected `options` to be an object.');
  if (pipeline.options_schema !== undefined) {
    const validate = compileOptionsSchema(pipeline.options_schema);
    if (!validate(value)) {
      throw new PipelineOptionsError(`Invalid options for ${pipeline.name}: ${explainOptionsErrors(validate.errors ?? [])}.`);
    }
  }
  const stored = value as Record<string, unknown>;
  value = structuredClone(stored);
  return { stored, options: pipeline.parseOptions ? pipeline.parseOptions(value) : value };
}
