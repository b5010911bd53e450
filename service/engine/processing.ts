// Which runs show a processing card, and the card of one: the rule `GET /current_processing/`
// and the hub's views both follow (docs/api.md).
import type { Engine } from './engine.js';
import type { ProcessingView, RunView } from './view.js';

const FIRST_CHOICE = new Set(['running', 'paused']);
const ALSO_SHOWN = new Set(['failed', 'completed']);

/** The card of one run as `GET /current_processing/?run_id=` answers it; null when it shows none (cancelled). */
export async function processingOf(engine: Pick<Engine, 'currentProcessing'>, run: RunView): Promise<(ProcessingView & { run_id: string }) | null> {
  const data = ALSO_SHOWN.has(run.status) || FIRST_CHOICE.has(run.status) ? await engine.currentProcessing(run.run_id) : undefined;
  return data ? { run_id: run.run_id, ...data } : null;
}

/** A site's current run, from its open runs newest first: the newest running or paused one, else the newest failed or completed one. */
export function pickCurrentRun(runs: readonly RunView[]): RunView | undefined {
  return runs.find((r) => FIRST_CHOICE.has(r.status)) ?? runs.find((r) => ALSO_SHOWN.has(r.status));
}
