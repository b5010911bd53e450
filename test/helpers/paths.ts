import type { AnyStateMachine, EventObject, Snapshot } from 'xstate';
import { createTestModel, getAdjacencyMap, type TraversalOptions } from 'xstate/graph';

export interface EdgePath<S, E> {
  description: string;
  /** Events to send, in order (the initial `xstate.init` left out), with the state each one must reach. */
  steps: { event: E; state: S }[];
}

/**
 * One path per edge of the machine's state graph: the shortest path to the edge's source,
 * then the edge. Simple paths visit every state; these take every transition.
 */
export function edgePaths<S extends Snapshot<unknown>, E extends EventObject>(
  machine: AnyStateMachine,
  options: TraversalOptions<S, E, unknown> & { serializeState: (s: S) => string },
): EdgePath<S, E>[] {
  const model = createTestModel(machine, { input: options.input } as never);
  const shortest = new Map<string, { event: E; state: S }[]>();
  for (const p of model.getShortestPaths({ ...options, allowDuplicatePaths: true } as never)) {
    const steps = (p.steps as unknown as { event: E; state: S }[]).filter((s) => s.event.type !== 'xstate.init');
    shortest.set(options.serializeState(p.state as unknown as S), steps);
  }
  const adjacency = getAdjacencyMap(machine, options as never) as unknown as Record<string, { transitions: Record<string, { event: unknown; state: unknown }> }>;
  const paths: EdgePath<S, E>[] = [];
  Object.entries(adjacency).forEach(([from, { transitions }], i) => {
    // The traversal starts at the initial state, reached by no event.
    const head = shortest.get(from) ?? (i === 0 ? [] : undefined);
    if (!head) throw new Error(`no shortest path to ${from}`);
    for (const { event, state } of Object.values(transitions)) {
      const steps = [...head, { event: event as unknown as E, state: state as unknown as S }];
      paths.push({ description: steps.map((s) => s.event.type).join(' → '), steps });
    }
  });
  return paths;
}
