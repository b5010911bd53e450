import { contentPipeline } from './content.js';
import { faceProcessorPipeline } from './face-processor.js';
import type { AnyPipeline } from './types.js';

export * from './types.js';
export { contentPipeline, faceProcessorPipeline };

/** The pipelines `npm start` registers. */
export const demoPipelines: readonly AnyPipeline[] = [contentPipeline, faceProcessorPipeline];
