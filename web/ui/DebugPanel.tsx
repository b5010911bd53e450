import type { ProcessingView, StoredEvent } from '../lib/run-model.js';

/** For troubleshooting: what the page was told, raw. */
export function DebugPanel({ processing, events, connection }: { processing: ProcessingView | null; events: readonly StoredEvent[]; connection: unknown }) {
  return (
    <details className="debug">
      <summary>Debug</summary>
      <h4>Connection machine</h4>
      <pre>{JSON.stringify(connection, null, 2)}</pre>
      <h4>current_processing (last response)</h4>
      <pre>{JSON.stringify(processing, null, 2)}</pre>
      <h4>Last events</h4>
      <pre>{events.slice(-20).map((e) => `${e.seq} ${e.event} ${JSON.stringify(e.event === 'state_change' ? e.payload : 'item' in e ? e.item : e.event === 'activity_log' ? e.message : '')}`).join('\n')}</pre>
    </details>
  );
}
