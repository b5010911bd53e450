import { CONNECTION_LABEL, type ConnectionState } from '../lib/connection.machine.js';

/** Which state the connection is in, and since when: the page never pretends to be live. */
export function ConnectionBadge({ state, since, now, stale, retryInMs }: { state: ConnectionState; since: number; now: number; stale: boolean; retryInMs: number }) {
  const secs = Math.max(0, Math.round((now - since) / 1000));
  return (
    <div className={`conn conn-${state}`} role="status" aria-label="Connection" data-connection={state}>
      <span className="dot" /> {CONNECTION_LABEL[state]} · since {secs}s
      {state === 'reconnecting' ? ` · next try in ${Math.max(0, Math.round((since + retryInMs - now) / 1000))}s` : ''}
      {stale ? <span className="stale"> · showing the last known state (stale)</span> : null}
    </div>
  );
}
