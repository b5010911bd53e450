// Loads the pipelines named by RUNSTATE_PIPELINES (docs/pipelines.md): modules and `.json`
// declarations, each checked field by field before the service starts with any of them.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isName } from '../ids.js';
import { declaredLimits, limitProblems } from './limit.js';
import { OptionsSchemaError, compileOptionsSchema } from './schema.js';
import type { AnyPipeline, StageDefinition } from './types.js';

export const MODULE_EXTENSIONS = ['.ts', '.mts', '.js', '.mjs'] as const;
const EXTENSIONS: readonly string[] = [...MODULE_EXTENSIONS, '.json'];
/** The name `POST /runs` reserves for runs of engines outside the service (docs/ingest.md). */
const RESERVED = 'external';

const PIPELINE_FIELDS = ['name', 'description', 'options_schema', 'stages', 'retry', 'parseOptions', 'concurrencyOf', 'approvalOf', 'limitAppliesOf'];
const STAGE_FIELDS = ['key', 'name', 'concurrency', 'limit', 'approval', 'loadItems', 'processItem', 'queue', 'max_attempts', 'lease_ms'];
const JSON_PIPELINE_FIELDS = ['$schema', 'name', 'description', 'options_schema', 'stages'];
const JSON_STAGE_FIELDS = ['key', 'name', 'queue', 'concurrency', 'max_attempts', 'lease_ms', 'limit', 'approval'];

/** What `GET /pipelines` lists for one pipeline. */
export interface PipelineListing {
  name: string;
  description: string;
  stages: { number: number; key: string; name: string; queue?: string }[];
  /** `null`: the pipeline takes its options as given. */
  options_schema: Record<string, unknown> | null;
}

/** A pipeline loaded from a file. */
export interface LoadedPipeline {
  pipeline: AnyPipeline;
  file: string;
}

/** Every fault found, each naming its file; the service does not start with any of them. */
export class PipelineLoadError extends Error {
  readonly faults: readonly { file: string; message: string }[];

  constructor(faults: readonly { file: string; message: string }[]) {
    super(faults.map((f) => `${f.file}: ${f.message}`).join('\n'));
    this.name = 'PipelineLoadError';
    this.faults = faults;
  }
}

