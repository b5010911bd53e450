// The machines as data: states and transitions read from their definitions, for the docs'
// diagrams and for anything that draws them. Pure: no I/O.
import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from 'xstate';

export interface GraphTransition {
  from: string;
  /** Equal to `from` for a transition that stays in its state. */
  to: string;
  /** The event type, `(always)` for an eventless transition. */
  event: string;
  guard: string | null;
}

export interface MachineGraph {
  id: string;
  initial: string;
  states: { name: string; final: boolean }[];
  transitions: GraphTransition[];
}

function guardName(guard: AnyTransitionDefinition['guard']): string | null {
  if (!guard) return null;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') return guard.name || 'guard';
  return guard.type ?? 'guard';
}

/** States and transitions of a flat machine (one level of states), in definition order. */
export function machineGraph(machine: AnyStateMachine): MachineGraph {
  const root: AnyStateNode = machine.root;
  const states: AnyStateNode[] = Object.values(root.states);
  const transitions: GraphTransition[] = [];
  for (const node of states) {
    const add = (t: AnyTransitionDefinition, event: string) => {
      const targets = t.target?.length ? t.target : [node];
      for (const target of targets) transitions.push({ from: node.key, to: target.key, event, guard: guardName(t.guard) });
    };
    for (const [event, list] of node.transitions) for (const t of list) add(t, event);
    for (const t of node.always ?? []) add(t, '(always)');
  }
  return {
    id: machine.id,
    initial: root.initial.target[0]?.key ?? states[0]!.key,
    states: states.map((s) => ({ name: s.key, final: s.type === 'final' })),
    transitions,
  };
}

/** A Mermaid `stateDiagram-v2` of the graph; transitions that stay in their state are left out. */
export function toMermaid(graph: MachineGraph): string {
  const lines = ['stateDiagram-v2', `  [*] --> ${graph.initial}`];
  for (const t of graph.transitions) {
    if (t.from === t.to) continue;
    const label = t.guard ? `${t.event} [${t.guard}]` : t.event;
    lines.push(`  ${t.from} --> ${t.to}: ${label}`);
  }
  for (const s of graph.states) if (s.final) lines.push(`  ${s.name} --> [*]`);
  return lines.join('\n');
}
