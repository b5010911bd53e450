import type { RunView } from '../lib/run-model.js';

/** Every stage of the run with its machine state and counts. */
export function StageTimeline({ run }: { run: RunView }) {
  return (
    <ol className="timeline" aria-label="Stages">
      {run.stages.map((s) => (
        <li key={s.number} className={`stage stage-${s.state}${run.current_stage === s.number ? ' stage-current' : ''}`} data-stage-state={s.state}>
          <span className="stage-num">{s.number}</span>
          <span className="stage-name">{s.name}</span>
          <span className="chip">{s.state}</span>
          <span className="stage-counts">
            {s.total_items === null ? '–' : `${s.processed_items}/${s.total_items}`}
            {s.failed_items ? ` · ${s.failed_items} failed` : ''}
          </span>
        </li>
      ))}
    </ol>
  );
}
