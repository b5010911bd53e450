// What a run's persisted snapshot written by an earlier version becomes before it is restored.

interface PersistedChild {
  snapshot?: { value?: unknown; status?: string };
}

interface PersistedRun {
  children?: Record<string, PersistedChild | undefined>;
}

/**
 * Runs persisted before stages were spawned as they start (docs/machines.md) have every stage's
 * actor, most of them `pending`. A pending stage takes only `start_requested`, which spawns it
 * now, and its context is still its input: dropping it loses nothing, and the restored run holds
 * no actors for stages not started, like a new one. Any other snapshot is returned as it is.
 */
export function restorableRunSnapshot<T>(snapshot: T): T {
  const children = (snapshot as PersistedRun | null)?.children;
  if (!children) return snapshot;
  const pending = Object.keys(children).filter((id) => id.startsWith('stage.') && isPending(children[id]));
  if (pending.length === 0) return snapshot;
  const kept = Object.fromEntries(Object.entries(children).filter(([id]) => !pending.includes(id)));
  return { ...snapshot, children: kept };
}

function isPending(child: PersistedChild | undefined): boolean {
  return child?.snapshot?.value === 'pending' && child.snapshot.status === 'active';
}
