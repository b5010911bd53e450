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

/** The options the form's values stand for; a field left empty is left out (its default applies). */
export function optionsFrom(fields: readonly OptionField[], values: Readonly<Record<string, string>>): { options: Record<string, unknown> } | { error: string } {
  const options: Record<string, unknown> = {};
  for (const f of fields) {
    const raw = (values[f.name] ?? f.initial).trim();
    if (f.kind === 'boolean') {
      options[f.name] = raw === 'true';
      continue;
    }
    if (raw === '') continue;
    if (f.kind === 'number' || f.kind === 'integer') {
      const n = Number(raw);
      if (!Number.isFinite(n) || (f.kind === 'integer' && !Number.isInteger(n))) return { error: `${f.label} must be ${f.kind === 'integer' ? 'a whole number' : 'a number'}.` };
      options[f.name] = n;
    } else if (f.kind === 'json') {
      try {
        options[f.name] = JSON.parse(raw);
      } catch {
        return { error: `${f.label} must be JSON, like ${f.initial || '[1, 2]'}.` };
      }
    } else options[f.name] = raw;
  }
  return { options };
}