export function describePipeline(p: AnyPipeline): PipelineListing {
  return {
    name: p.name,
    description: p.description ?? '',
    stages: p.stages.map((s, i) => ({ number: i + 1, key: s.key, name: s.name, ...(s.queue !== undefined ? { queue: s.queue } : {}) })),
    options_schema: p.options_schema ?? null,
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function kind(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

function positiveInteger(v: unknown): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1;
}

/** Files a directory entry stands for: its pipeline files at the top level, in name order. */
function filesOf(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => {
      if (name.startsWith('.') || name.startsWith('_') || name.endsWith('.d.ts')) return false;
      if (/\.(test|spec)\.[^.]+$/.test(name)) return false;
      if (/^(package(-lock)?|tsconfig(\..*)?|jsconfig)\.json$/.test(name)) return false;
      return EXTENSIONS.includes(extname(name)) && statSync(join(dir, name)).isFile();
    })
    .sort()
    .map((name) => join(dir, name));
}

/** The files `RUNSTATE_PIPELINES` names, directories expanded. */
export function pipelineFiles(paths: readonly string[], cwd = process.cwd()): { files: string[]; faults: { file: string; message: string }[] } {
  const files: string[] = [];
  const faults: { file: string; message: string }[] = [];
  for (const entry of paths) {
    const path = resolve(cwd, entry);
    let isDir: boolean;
    try {
      isDir = statSync(path).isDirectory();
    } catch {
      faults.push({ file: path, message: 'no such file or directory' });
      continue;
    }
    if (isDir) files.push(...filesOf(path));
    else if (EXTENSIONS.includes(extname(path))) files.push(path);
    else faults.push({ file: path, message: `expected a ${EXTENSIONS.join(', ')} file or a directory of them` });
  }
  return { files: [...new Set(files)], faults };
}

function checkSchema(def: Record<string, unknown>, problems: string[]): void {
  if (def.options_schema === undefined) return;
  try {
    compileOptionsSchema(def.options_schema);
  } catch (err) {
    if (!(err instanceof OptionsSchemaError)) throw err;
    problems.push(err.message);
  }
}

function checkCommon(def: Record<string, unknown>, allowed: readonly string[], problems: string[]): void {
  for (const key of Object.keys(def)) if (!allowed.includes(key)) problems.push(`unknown field \`${key}\` (known: ${allowed.join(', ')})`);
  if (typeof def.name !== 'string') problems.push(`\`name\` must be a string, got ${kind(def.name)}`);
  else if (!isName(def.name)) problems.push(`\`name\` ${JSON.stringify(def.name)} must be 1–64 letters, digits, \`_\`, \`.\` or \`-\``);
  else if (def.name === RESERVED) problems.push(`\`name\` ${JSON.stringify(RESERVED)} is reserved for engines outside the service`);
  if (def.description !== undefined && typeof def.description !== 'string') problems.push(`\`description\` must be a string, got ${kind(def.description)}`);
  checkSchema(def, problems);
}

function checkStage(stage: unknown, n: number, allowed: readonly string[], json: boolean, keys: Set<string>, problems: string[]): void {
  const at = `stage ${n}`;
  if (!isObject(stage)) {
    problems.push(`${at} must be an object, got ${kind(stage)}`);
    return;
  }
  for (const key of Object.keys(stage)) if (!allowed.includes(key)) problems.push(`${at} has an unknown field \`${key}\` (known: ${allowed.join(', ')})`);
  if (typeof stage.key !== 'string' || !isName(stage.key)) problems.push(`${at} needs a \`key\` of 1–64 letters, digits, \`_\`, \`.\` or \`-\``);
  else if (keys.has(stage.key)) problems.push(`${at} repeats the key ${JSON.stringify(stage.key)}`);
  else keys.add(stage.key);
  if (typeof stage.name !== 'string' || stage.name.trim() === '') problems.push(`${at} needs a \`name\` (a non-empty string)`);
  const hasQueue = stage.queue !== undefined;
  if (hasQueue && (typeof stage.queue !== 'string' || !isName(stage.queue))) problems.push(`${at} has a \`queue\` that is not 1–64 letters, digits, \`_\`, \`.\` or \`-\``);
  if (json) {
    if (!hasQueue) problems.push(`${at} has no \`queue\` (a .json pipeline's stages all run on workers)`);
  } else if (stage.processItem === undefined && !hasQueue) {
    problems.push(`${at} has no \`processItem\` and no \`queue\``);
  } else if (stage.processItem !== undefined && hasQueue) {
    problems.push(`${at} has both \`processItem\` and \`queue\`; it runs either here or on workers`);
  } else if (!hasQueue) {
    if (typeof stage.processItem !== 'function') problems.push(`${at}'s \`processItem\` must be a function, got ${kind(stage.processItem)}`);
    if (typeof stage.loadItems !== 'function') problems.push(`${at} has no \`loadItems\` function`);
  } else if (stage.loadItems !== undefined && typeof stage.loadItems !== 'function') {
    problems.push(`${at}'s \`loadItems\` must be a function, got ${kind(stage.loadItems)}`);
  }
  for (const field of ['concurrency', 'max_attempts', 'lease_ms']) {
    if (stage[field] !== undefined && !positiveInteger(stage[field])) problems.push(`${at}'s \`${field}\` must be a positive integer`);
  }
  if (stage.limit !== undefined) for (const p of limitProblems(stage.limit)) problems.push(`${at}: ${p}`);
  if (stage.approval !== undefined && typeof stage.approval !== 'boolean') problems.push(`${at}'s \`approval\` must be true or false, got ${kind(stage.approval)}`);
}

function checkStages(def: Record<string, unknown>, allowed: readonly string[], json: boolean, problems: string[]): void {
  if (!Array.isArray(def.stages) || def.stages.length === 0) {
    problems.push(`\`stages\` must be a non-empty array, got ${Array.isArray(def.stages) ? 'an empty one' : kind(def.stages)}`);
    return;
  }
  const keys = new Set<string>();
  def.stages.forEach((stage, i) => checkStage(stage, i + 1, allowed, json, keys, problems));
}

function unbound(what: string): never {
  throw new Error(`${what} runs on workers: its queue is bound when the service starts (service/workers/bind.ts)`);
}

/**
 * A stage on a worker queue, as the engine holds it: its `loadItems` (a load job unless the
 * module gave one) and `processItem` are put in place by service/workers/bind.ts.
 */
function queueStage(stage: Record<string, unknown>): StageDefinition {
  const key = String(stage.key);
  const { max_attempts: maxAttempts, lease_ms: leaseMs, ...rest } = stage;
  const loadsInProcess = typeof stage.loadItems === 'function';
  return {
    ...(rest as unknown as StageDefinition),
    ...(typeof maxAttempts === 'number' ? { maxAttempts } : {}),
    ...(typeof leaseMs === 'number' ? { leaseMs } : {}),
    loadsInProcess,
    loadItems: loadsInProcess ? (stage.loadItems as StageDefinition['loadItems']) : async () => unbound(`loading stage ${key}`),
    processItem: async () => unbound(`stage ${key}`),
  };
}

/**
 * Checks one definition (a module's default export, or one of its array); returns the
 * pipeline or the list of what is wrong with it, field by field.
 */
export function checkPipeline(def: unknown, json = false): { pipeline: AnyPipeline } | { problems: string[] } {
  if (!isObject(def)) return { problems: [`expected a pipeline definition (an object with \`name\` and \`stages\`), got ${kind(def)}`] };
  const problems: string[] = [];
  checkCommon(def, json ? JSON_PIPELINE_FIELDS : PIPELINE_FIELDS, problems);
  checkStages(def, json ? JSON_STAGE_FIELDS : STAGE_FIELDS, json, problems);
  if (!json) {
    if (def.retry !== undefined && typeof def.retry !== 'function' && !isObject(def.retry)) problems.push('`retry` must be an object or a function of the options');
    for (const fn of ['parseOptions', 'concurrencyOf', 'approvalOf', 'limitAppliesOf']) if (def[fn] !== undefined && typeof def[fn] !== 'function') problems.push(`\`${fn}\` must be a function`);
  }
  if (problems.length > 0) return { problems };
  const stages = def.stages as Record<string, unknown>[];
  if (!stages.some((s) => s.queue !== undefined)) return { pipeline: def as unknown as AnyPipeline };
  const { $schema: _, ...rest } = def;
  return { pipeline: { ...(rest as unknown as AnyPipeline), stages: stages.map((s) => (s.queue !== undefined ? queueStage(s) : (s as unknown as StageDefinition))) } };
}

function reason(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

async function definitionsOf(file: string): Promise<{ defs: unknown[]; json: boolean } | { message: string }> {
  if (extname(file) === '.json') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      return { message: `cannot be read as JSON: ${reason(err)}` };
    }
    return { defs: [parsed], json: true };
  }
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    return { message: `failed to load: ${reason(err)}` };
  }
  if (!('default' in mod) || mod.default === undefined) {
    return { message: 'has no default export (expected a pipeline definition, or an array of them, as `export default`)' };
  }
  return { defs: Array.isArray(mod.default) ? mod.default : [mod.default], json: false };
}

