import type { AnyStateMachine, InspectionEvent } from 'xstate';

interface TransitionLike {
  source: { id: string };
  eventType: string;
  target?: readonly { id: string }[] | undefined;
}

interface NodeLike {
  id: string;
  states: Record<string, NodeLike>;
  transitions: Map<string, TransitionLike[]>;
  always?: TransitionLike[];
}

function key(t: TransitionLike, index: number): string {
  return `${t.source.id} --${t.eventType || '(always)'}#${index}--> ${(t.target ?? []).map((n) => n.id).join(',') || '(self)'}`;
}

/** Every transition of every state node of a machine, by a readable key. */
export function allTransitions(machine: AnyStateMachine): Set<string> {
  const keys = new Set<string>();
  const visit = (node: NodeLike) => {
    for (const list of node.transitions.values()) list.forEach((t, i) => keys.add(key(t, i)));
    (node.always ?? []).forEach((t, i) => keys.add(key(t, i)));
    Object.values(node.states).forEach(visit);
  };
  visit(machine.root as unknown as NodeLike);
  return keys;
}

/**
 * XState has no coverage API: collect the transitions each microstep took (`_transitions`
 * of `@xstate.microstep`), keyed like `allTransitions`.
 */
export function transitionCollector(machineId: string) {
  const taken = new Set<string>();
  const inspect = (ev: InspectionEvent) => {
    if (ev.type !== '@xstate.microstep') return;
    for (const t of ev._transitions as unknown as (TransitionLike & { source: NodeLike })[]) {
      if (!t.source.id.startsWith(machineId)) continue;
      const list = t.eventType ? t.source.transitions.get(t.eventType) : t.source.always;
      taken.add(key(t, list?.indexOf(t) ?? -1));
    }
  };
  return { taken, inspect };
}
