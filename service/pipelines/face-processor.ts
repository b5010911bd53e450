import { demoPipeline } from './demo.js';

/** The media pipeline: one image through five machine states. */
export const faceProcessorPipeline = demoPipeline('face_processor', 'Media pipeline: portraits cropped, verified and inpainted', [
  { key: 'cropping_faces', name: 'cropping_faces', noun: 'Image', items: 12, credits: 0 },
  { key: 'verifying_portraits', name: 'verifying_portraits', noun: 'Portrait', items: 12, credits: 0 },
  { key: 'verifying_dimensions', name: 'verifying_dimensions', noun: 'Portrait', items: 12, credits: 0 },
  { key: 'detecting_faces', name: 'detecting_faces', noun: 'Portrait', items: 12, credits: 0.1 },
  { key: 'running_inpainting', name: 'running_inpainting', noun: 'Portrait', items: 12, credits: 1 },
]);
