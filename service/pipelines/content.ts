import { demoPipeline } from './demo.js';

/** The AI content automation: slow AI calls per item, some stages often empty. */
export const contentPipeline = demoPipeline('content', 'AI content automation: keywords to published posts', [
  { key: 'keywords_to_clusters', name: 'Keywords → Clusters', noun: 'Keyword', items: 10, credits: 0.2, ai: true },
  { key: 'clusters_to_ideas', name: 'Clusters → Ideas', noun: 'Cluster', items: 4, credits: 0.5, ai: true },
  { key: 'ideas_to_tasks', name: 'Ideas → Tasks', noun: 'Idea', items: 8, credits: 0.2, ai: true },
  { key: 'tasks_to_content', name: 'Tasks → Content', noun: 'Task', items: 8, credits: 2, ai: true },
  { key: 'content_to_image_prompts', name: 'Content → Image Prompts', noun: 'Article', items: 8, credits: 0.5, ai: true },
  { key: 'image_prompts_to_images', name: 'Image Prompts → Images', noun: 'Prompt', items: 0, credits: 1, ai: true },
  { key: 'review_to_publish', name: 'Review → Publish', noun: 'Post', items: 8, credits: 0, approval: true },
], {
  review: { title: 'Review before publishing', type: 'boolean', default: false, description: 'Hold Review → Publish until someone approves it (POST /runs/:id/approve)' },
  ai_limit: { title: 'Share the AI limit', type: 'boolean', default: false, description: 'The AI stages share the `demo_ai` limit with every run that sets it: 10 items a second, 4 at once' },
});
