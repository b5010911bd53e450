// The webhook tables on SQLite: the connection of SqliteStore, one instance, synchronous
// transactions (the outbox itself is written by the store's commit). The row mapping is
// rows.ts, shared with postgres-store.ts.
import type Database from 'better-sqlite3';
import { matches, toAttempt, toDelivery, toEntry, toWebhook, withWebhooks, type AttemptRow, type DeliveryRow, type OutboxJoinRow, type WebhookRow } from './rows.js';
import type { AttemptOutcome, ClaimedDelivery, DeliveryAttempt, WebhookStore } from './types.js';

export function sqliteWebhookStore(db: Database.Database): WebhookStore {
  const stmt = {
    insert: db.prepare(
      `INSERT INTO webhooks (webhook_id, account_id, site_id, url, events, secret, created_by, created_at)
       VALUES (@webhook_id, @account_id, @site_id, @url, @events, @secret, @created_by, @created_at)`,
    ),
    get: db.prepare<[string], WebhookRow>('SELECT * FROM webhooks WHERE webhook_id = ?'),
    all: db.prepare<[], WebhookRow>('SELECT * FROM webhooks ORDER BY created_at, webhook_id'),
    ofAccount: db.prepare<[string], WebhookRow>('SELECT * FROM webhooks WHERE account_id = ? ORDER BY created_at, webhook_id'),
    outbox: db.prepare<[number], OutboxJoinRow>(
      `SELECT o.id, o.run_id, o.seq, o.kind, r.account_id, r.site_id, r.pipeline, e.body AS event
       FROM outbox o LEFT JOIN runs r ON r.run_id = o.run_id LEFT JOIN events e ON e.run_id = o.run_id AND e.seq = o.seq
       ORDER BY o.id LIMIT ?`,
    ),
    deleteOutbox: db.prepare('DELETE FROM outbox WHERE id = ?'),
    insertDelivery: db.prepare(
      `INSERT INTO webhook_deliveries (delivery_id, webhook_id, run_id, seq, kind, body, first_at, next_at, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
    ),
    claim: db.prepare<{ owner: string; until: number; now: number; limit: number }, DeliveryRow>(
      `UPDATE webhook_deliveries SET lease_owner = @owner, lease_until = @until
       WHERE delivery_id IN (
         SELECT c.delivery_id FROM webhook_deliveries c
         WHERE c.status = 'pending' AND c.next_at <= @now AND (c.lease_until IS NULL OR c.lease_until <= @now)
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.webhook_id = c.webhook_id AND p.run_id = c.run_id
                           AND p.status = 'pending' AND p.seq < c.seq)
         ORDER BY c.next_at, c.seq LIMIT @limit)
       RETURNING *`,
    ),
    update: db.prepare(
      `UPDATE webhook_deliveries SET status = @status, attempts = attempts + 1, next_at = @next_at, last_error = @last_error,
         delivered_at = @delivered_at, lease_owner = NULL, lease_until = NULL
       WHERE delivery_id = @delivery_id AND lease_owner = @owner`,
    ),
    insertAttempt: db.prepare(
      'INSERT OR REPLACE INTO webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    deliveries: db.prepare<[string, number], DeliveryRow>(
      'SELECT * FROM webhook_deliveries WHERE webhook_id = ? ORDER BY created_at DESC, seq DESC LIMIT ?',
    ),
    attempts: db.prepare<[string], AttemptRow>('SELECT * FROM webhook_attempts WHERE delivery_id = ? ORDER BY attempt'),
    pending: db.prepare<[], { n: number }>("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'pending'"),
  };
  const removeTx = db.transaction((id: string): boolean => {
    db.prepare('DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT delivery_id FROM webhook_deliveries WHERE webhook_id = ?)').run(id);
    db.prepare('DELETE FROM webhook_deliveries WHERE webhook_id = ?').run(id);
    return db.prepare('DELETE FROM webhooks WHERE webhook_id = ?').run(id).changes > 0;
  });
  const fanOutTx = db.transaction((limit: number, nowMs: number, make: Parameters<WebhookStore['fanOut']>[2]): number => {
    const rows = stmt.outbox.all(limit);
    if (rows.length === 0) return 0;
    const hooks = stmt.all.all().map(toWebhook);
    const created = new Date(nowMs).toISOString();
    for (const row of rows) {
      const entry = toEntry(row);
      if (entry) {
        for (const w of hooks) {
          if (!matches(w, entry)) continue;
          const { deliveryId, body } = make(entry, w);
          stmt.insertDelivery.run(deliveryId, w.webhookId, entry.runId, entry.seq, entry.kind, body, nowMs, nowMs, created);
        }
      }
      stmt.deleteOutbox.run(row.id);
    }
    return rows.length;
  });
  const claimTx = db.transaction((owner: string, leaseMs: number, limit: number, nowMs: number): ClaimedDelivery[] => {
    const rows = stmt.claim.all({ owner, until: nowMs + leaseMs, now: nowMs, limit });
    return withWebhooks(rows, (id) => stmt.get.get(id));
  });
  const attemptTx = db.transaction((owner: string, deliveryId: string, a: DeliveryAttempt, o: AttemptOutcome): boolean => {
    const res = stmt.update.run({
      delivery_id: deliveryId,
      owner,
      status: o.status,
      next_at: o.nextAt,
      last_error: o.lastError,
      delivered_at: o.deliveredAt,
    });
    if (res.changes === 0) return false;
    stmt.insertAttempt.run(deliveryId, a.attempt, a.at, a.statusCode, a.error, a.durationMs);
    return true;
  });

  return {
    async create(w) {
      stmt.insert.run({
        webhook_id: w.webhookId,
        account_id: w.accountId,
        site_id: w.siteId,
        url: w.url,
        events: JSON.stringify(w.events),
        secret: w.secret,
        created_by: w.createdBy,
        created_at: w.createdAt,
      });
    },
    async get(id) {
      const row = stmt.get.get(id);
      return row ? toWebhook(row) : undefined;
    },
    async list(filter) {
      return (filter.accountId === undefined ? stmt.all.all() : stmt.ofAccount.all(filter.accountId)).map(toWebhook);
    },
    async remove(id) {
      return removeTx(id);
    },
    async deliveries(webhookId, limit) {
      return stmt.deliveries.all(webhookId, limit).map((r) => ({ ...toDelivery(r), log: stmt.attempts.all(r.delivery_id).map(toAttempt) }));
    },
    async fanOut(limit, nowMs, make) {
      return fanOutTx.immediate(limit, nowMs, make);
    },
    async claim(owner, leaseMs, limit, nowMs): Promise<ClaimedDelivery[]> {
      return claimTx.immediate(owner, leaseMs, limit, nowMs);
    },
    async recordAttempt(owner, deliveryId, attempt, outcome) {
      return attemptTx(owner, deliveryId, attempt, outcome);
    },
    async countPending() {
      return stmt.pending.get()!.n;
    },
    async releaseStaleLeases(owner) {
      db.prepare('UPDATE webhook_deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL AND lease_owner <> ?').run(owner);
    },
  };
}
