// Where a limit's state lives: one interface, two adapters. In process (memory.ts) for a single
// instance on SQLite; in the database (postgres.ts) when instances share one Postgres, so a
// key's tokens and slots are the same for all of them.

/** What instances publish of their attempts under each key, for `GET /limits`. */
export interface LimitUsage {
  waiting: number;
  inFlight: number;
}

export interface LimitStore {
  /**
   * Takes the key's one token if it is there: the bucket refills one token every `spacingMs`
   * and holds one (a burst of 1). Answers 0 when taken, else the ms until the token is back.
   */
  takeToken(key: string, spacingMs: number): Promise<number>;
  /** Takes one of the key's `size` slots for `holder`, leased for `leaseMs`; false when all are taken. */
  takeSlot(key: string, size: number, holder: string, leaseMs: number): Promise<boolean>;
  /** Gives a slot back; a slot whose lease ran out (its holder presumed dead) may be gone already. */
  releaseSlot(key: string, holder: string): Promise<void>;
  /** Extends the leases of slots held here: an instance that dies stops renewing, and its slots free themselves. */
  renewSlots(holders: readonly string[], leaseMs: number): Promise<void>;
  /** This instance's counts, per key, for the other instances' `GET /limits`. */
  publish(instance: string, usage: ReadonlyMap<string, LimitUsage>): Promise<void>;
  /** The other instances' counts, summed per key (published within the last few seconds). */
  othersUsage(instance: string): Promise<Map<string, LimitUsage>>;
  close(): Promise<void>;
}
