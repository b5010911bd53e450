const COMMANDS = ['pause', 'resume', 'cancel', 'retry', 'close'] as const;

/**
 * The run's commands, each enabled only where the server's view of the run allows it
 * (`allowed_commands`). "Retry failed (n)" shows only while `retry_failed` is allowed, with the
 * run's failed items (`failed_items`).
 */
export function Controls({
  allowed,
  busy,
  failedItems,
  onCommand,
}: {
  allowed: readonly string[];
  busy: boolean;
  failedItems: number;
  onCommand: (c: string) => void;
}) {
  return (
    <div className="controls" role="toolbar" aria-label="Run controls">
      {COMMANDS.map((c) => (
        <button key={c} type="button" disabled={busy || !allowed.includes(c)} onClick={() => onCommand(c)}>
          {c[0]!.toUpperCase() + c.slice(1)}
        </button>
      ))}
      {allowed.includes('retry_failed') && (
        <button type="button" disabled={busy} onClick={() => onCommand('retry_failed')}>
          Retry failed ({failedItems})
        </button>
      )}
    </div>
  );
}
