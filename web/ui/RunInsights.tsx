'use client';
import { useMemo, useRef, useState } from 'react';
import type { Api } from '../lib/api.js';
import { durationHistogram, finishTimes, stageDurations, stageEta, stageStartedAt, throughputPerMinute } from '../lib/items-model.js';
import type { ProcessingView, RunView, StoredEvent } from '../lib/run-model.js';
import { formatDuration } from '../lib/runs-list.js';
import { Chart } from './Chart.js';
import { ItemsTable } from './ItemsTable.js';

/** The run's items (of the current stage, or one picked), its throughput and ETA, and how long items take. */
export function RunInsights({ api, run, processing, events, seq, now }: { api: Api; run: RunView; processing: ProcessingView | null; events: readonly StoredEvent[]; seq: number; now: number }) {
  const [picked, setPicked] = useState<number | null>(null);
  const current = processing?.stage_number ?? run.current_stage ?? 1;
  const stage = picked ?? current;

  // The log grows by the frame under load: the charts and the ETA read it when the view moves
  // on (at most 10 a second) or the clock ticks (once a second), not at every event.
  const eventsRef = useRef(events);
  eventsRef.current = events;
  const moving = run.status === 'running';
  const eta = useMemo(() => {
    if (!processing || !moving) return null;
    const remaining = Math.max(0, processing.total_items - processing.processed_items);
    // Recomputed each second (`now`) and on every view or event, each time as of this instant.
    const at = Date.now();
    const log = eventsRef.current;
    const e = stageEta({ finished: finishTimes(log, processing.stage_number), startedAt: stageStartedAt(log, processing.stage_number), remaining, now: at });
    if (!e) return null;
    // The run's ETA needs every stage's size: stages not loaded yet leave it open.
    const later = run.stages.filter((s) => s.number > processing.stage_number);
    const known = later.every((s) => s.total_items !== null);
    const laterItems = later.reduce((n, s) => n + (s.total_items ?? 0) - s.processed_items, 0);
    return { ...e, at, runMs: known ? e.stageMs + (laterItems / e.perMinute) * 60_000 : null };
  }, [processing, moving, now, run.stages]);

  // What the view says of the stage's items, for the table's first read (the rest counted as pending).
  const shownStage = run.stages.find((s) => s.number === stage);
  const [total, finished, failed] = [shownStage?.total_items ?? null, shownStage?.processed_items ?? 0, shownStage?.failed_items ?? 0];
  const hint = useMemo(() => (total === null ? undefined : { failed, processed: finished - failed, pending: Math.max(0, total - finished) }), [total, finished, failed]);

  const throughput = useMemo(() => throughputPerMinute(finishTimes(eventsRef.current), now), [now, seq]);
  // From the item events the page holds (its last ones), not from every item of the stage.
  const durations = useMemo(() => stageDurations(eventsRef.current, stage), [stage, seq]);
  const histogram = useMemo(() => durationHistogram(durations), [durations]);
  const finishedPerMin = throughput[1];

  return (
    <section className="insights" aria-label="Items and throughput">
      <div className="row" style={{ justifyContent: 'space-between' }}>
        <h2>Items</h2>
        <label>
          Stage{' '}
          <select value={stage} onChange={(e) => setPicked(Number(e.target.value) === current ? null : Number(e.target.value))} aria-label="Stage of the items">
            {run.stages.map((s) => (
              <option key={s.number} value={s.number}>
                {s.number}. {s.name}{s.number === current ? ' (current)' : ''}
              </option>
            ))}
          </select>
        </label>
      </div>
      <p className="eta" data-eta-ms={eta ? Math.round(eta.stageMs) : undefined} data-eta-at={eta?.at}>
        {eta
          ? `Stage ${processing!.stage_number} ETA: about ${formatDuration(eta.stageMs)} at ${eta.perMinute.toFixed(1)} items/min · run ETA: ${eta.runMs === null ? 'later stages not loaded yet' : `about ${formatDuration(eta.runMs)}`}`
          : moving
            ? 'ETA: once a few items have finished.'
            : `ETA: none while the run is ${run.status}.`}
      </p>
      <ItemsTable api={api} runId={run.run_id} stage={run.stages.length ? stage : null} seq={seq} hint={hint} />
      <div className="plots">
        <Chart
          kind="line-time"
          data={throughput}
          label="Throughput: items finished per minute"
          xLabel="time"
          yLabel="items / min"
          summary={finishedPerMin.length ? `Last minute: ${finishedPerMin[finishedPerMin.length - 1]} items; most in a minute: ${Math.max(...finishedPerMin)}.` : 'No item has finished yet.'}
        />
        <Chart
          kind="bars"
          data={histogram}
          label={`Item durations, stage ${stage}`}
          xLabel="ms"
          yLabel="items"
          summary={durations.length ? `${durations.length} recent items; fastest ${Math.min(...durations)} ms, slowest ${Math.max(...durations)} ms.` : 'No item durations yet.'}
        />
      </div>
    </section>
  );
}
