// The webhook tables of whichever store the service opened.
import { PostgresStore } from '../store/postgres.js';
import { SqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/store.js';
import { postgresWebhookStore } from './postgres-store.js';
import { sqliteWebhookStore } from './sqlite-store.js';
import type { WebhookStore } from './types.js';

export function webhookStoreFor(store: Store): WebhookStore {
  if (store instanceof SqliteStore) return sqliteWebhookStore(store.connection);
  if (store instanceof PostgresStore) return postgresWebhookStore(store.pool);
  throw new TypeError(`Expected a SqliteStore or PostgresStore, got a store of kind ${JSON.stringify((store as Store).kind)}.`);
}
