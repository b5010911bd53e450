const COMMANDS = ['pause', 'resume', 'cancel', 'retry', 'close'] as const;

/** The run's commands, each enabled only where the server's view of the run allows it (`allowed_commands`). */
export function Controls({ allowed, busy, onCommand }: { allowed: readonly string[]; busy: boolean; onCommand: (c: string) => void }) {
  return (
    <div className="controls" role="toolbar" aria-label="Run controls">
      {COMMANDS.map((c) => (
        <button key={c} type="button" disabled={busy || !allowed.includes(c)} onClick={() => onCommand(c)}>
          {c[0]!.toUpperCase() + c.slice(1)}
        </button>
      ))}
    </div>
  );
}
