// A pipeline whose stages all run on workers, from its declaration: the `.json` shape of
// DESIGN §10 ({name, description?, stages: [{key, name, queue, concurrency?, max_attempts?,
// lease_ms?}]}). Until the pipeline loader reads such files, the demo twin below is declared here.
import { PipelineOptionsError, type PipelineDefinition, type StageDefinition } from '../pipelines/types.js';

export interface DeclaredStage {
  key: string;
  name: string;
  queue: string;
  concurrency?: number;
  max_attempts?: number;
  lease_ms?: number;
}

export interface PipelineDeclaration {
  name: string;
  description?: string;
  stages: DeclaredStage[];
}

/** The options a declared pipeline's run takes: its own knobs here, everything else handed to the workers. */
export interface DeclaredOptions {
  [key: string]: unknown;
  concurrency?: number;
  max_attempts?: number;
  backoff_ms?: number;
}

function unbound(what: string): never {
  throw new Error(`${what} runs on a worker: the stage's queue is not bound (service/workers/bind.ts)`);
}

function knob(raw: Record<string, unknown>, name: string, min: number, max: number): number | undefined {
  const v = raw[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new PipelineOptionsError(`Expected \`${name}\` to be an integer between ${min} and ${max}, got ${JSON.stringify(v)}.`);
  }
  return v;
}

export function declaredPipeline(decl: PipelineDeclaration): PipelineDefinition<DeclaredOptions> {
  const stages: StageDefinition<DeclaredOptions>[] = decl.stages.map((s) => ({
    key: s.key,
    name: s.name,
    queue: s.queue,
    ...(s.concurrency === undefined ? {} : { concurrency: s.concurrency }),
    ...(s.lease_ms === undefined ? {} : { leaseMs: s.lease_ms }),
    loadItems: async () => unbound(`loading stage ${s.key}`),
    processItem: async () => unbound(`an item of stage ${s.key}`),
  }));
  const attempts = decl.stages.find((s) => s.max_attempts !== undefined)?.max_attempts;
  return {
    name: decl.name,
    ...(decl.description === undefined ? {} : { description: decl.description }),
    stages,
    parseOptions(raw: unknown): DeclaredOptions {
      if (raw === undefined || raw === null) return {};
      if (typeof raw !== 'object' || Array.isArray(raw)) throw new PipelineOptionsError('Expected `options` to be an object.');
      const obj = raw as Record<string, unknown>;
      knob(obj, 'concurrency', 1, 256);
      knob(obj, 'max_attempts', 1, 20);
      knob(obj, 'backoff_ms', 0, 600_000);
      return obj as DeclaredOptions;
    },
    concurrencyOf: (options) => options.concurrency,
    retry: (options) => ({
      ...(options.max_attempts ?? attempts) === undefined ? {} : { attempts: options.max_attempts ?? attempts },
      ...(options.backoff_ms === undefined ? {} : { backoffMs: options.backoff_ms }),
    }),
  };
}

/**
 * The demo `face_processor`'s twin whose five stages run on workers of queue `faces`
 * (`npm run demo:worker` starts one). Registered in code beside the demo pipelines until the
 * pipeline loader reads `.json` declarations; this is the declaration it will read.
 */
export const FACE_PROCESSOR_WORKERS: PipelineDeclaration = {
  name: 'face_processor_workers',
  description: 'The media pipeline, its stages run by workers of queue `faces`',
  stages: [
    { key: 'cropping_faces', name: 'cropping_faces', queue: 'faces', concurrency: 4 },
    { key: 'verifying_portraits', name: 'verifying_portraits', queue: 'faces', concurrency: 4 },
    { key: 'verifying_dimensions', name: 'verifying_dimensions', queue: 'faces', concurrency: 4 },
    { key: 'detecting_faces', name: 'detecting_faces', queue: 'faces', concurrency: 4 },
    { key: 'running_inpainting', name: 'running_inpainting', queue: 'faces', concurrency: 4 },
  ],
};

export const faceProcessorWorkersPipeline = declaredPipeline(FACE_PROCESSOR_WORKERS);
