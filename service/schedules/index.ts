// Schedules (docs/api.md and docs/operations.md, "Schedules"): the tables of whichever store the
// service opened, the one ticker of this process, and what the routes need, started and
// stopped together.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Engine } from '../engine/engine.js';
import { PostgresStore } from '../store/postgres.js';
import { SqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/store.js';
import { postgresScheduleStore } from './postgres-store.js';
import type { ScheduleRoutesOptions } from './routes.js';
import { sqliteScheduleStore } from './sqlite-store.js';
import { ScheduleTicker } from './ticker.js';
import type { ScheduleStore } from './types.js';

export async function openScheduleStore(store: Store): Promise<ScheduleStore> {
  if (store instanceof SqliteStore) return sqliteScheduleStore(store.connection);
  if (store instanceof PostgresStore) return postgresScheduleStore(store.pool);
  throw new TypeError(`Expected a SqliteStore or PostgresStore, got a store of kind ${JSON.stringify((store as Store).kind)}.`);
}

export interface SchedulesOptions {
  store: Store;
  engine: Engine;
  logger: Logger;
  /** [1000 with Postgres, 60000 with SQLite] The ticker's longest sleep (docs/operations.md). */
  maxWaitMs?: number;
  /** [Date.now] */
  now?: () => number;
  /** Where the fire counter is registered (/metrics). */
  registry?: Registry;
}

export interface Schedules {
  readonly store: ScheduleStore;
  readonly routes: ScheduleRoutesOptions;
  /** Starts the ticker: call after the engine has started. */
  start(): void;
  /** Stops the ticker, after the run starts of a tick in progress: call before the engine stops. */
  stop(): Promise<void>;
}

export async function createSchedules(opts: SchedulesOptions): Promise<Schedules> {
  const store = await openScheduleStore(opts.store);
  // With SQLite this process is the only one: every change to a schedule passes through it and
  // nudges the ticker, so it may sleep until the next fire. With Postgres another instance may
  // make a schedule: the ticker looks at least once a second.
  const maxWaitMs = opts.maxWaitMs ?? (opts.store.kind === 'postgres' ? 1000 : 60_000);
  const ticker = new ScheduleTicker({
    store,
    engine: opts.engine,
    logger: opts.logger,
    owner: opts.engine.instanceId,
    maxWaitMs,
    ...(opts.registry ? { registry: opts.registry } : {}),
    ...(opts.now ? { now: opts.now } : {}),
  });
  return {
    store,
    routes: { schedules: store, engine: opts.engine, changed: () => ticker.nudge(), ...(opts.now ? { now: opts.now } : {}) },
    start: () => ticker.start(),
    stop: () => ticker.stop(),
  };
}