/**
 * Loads and checks every pipeline the paths name; `taken` are names already registered
 * (the demo pipelines). Throws a `PipelineLoadError` listing every fault, file by file.
 */
export async function loadPipelines(paths: readonly string[], taken: readonly AnyPipeline[] = [], cwd = process.cwd()): Promise<LoadedPipeline[]> {
  const { files, faults } = pipelineFiles(paths, cwd);
  const loaded: LoadedPipeline[] = [];
  const names = new Map<string, string>(taken.map((p) => [p.name, 'runstate (built in)']));
  for (const file of files) {
    const got = await definitionsOf(file);
    if ('message' in got) {
      faults.push({ file, message: got.message });
      continue;
    }
    if (got.defs.length === 0) faults.push({ file, message: 'exports an empty array of pipelines' });
    got.defs.forEach((def, i) => {
      const which = got.defs.length > 1 ? `pipeline ${i + 1} of the default export: ` : '';
      const checked = checkPipeline(def, got.json);
      if ('problems' in checked) {
        const name = isObject(def) && typeof def.name === 'string' ? ` ${JSON.stringify(def.name)}` : '';
        faults.push({ file, message: `${which}not a pipeline${name}: ${checked.problems.join('; ')}` });
        return;
      }
      const { pipeline } = checked;
      const first = names.get(pipeline.name);
      if (first !== undefined) {
        faults.push({ file, message: `${which}a pipeline named ${JSON.stringify(pipeline.name)} is already defined in ${first}` });
        return;
      }
      names.set(pipeline.name, file);
      loaded.push({ pipeline, file });
    });
  }
  const stages = [
    ...taken.map((pipeline) => ({ pipeline, file: 'runstate (built in)' })),
    ...loaded,
  ].flatMap(({ pipeline, file }) => pipeline.stages.map((s, i) => ({ where: `pipeline ${JSON.stringify(pipeline.name)} stage ${i + 1}`, limit: s.limit, file })));
  const { problems } = declaredLimits(stages);
  for (const { stage, message } of problems) faults.push({ file: stage.file, message });
  if (faults.length > 0) throw new PipelineLoadError(faults);
  return loaded;
}
