// The contract both retention adapters implement: find runs past retention, delete them whole.

/** A run the sweep may delete, with what names its trace directory. */
export interface ExpiredRun {
  runId: string;
  accountId: string;
  siteId: string;
}

export interface RetentionStore {
  /**
   * Up to `limit` runs, oldest first, that are closed, or completed or cancelled, and whose
   * `updated_at` is before `cutoff` (ISO 8601). A live run (idle, running, paused, failed and
   * not closed) is never among them.
   */
  expired(cutoff: string, limit: number): Promise<ExpiredRun[]>;
  /**
   * Deletes those of `runIds` that still match (re-checked under the write): the run row, its
   * events, ledger, stage items, commands, outbox rows, worker jobs, webhook deliveries and their log, in one
   * transaction. Returns the ids deleted.
   */
  deleteRuns(runIds: readonly string[], cutoff: string): Promise<string[]>;
  /** Gives freed space back to the file system where the database can (SQLite); a no-op elsewhere. */
  reclaim(): Promise<void>;
}
