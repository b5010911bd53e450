// The webhook tables on Postgres, shared by every instance: fan-out one instance at a time (an
// advisory lock), deliveries claimed with a lease under FOR UPDATE SKIP LOCKED, so each attempt
// is made by one instance.
import type { Pool } from 'pg';
import { inTransaction } from '../store/pg-connection.js';
import type { ClaimedDelivery, WebhookStore } from './types.js';
import { matches, toAttempt, toDelivery, toEntry, toWebhook, withWebhooks, type AttemptRow, type DeliveryRow, type OutboxJoinRow, type WebhookRow } from './rows.js';

/** Held for the length of one fan-out transaction: 'rs-hooks' in ASCII. */
const FAN_OUT_LOCK = '126953006950763';

export function postgresWebhookStore(pool: Pool): WebhookStore {
  return {
    async create(w) {
      await pool.query(
        `INSERT INTO webhooks (webhook_id, account_id, site_id, url, events, secret, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [w.webhookId, w.accountId, w.siteId, w.url, JSON.stringify(w.events), w.secret, w.createdBy, w.createdAt],
      );
    },
    async get(id) {
      const res = await pool.query<WebhookRow>('SELECT * FROM webhooks WHERE webhook_id = $1', [id]);
      return res.rows[0] ? toWebhook(res.rows[0]) : undefined;
    },
    async list(filter) {
      const res = await pool.query<WebhookRow>(
        'SELECT * FROM webhooks WHERE ($1::text IS NULL OR account_id = $1) ORDER BY created_at, webhook_id',
        [filter.accountId ?? null],
      );
      return res.rows.map(toWebhook);
    },
    async remove(id) {
      return inTransaction(pool, async (c) => {
        await c.query('DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT delivery_id FROM webhook_deliveries WHERE webhook_id = $1)', [id]);
        await c.query('DELETE FROM webhook_deliveries WHERE webhook_id = $1', [id]);
        return ((await c.query('DELETE FROM webhooks WHERE webhook_id = $1', [id])).rowCount ?? 0) > 0;
      });
    },
    async deliveries(webhookId, limit) {
      const res = await pool.query<DeliveryRow>(
        'SELECT * FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY created_at DESC, seq DESC LIMIT $2',
        [webhookId, limit],
      );
      const ids = res.rows.map((r) => r.delivery_id);
      const attempts = await pool.query<AttemptRow>('SELECT * FROM webhook_attempts WHERE delivery_id = ANY($1::text[]) ORDER BY attempt', [ids]);
      return res.rows.map((r) => ({ ...toDelivery(r), log: attempts.rows.filter((a) => a.delivery_id === r.delivery_id).map(toAttempt) }));
    },
    async fanOut(limit, nowMs, make) {
      return inTransaction(pool, async (c) => {
        // One fan-out at a time: a run's deliveries then exist in seq order before any is claimed.
        const locked = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1::bigint) AS ok', [FAN_OUT_LOCK]);
        if (!locked.rows[0]?.ok) return 0;
        const rows = await c.query<OutboxJoinRow>(
          `SELECT o.id, o.run_id, o.seq, o.kind, r.account_id, r.site_id, r.pipeline, e.body AS event
           FROM outbox o LEFT JOIN runs r ON r.run_id = o.run_id LEFT JOIN events e ON e.run_id = o.run_id AND e.seq = o.seq
           ORDER BY o.id LIMIT $1`,
          [limit],
        );
        if (rows.rows.length === 0) return 0;
        const hooks = (await c.query<WebhookRow>('SELECT * FROM webhooks')).rows.map(toWebhook);
        const created = new Date(nowMs).toISOString();
        const d = { id: [] as string[], hook: [] as string[], run: [] as string[], seq: [] as number[], kind: [] as string[], body: [] as string[] };
        for (const row of rows.rows) {
          const entry = toEntry(row);
          if (!entry) continue;
          for (const w of hooks) {
            if (!matches(w, entry)) continue;
            const made = make(entry, w);
            d.id.push(made.deliveryId);
            d.hook.push(w.webhookId);
            d.run.push(entry.runId);
            d.seq.push(entry.seq);
            d.kind.push(entry.kind);
            d.body.push(made.body);
          }
        }
        if (d.id.length > 0) {
          await c.query(
            `INSERT INTO webhook_deliveries (delivery_id, webhook_id, run_id, seq, kind, body, first_at, next_at, created_at)
             SELECT i, h, r, s, k, b, $7, $7, $8 FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[]) AS x (i, h, r, s, k, b)
             ON CONFLICT DO NOTHING`,
            [d.id, d.hook, d.run, d.seq, d.kind, d.body, nowMs, created],
          );
        }
        await c.query('DELETE FROM outbox WHERE id = ANY($1::bigint[])', [rows.rows.map((r) => r.id)]);
        return rows.rows.length;
      });
    },
    async claim(owner, leaseMs, limit, nowMs): Promise<ClaimedDelivery[]> {
      const res = await pool.query<DeliveryRow & { url: string; secret: string }>(
        `WITH claimed AS (
           UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2
           WHERE delivery_id IN (
             SELECT c.delivery_id FROM webhook_deliveries c
             WHERE c.status = 'pending' AND c.next_at <= $3 AND (c.lease_until IS NULL OR c.lease_until <= $3)
               AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.webhook_id = c.webhook_id AND p.run_id = c.run_id
                               AND p.status = 'pending' AND p.seq < c.seq)
             ORDER BY c.next_at, c.seq LIMIT $4 FOR UPDATE SKIP LOCKED)
           RETURNING *)
         SELECT claimed.*, w.url, w.secret FROM claimed JOIN webhooks w ON w.webhook_id = claimed.webhook_id`,
        [owner, nowMs + leaseMs, nowMs, limit],
      );
      return withWebhooks(res.rows, (id) => res.rows.find((r) => r.webhook_id === id));
    },
    async recordAttempt(owner, deliveryId, a, o) {
      return inTransaction(pool, async (c) => {
        const res = await c.query(
          `UPDATE webhook_deliveries SET status = $3, attempts = attempts + 1, next_at = $4, last_error = $5,
             delivered_at = $6, lease_owner = NULL, lease_until = NULL
           WHERE delivery_id = $1 AND lease_owner = $2`,
          [deliveryId, owner, o.status, o.nextAt, o.lastError, o.deliveredAt],
        );
        if ((res.rowCount ?? 0) === 0) return false;
        await c.query(
          `INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (delivery_id, attempt) DO UPDATE SET at = EXCLUDED.at, status_code = EXCLUDED.status_code,
             error = EXCLUDED.error, duration_ms = EXCLUDED.duration_ms`,
          [deliveryId, a.attempt, a.at, a.statusCode, a.error, a.durationMs],
        );
        return true;
      });
    },
    async releaseStaleLeases() {
      // Other instances' leases are theirs until they run out.
    },
    async countPending() {
      const res = await pool.query<{ n: string }>("SELECT COUNT(*)::text AS n FROM webhook_deliveries WHERE status = 'pending'");
      return Number(res.rows[0]?.n ?? 0);
    },
  };
}
