'use client';
import { useEffect, useMemo, useState } from 'react';
import { api as makeApi } from '../../lib/api.js';
import { usualItemMs } from '../../lib/run-model.js';
import { takeToken } from '../../lib/token.js';
import { useRunStream } from '../../lib/use-run-stream.js';
import { ApprovalPanel } from '../../ui/ApprovalPanel.js';
import { ConnectionBadge } from '../../ui/ConnectionBadge.js';
import { Controls } from '../../ui/Controls.js';
import { DebugPanel } from '../../ui/DebugPanel.js';
import { EventLog } from '../../ui/EventLog.js';
import { MachinesView } from '../../ui/MachinesView.js';
import { ProcessingCard } from '../../ui/ProcessingCard.js';
import { RunInsights } from '../../ui/RunInsights.js';
import { StageTimeline } from '../../ui/StageTimeline.js';

function RunPage({ runId, token }: { runId: string; token: string }) {
  const api = useMemo(() => makeApi(token), [token]);
  const stream = useRunStream(runId, token, api);
  const [busy, setBusy] = useState(false);
  /** A transition picked in the log: the machines are shown as they were at its seq. */
  const [at, setAt] = useState<number | null>(null);
  const [commandError, setCommandError] = useState<string | null>(null);
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);
  const model = stream.model;
  const command = (c: string) => {
    setBusy(true);
    setCommandError(null);
    api
      .command(runId, c)
      .catch((err: Error) => setCommandError(err.message))
      .finally(() => setBusy(false));
  };
  const processing = model?.view.processing;
  const events = model?.log.events;
  const usual = useMemo(
    () => usualItemMs(events ?? [], processing?.stage_number, processing?.currently_processing.length ?? 1),
    [events, processing],
  );
  if (!model) {
    return (
      <>
        <ConnectionBadge state={stream.connection.state} since={stream.connection.since} now={now} stale={false} retryInMs={stream.connection.retryInMs} />
        <p>Loading run {runId}…</p>
        {stream.error && <p className="card-error" role="alert">{stream.error}</p>}
      </>
    );
  }
  const { run } = model.view;
  return (
    <>
      <div className="row" style={{ justifyContent: 'space-between' }}>
        <h1>{run.pipeline} · {run.run_id}</h1>
        <ConnectionBadge state={stream.connection.state} since={stream.connection.since} now={now} stale={stream.stale} retryInMs={stream.connection.retryInMs} />
      </div>
      <Controls allowed={run.allowed_commands} busy={busy} failedItems={run.failed_items} onCommand={command} />
      {commandError && <p className="card-error" role="alert">{commandError}</p>}
      <ApprovalPanel api={api} run={run} />
      <div className="grid">
        <div>
          <ProcessingCard run={run} processing={model.view.processing} inFlightSince={model.inFlightSince} usualItemMs={usual} now={now} onRetry={() => command('retry')} onClose={() => command('close')} />
          <h3>Events (click a transition to see the machines as they were)</h3>
          <EventLog events={model.log.events} onPick={(e) => e.event === 'state_change' && setAt(e.seq)} />
        </div>
        <StageTimeline run={run} />
      </div>
      <RunInsights api={api} run={run} processing={model.view.processing} events={model.log.events} seq={model.view.seq} now={now} />
      {/* The service's own machines; a run an engine elsewhere reports has its own (machine_name). */}
      {run.machine_name === null && <MachinesView run={run} events={model.log.events} at={at} onLive={() => setAt(null)} onPick={setAt} />}
      <DebugPanel view={model.view} events={model.log.events} connection={{ ...stream.connection, lastSeq: model.log.seq }} />
    </>
  );
}

export default function Run() {
  const [params, setParams] = useState<{ id: string; token: string | null } | null>(null);
  useEffect(() => {
    setParams({ id: new URL(window.location.href).searchParams.get('id') ?? '', token: takeToken() });
  }, []);
  if (!params) return null;
  if (!params.token) return <p>Open the URL the service printed (it carries a token: <code>/?token=…</code>).</p>;
  if (!params.id) return <p>No run given: open one from <a href="/">the runs</a>.</p>;
  return <RunPage runId={params.id} token={params.token} />;
}
