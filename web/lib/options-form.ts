// The start form's fields, from a pipeline's options schema (JSON Schema, as GET /pipelines
// gives it): numbers, booleans, choices and text get their own inputs; anything else (arrays,
// one-of) is typed as JSON. Pure; the service checks the options again against the schema.

export type FieldKind = 'number' | 'integer' | 'boolean' | 'choice' | 'text' | 'json';

export interface OptionField {
  name: string;
  label: string;
  description: string;
  kind: FieldKind;
  choices: string[];
  min?: number;
  max?: number;
  /** The schema's default, as the input shows it. */
  initial: string;
}

interface PropertySchema {
  title?: string;
  description?: string;
  type?: string | string[];
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  default?: unknown;
}

export function optionFields(schema: unknown): OptionField[] {
  const props = (schema as { properties?: Record<string, PropertySchema> } | null)?.properties;
  if (!props || typeof props !== 'object') return [];
  return Object.entries(props).map(([name, p]) => {
    const type = Array.isArray(p.type) ? p.type.find((t) => t !== 'null') : p.type;
    const kind: FieldKind =
      p.enum && p.enum.every((v) => typeof v === 'string') ? 'choice' : type === 'integer' ? 'integer' : type === 'number' ? 'number' : type === 'boolean' ? 'boolean' : type === 'string' ? 'text' : 'json';
    const initial = p.default === undefined ? '' : kind === 'json' ? JSON.stringify(p.default) : String(p.default);
    return {
      name,
      label: p.title ?? name,
      description: p.description ?? '',
      kind,
      choices: kind === 'choice' ? (p.enum as string[]) : [],
      ...(p.minimum === undefined ? {} : { min: p.minimum }),
      ...(p.maximum === undefined ? {} : { max: p.maximum }),
      initial,
    };
  });
}

/** What is wrong with one field's value as typed, or null: checked as the user types, before anything is sent. */
export function fieldError(f: OptionField, value: string): string | null {
  const raw = value.trim();
  if (f.kind === 'boolean' || raw === '') return null;
  if (f.kind === 'number' || f.kind === 'integer') {
    const n = Number(raw);
    if (!Number.isFinite(n) || (f.kind === 'integer' && !Number.isInteger(n))) return `${f.label} must be ${f.kind === 'integer' ? 'a whole number' : 'a number'}.`;
    if (f.min !== undefined && n < f.min) return `${f.label} must be at least ${f.min}.`;
    if (f.max !== undefined && n > f.max) return `${f.label} must be at most ${f.max}.`;
  } else if (f.kind === 'json') {
    try {
      JSON.parse(raw);
    } catch {
      return `${f.label} must be JSON, like ${f.initial || '[1, 2]'}.`;
    }
  }
  return null;
}

/** Every field's error, by field name (fields without one are left out). */
export function fieldErrors(fields: readonly OptionField[], values: Readonly<Record<string, string>>): Record<string, string> {
  const errors: Record<string, string> = {};
  for (const f of fields) {
    const err = fieldError(f, values[f.name] ?? f.initial);
    if (err) errors[f.name] = err;
  }
  return errors;
}

/**
 * The field the service's refusal names: an `INVALID_OPTIONS` message quotes the option in
 * backticks (``Invalid options for content: `fail_rate` must be <= 1 (rule `maximum`).``).
 */
export function fieldOfRefusal(fields: readonly OptionField[], message: string): string | null {
  for (const [, name] of message.matchAll(/`([^`]+)`/g)) if (fields.some((f) => f.name === name)) return name!;
  return null;
}

/** The options the form's values stand for; a field left empty is left out (its default applies). */
export function optionsFrom(fields: readonly OptionField[], values: Readonly<Record<string, string>>): { options: Record<string, unknown> } | { errors: Record<string, string> } {
  const errors = fieldErrors(fields, values);
  if (Object.keys(errors).length > 0) return { errors };
  const options: Record<string, unknown> = {};
  for (const f of fields) {
    const raw = (values[f.name] ?? f.initial).trim();
    if (f.kind === 'boolean') options[f.name] = raw === 'true';
    else if (raw === '') continue;
    else if (f.kind === 'number' || f.kind === 'integer') options[f.name] = Number(raw);
    else if (f.kind === 'json') options[f.name] = JSON.parse(raw);
    else options[f.name] = raw;
  }
  return { options };
}
