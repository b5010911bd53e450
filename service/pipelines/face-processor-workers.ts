// The demo `face_processor`'s twin whose stages all run on workers of queue `faces`
// (docs/workers.md; `npm run demo:worker` starts one): a `.json` declaration, read and checked
// by the loader as RUNSTATE_PIPELINES files are, and registered beside the demo pipelines.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkPipeline } from './loader.js';
import type { AnyPipeline } from './types.js';

function declared(file: string): AnyPipeline {
  const checked = checkPipeline(JSON.parse(readFileSync(join(import.meta.dirname, file), 'utf8')), true);
  if ('problems' in checked) throw new Error(`${file}: ${checked.problems.join('; ')}`);
  return checked.pipeline;
}

export const faceProcessorWorkersPipeline = declared('face-processor-workers.json');
