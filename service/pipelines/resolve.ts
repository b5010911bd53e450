// Makes `import … from 'runstate'` resolve, from a pipeline module anywhere on disk, to this
// service's package entry (service/pipelines/define.ts), before RUNSTATE_PIPELINES loads.
import { register } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

let registered = false;

export function registerRunstateResolver(): void {
  if (registered) return;
  registered = true;
  const entry = pathToFileURL(join(import.meta.dirname, 'define.ts')).href;
  register('./resolve-hook.ts', import.meta.url, { data: { entry } });
}
