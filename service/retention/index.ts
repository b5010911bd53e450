// The retention SQL of whichever store the service opened.
import type { Logger } from 'pino';
import { PostgresStore } from '../store/postgres.js';
import { SqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/store.js';
import { postgresRetentionStore, sqliteRetentionStore } from './sql.js';
import type { RetentionStore } from './types.js';

export function retentionStoreFor(store: Store, logger: Logger): RetentionStore {
  if (store instanceof SqliteStore) return sqliteRetentionStore(store.connection, logger);
  if (store instanceof PostgresStore) return postgresRetentionStore(store.pool);
  throw new TypeError(`Expected a SqliteStore or PostgresStore, got a store of kind ${JSON.stringify((store as Store).kind)}.`);
}
