'use client';
import { useEffect, useMemo, useState } from 'react';
import { api as makeApi } from '../../lib/api.js';
import { allowedCommands } from '../../lib/run-model.js';
import { takeToken } from '../../lib/token.js';
import { useRunStream } from '../../lib/use-run-stream.js';
import { ConnectionBadge } from '../../ui/ConnectionBadge.js';
import { Controls } from '../../ui/Controls.js';
import { DebugPanel } from '../../ui/DebugPanel.js';
import { EventLog } from '../../ui/EventLog.js';
import { MachinesView } from '../../ui/MachinesView.js';
import { ProcessingCard } from '../../ui/ProcessingCard.js';
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
  // The stage's usual time per item: the mean gap between its finished items.
  const usual = useMemo(() => {
    const stage = model?.processing?.stage_number;
    const done = (model?.events ?? []).filter((e) => e.event === 'stage_item_processed' && e.stage === stage).slice(-20);
    if (done.length < 3) return null;
    const span = Date.parse(done[done.length - 1]!.timestamp) - Date.parse(done[0]!.timestamp);
    return (span / (done.length - 1)) * Math.max(1, model?.processing?.currently_processing.length ?? 1);
  }, [model]);
  if (!model) {
    return (
      <>
        <ConnectionBadge state={stream.connection.state} since={stream.connection.since} now={now} stale={false} retryInMs={stream.connection.retryInMs} />
        <p>Loading run {runId}…</p>
        {stream.error && <p className="card-error" role="alert">{stream.error}</p>}
      </>
    );
  }
  const pauseUnderWay = model.processing?.stage_state === 'pausing';
  return (
    <>
      <div className="row" style={{ justifyContent: 'space-between' }}>
        <h1>{model.run.pipeline} · {model.run.run_id}</h1>
        <ConnectionBadge state={stream.connection.state} since={stream.connection.since} now={now} stale={stream.stale} retryInMs={stream.connection.retryInMs} />
      </div>
      <Controls allowed={allowedCommands(model.run, pauseUnderWay)} busy={busy} onCommand={command} />
      {commandError && <p className="card-error" role="alert">{commandError}</p>}
      <div className="grid">
        <div>
          <ProcessingCard run={model.run} processing={model.processing} inFlightSince={model.inFlightSince} usualItemMs={usual} now={now} onRetry={() => command('retry')} onClose={() => command('close')} />
          <h3>Events (click a transition to see the machines as they were)</h3>
          <EventLog events={model.events} onPick={(e) => e.event === 'state_change' && setAt(e.seq)} />
        </div>
        <StageTimeline run={model.run} />
      </div>
      {model.run.pipeline !== 'external' && <MachinesView run={model.run} events={model.events} at={at} onLive={() => setAt(null)} />}
      <DebugPanel processing={stream.lastProcessing} events={model.events} connection={{ ...stream.connection, lastSeq: model.seq }} />
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
