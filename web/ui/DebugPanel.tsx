import type { ServerView, StoredEvent } from '../lib/run-model.js';

/** For troubleshooting: what the page was told, raw. */
export function DebugPanel({ view, events, connection }: { view: ServerView; events: readonly StoredEvent[]; connection: unknown }) {
  return (
    <details className="debug">
      <summary>Debug</summary>
      <h4>Connection machine</h4>
      <pre>{JSON.stringify(connection, null, 2)}</pre>
      <h4>The server&apos;s last view (seq {view.seq}): current_processing</h4>
      <pre>{JSON.stringify(view.processing, null, 2)}</pre>
      <h4>Last events</h4>
      <pre>{events.slice(-20).map((e) => `${e.seq} ${e.event} ${JSON.stringify(e.event === 'state_change' ? e.payload : 'item' in e ? e.item : 'message' in e ? e.message : '')}`).join('\n')}</pre>
    </details>
  );
}
