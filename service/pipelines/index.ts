import { contentPipeline } from './content.js';
import { faceProcessorPipeline } from './face-processor.js';
import { faceProcessorWorkersPipeline } from './face-processor-workers.js';
import type { AnyPipeline } from './types.js';

export * from './types.js';
export { contentPipeline, faceProcessorPipeline, faceProcessorWorkersPipeline };

/** The pipelines `npm start` registers; face_processor_workers runs on workers (docs/workers.md). */
export const demoPipelines: readonly AnyPipeline[] = [contentPipeline, faceProcessorPipeline, faceProcessorWorkersPipeline];
