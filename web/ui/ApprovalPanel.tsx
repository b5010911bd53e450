'use client';
// The run page's approval gate: what waits for whom, a reason, and Approve / Reject.
import { useEffect, useId, useState } from 'react';
import type { Api } from '../lib/api.js';
import { approvalGate, reasonOf } from '../lib/approval.js';
import type { RunView } from '../lib/run-model.js';
import { ConfirmButton } from './ConfirmButton.js';

const PREVIEW = 5;

interface Preview {
  stage: number;
  total: number | null;
  titles: string[];
}

/**
 * The run's approval gate (docs/api.md, "Approval"): the stage that waits, what it will process
 * when the items API knows, a reason, and Approve / Reject as `allowed_commands` allows them.
 * It renders the server's view only: once a command is taken, the next view frame moves the
 * run on and the panel goes away; a refusal is said here.
 */
export function ApprovalPanel({ api, run }: { api: Api; run: RunView }) {
  const gate = approvalGate(run);
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  /** The view's seq when a command was taken: the buttons wait for the view to move on from it. */
  const [takenAt, setTakenAt] = useState<number | null>(null);
  const [preview, setPreview] = useState<Preview | null>(null);
  const reasonId = useId();
  const stage = gate?.stage ?? null;

  useEffect(() => {
    if (stage === null) return;
    let stopped = false;
    api.items(run.run_id, { stage, limit: PREVIEW }).then(
      (page) => !stopped && setPreview({ stage, total: page.total_items, titles: page.data.map((i) => i.title) }),
      // Without a preview the gate still works: the panel says the items load on approval.
      () => !stopped && setPreview({ stage, total: null, titles: [] }),
    );
    return () => {
      stopped = true;
    };
  }, [api, run.run_id, stage]);

  if (!gate) return null;
  const seq = run.last_seq;
  const send = (command: 'approve' | 'reject') => {
    setBusy(true);
    setError(null);
    api
      .command(run.run_id, command, reasonOf(reason))
      .then(
        () => (setReason(''), setTakenAt(seq)),
        (err: Error) => setError(`${command === 'approve' ? 'Approve' : 'Reject'} failed: ${err.message}`),
      )
      .finally(() => setBusy(false));
  };
  const off = busy || takenAt === seq;
  const shown = preview?.stage === gate.stage ? preview : null;
  const total = shown?.total ?? gate.totalItems;
  return (
    <section className="approval" aria-labelledby={`${reasonId}-title`} data-approval-stage={gate.stage}>
      <h2 id={`${reasonId}-title`}>Waiting for approval</h2>
      <p>
        Stage {gate.stage} of {run.stages.length}, <strong>{gate.name}</strong> (<code>{gate.key}</code>), starts only when someone
        who may command runs of site <strong>{run.site_id}</strong> approves it. Rejecting cancels the run; the stage never starts.
      </p>
      <p className="muted" data-approval-items>
        {total === null || total === undefined
          ? 'Its items are loaded once it is approved.'
          : `It will process ${total} item${total === 1 ? '' : 's'}${shown && shown.titles.length ? `: ${shown.titles.join(', ')}${total > shown.titles.length ? ', …' : ''}` : '.'}`}
      </p>
      <label className="stack" htmlFor={reasonId}>
        Reason (optional, recorded in the log)
        <input id={reasonId} type="text" maxLength={500} value={reason} onChange={(e) => setReason(e.target.value)} />
      </label>
      <div className="controls" role="group" aria-label="Approval">
        <button type="button" className="primary" disabled={off || !gate.canApprove} onClick={() => send('approve')}>
          Approve
        </button>
        <ConfirmButton
          label="Reject"
          question="Reject and cancel this run?"
          confirmLabel="Yes, reject"
          disabled={off || !gate.canReject}
          onConfirm={() => send('reject')}
        />
      </div>
      {error && <p className="card-error" role="alert">{error}</p>}
    </section>
  );
}
