'use client';
// A button that asks before it acts, in the page.
import { useEffect, useId, useRef, useState } from 'react';

export interface ConfirmButtonProps {
  /** The button's label: `Reject`. */
  label: string;
  /** The question asked before acting: `Reject this run? It is cancelled.` */
  question: string;
  /** The label of the button that acts: `Yes, reject`. */
  confirmLabel: string;
  disabled?: boolean;
  onConfirm: () => void;
}

/**
 * A button for what cannot be undone: the first press asks, in the page (no dialog box), and
 * moves the focus to the answer; Escape or "No" puts it back.
 */
export function ConfirmButton({ label, question, confirmLabel, disabled = false, onConfirm }: ConfirmButtonProps) {
  const [asking, setAsking] = useState(false);
  const yes = useRef<HTMLButtonElement>(null);
  const first = useRef<HTMLButtonElement>(null);
  const id = useId();
  const wasAsking = useRef(false);
  useEffect(() => {
    if (asking) yes.current?.focus();
    else if (wasAsking.current) first.current?.focus();
    wasAsking.current = asking;
  }, [asking]);
  if (!asking) {
    return (
      <button ref={first} type="button" disabled={disabled} onClick={() => setAsking(true)}>
        {label}
      </button>
    );
  }
  return (
    <span className="confirm" role="group" aria-labelledby={id} onKeyDown={(e) => e.key === 'Escape' && setAsking(false)}>
      <span id={id} className="confirm-question">{question}</span>{' '}
      <button
        ref={yes}
        type="button"
        className="danger"
        disabled={disabled}
        onClick={() => {
          setAsking(false);
          onConfirm();
        }}
      >
        {confirmLabel}
      </button>{' '}
      <button type="button" onClick={() => setAsking(false)}>No</button>
    </span>
  );
}
