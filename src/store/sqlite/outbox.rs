//! The durable outbox and card messages in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{SqliteStore, at, corrupt, ms};
use crate::core::outgoing::Outgoing;
use crate::core::people::SurfaceRef;
use crate::core::ticket::{DeskId, TicketId};
use crate::store::{CardMessage, OutboxItem, OutboxStats, OutboxStore, Outcome, Result, Settled};

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn enqueue(
        &self,
        desk: DeskId,
        key: &str,
        out: &[Outgoing],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        Self::enqueue_in(&mut tx, desk, key, out, ms(now)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn outbox_due(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<OutboxItem>> {
        let now = ms(now);
        // Each destination's oldest pending row, if it is due: later rows of a destination wait
        // until the earlier ones are delivered or dead, so a destination sees them in order. The
        // pending rows are walked in id order (the partial index) and the walk stops at `limit`;
        // the planner would otherwise sort every due row first.
        let rows = sqlx::query!(
            "SELECT o.id, o.desk_id, o.destination, o.idempotency_key, o.payload, o.attempts, o.created_at
             FROM outbox o INDEXED BY outbox_pending_by_id
             WHERE o.state = 'pending' AND o.next_attempt_at <= ?1
               AND NOT EXISTS (SELECT 1 FROM outbox p
                               WHERE p.state = 'pending' AND p.destination = o.destination AND p.id < o.id)
             ORDER BY o.id LIMIT ?2",
            now,
            limit
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(OutboxItem {
                    id: r.id,
                    desk: DeskId(r.desk_id),
                    destination: r.destination,
                    idempotency_key: r.idempotency_key,
                    message: serde_json::from_str(&r.payload).map_err(corrupt)?,
                    attempts: r.attempts,
                    created_at: at(r.created_at),
                })
            })
            .collect()
    }

    async fn outbox_next_due(&self) -> Result<Option<DateTime<Utc>>> {
        let next = sqlx::query_scalar!(
            r#"SELECT MIN(next_attempt_at) AS "next: i64" FROM outbox WHERE state = 'pending'"#
        )
        .fetch_one(&mut *self.read().await?)
        .await?;
        Ok(next.map(at))
    }

    async fn outbox_settle(&self, settled: &[Settled], now: DateTime<Utc>) -> Result<()> {
        if settled.is_empty() {
            return Ok(());
        }
        let now = ms(now);
        let mut tx = self.write().await?;
        for s in settled {
            match &s.outcome {
                Outcome::Sent(card) => {
                    sqlx::query!(
                        "UPDATE outbox SET state = 'sent', attempts = attempts + 1, done_at = ?, last_error = NULL
                         WHERE id = ?",
                        now,
                        s.id
                    )
                    .execute(&mut *tx)
                    .await?;
                    if let Some(card) = card {
                        let platform = card.surface.platform.as_str();
                        sqlx::query!(
                            "INSERT INTO card_messages (desk_id, ticket_id, platform, surface_id, channel, message_id, created_at)
                             VALUES (?, ?, ?, ?, ?, ?, ?)
                             ON CONFLICT (ticket_id, platform, channel) DO UPDATE SET message_id = excluded.message_id",
                            s.desk.0,
                            card.ticket.0,
                            platform,
                            card.surface.external_id,
                            card.channel,
                            card.message_id,
                            now
                        )
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                Outcome::Retry {
                    attempts,
                    at: at_time,
                    error,
                } => {
                    let next = ms(*at_time);
                    sqlx::query!(
                        "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
                        attempts,
                        next,
                        error,
                        s.id
                    )
                    .execute(&mut *tx)
                    .await?;
                }
                Outcome::Dead { attempts, error } => {
                    sqlx::query!(
                        "UPDATE outbox SET state = 'dead', attempts = ?, last_error = ?, done_at = ? WHERE id = ?",
                        attempts,
                        error,
                        now,
                        s.id
                    )
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn outbox_stats(&self, now: DateTime<Utc>) -> Result<OutboxStats> {
        let row = sqlx::query!(
            r#"SELECT
                 (SELECT COUNT(*) FROM outbox WHERE state = 'pending') AS "pending!: i64",
                 (SELECT COUNT(*) FROM outbox WHERE state = 'dead') AS "dead!: i64",
                 (SELECT MIN(created_at) FROM outbox WHERE state = 'pending') AS "oldest: i64""#
        )
        .fetch_one(&mut *self.read().await?)
        .await?;
        let oldest_age_secs = row
            .oldest
            .map(|t| ((ms(now) - t).max(0) as f64) / 1000.0)
            .unwrap_or(0.0);
        Ok(OutboxStats {
            pending: row.pending,
            dead: row.dead,
            oldest_age_secs,
        })
    }

    async fn card_messages(
        &self,
        desk: DeskId,
        ticket: TicketId,
        surface: &SurfaceRef,
    ) -> Result<Vec<CardMessage>> {
        let platform = surface.platform.as_str();
        let rows = sqlx::query!(
            "SELECT channel, message_id FROM card_messages
             WHERE desk_id = ? AND ticket_id = ? AND platform = ? AND surface_id = ?
             ORDER BY created_at",
            desk.0,
            ticket.0,
            platform,
            surface.external_id
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| CardMessage {
                ticket,
                surface: surface.clone(),
                channel: r.channel,
                message_id: r.message_id,
            })
            .collect())
    }

    async fn ticket_of_card(
        &self,
        desk: DeskId,
        surface: &SurfaceRef,
        channel: &str,
        message_id: &str,
    ) -> Result<Option<TicketId>> {
        let platform = surface.platform.as_str();
        let id = sqlx::query_scalar!(
            r#"SELECT ticket_id AS "ticket_id!: i64" FROM card_messages
             WHERE desk_id = ? AND platform = ? AND channel = ? AND message_id = ?"#,
            desk.0,
            platform,
            channel,
            message_id
        )
        .fetch_optional(&mut *self.read().await?)
        .await?;
        Ok(id.map(TicketId))
    }
}
