const COMMANDS = ['pause', 'resume', 'cancel', 'retry', 'close'] as const;

/** The run's commands, each enabled only where the run's state allows it. */
export function Controls({ allowed, busy, onCommand }: { allowed: Set<string>; busy: boolean; onCommand: (c: string) => void }) {
  return (
    <div className="controls" role="toolbar" aria-label="Run controls">
      {COMMANDS.map((c) => (
        <button key={c} disabled={busy || !allowed.has(c)} onClick={() => onCommand(c)}>
          {c[0]!.toUpperCase() + c.slice(1)}
        </button>
      ))}
    </div>
  );
}
