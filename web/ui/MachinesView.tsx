'use client';
import { useMemo } from 'react';
import { machineGraph } from '../../machines/graph.js';
import { runMachine } from '../../machines/run.machine.js';
import { stageMachine } from '../../machines/stage.machine.js';
import type { RunView, StoredEvent } from '../lib/run-model.js';
import { Statechart } from './Statechart.js';

const RUN_GRAPH = machineGraph(runMachine);
const STAGE_GRAPH = machineGraph(stageMachine);

export interface MachineStates {
  run: string;
  stages: string[];
}

/** The machines' states as of `seq`, folded from the run's state changes. */
export function statesAt(events: readonly StoredEvent[], stages: number, seq: number): MachineStates {
  const states: MachineStates = { run: 'idle', stages: Array.from({ length: stages }, () => 'pending') };
  for (const e of events) {
    if (e.seq > seq) break;
    if (e.event !== 'state_change') continue;
    const to = e.payload.to_state;
    if (e.machine_name === 'run') states.run = to;
    const m = /^stage_(\d+)$/.exec(e.machine_name);
    if (m && Number(m[1]) <= stages) states.stages[Number(m[1]) - 1] = to;
  }
  return states;
}

/**
 * The run machine and the current stage's machine, drawn, with their active states; the last
 * transitions; and, when a transition of the log was picked, the machines as they were then.
 */
export function MachinesView({ run, events, at, onLive, onPick }: { run: RunView; events: readonly StoredEvent[]; at: number | null; onLive: () => void; onPick: (seq: number) => void }) {
  const live = at === null;
  const states = useMemo<MachineStates>(
    () => (live ? { run: run.status, stages: run.stages.map((s) => s.state) } : statesAt(events, run.stages.length, at)),
    [live, run, events, at],
  );
  const focus = live ? (run.current_stage ?? 1) : Math.max(1, states.stages.findLastIndex((s) => s !== 'pending') + 1);
  const recent = useMemo(
    () => events.filter((e): e is StoredEvent<'state_change'> => e.event === 'state_change' && (live || e.seq <= at!)).slice(-8).reverse(),
    [events, live, at],
  );
  return (
    <section className="machines" aria-label="Machines">
      <div className="row" style={{ justifyContent: 'space-between' }}>
        <h3>Machines {live ? '(live)' : `as of seq ${at}`}</h3>
        <div className="row">
          {/* A transition clicked in the log does the same; this is the way by keyboard. */}
          <label>
            As of seq{' '}
            <input
              type="number"
              min={1}
              max={run.last_seq}
              value={at ?? ''}
              placeholder="live"
              style={{ width: '7em' }}
              onChange={(e) => (e.target.value === '' ? onLive() : onPick(Math.max(1, Math.min(run.last_seq, Number(e.target.value)))))}
            />
          </label>
          {!live && <button type="button" onClick={onLive}>Back to live</button>}
        </div>
      </div>
      <div className="charts">
        <Statechart graph={RUN_GRAPH} active={states.run} title="run" />
        <Statechart graph={STAGE_GRAPH} active={states.stages[focus - 1] ?? null} title={`stage_${focus}`} />
      </div>
      <ol className="stage-states" aria-label="Stage machines">
        {states.stages.map((s, i) => (
          <li key={i} data-stage-machine={i + 1} data-state={s}>
            stage_{i + 1}: <strong>{s}</strong>
          </li>
        ))}
      </ol>
      <h3>Last transitions</h3>
      <div className="table-wrap" role="region" aria-label="Last transitions" tabIndex={0}>
      <table className="transitions">
        <tbody>
          {recent.map((e) => (
            <tr key={e.seq}>
              <td>{e.seq}</td>
              <td>{e.machine_name}</td>
              <td>{e.payload.from_state ?? '∅'} → {e.payload.to_state}</td>
              <td>{e.payload.event_trigger}</td>
              <td>{e.timestamp.slice(11, 23)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      </div>
    </section>
  );
}
