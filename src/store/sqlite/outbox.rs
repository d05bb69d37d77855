//! The durable outbox and card messages in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::tickets::{TicketRow, select_tickets};
use super::{SqliteStore, at, corrupt, ms};
use crate::core::outgoing::Outgoing;
use crate::core::people::SurfaceRef;
use crate::core::ticket::{DeskId, TicketId};
use crate::store::{
    CardMessage, Joined, MERGE_MAX, OutboxItem, OutboxStats, OutboxStore, Outcome, Queued, Result,
    Settled, TicketRecord,
};

/// A ticket's card and where it shows, as one command: the ticket by desk and id, then its
/// card messages on one surface.
const CARD: &str = concat!(
    select_tickets!("desk_id = ?1 ->> 'desk' AND id = ?1 ->> 'ticket';"),
    "SELECT channel, message_id FROM card_messages
      WHERE desk_id = ?1 ->> 'desk' AND ticket_id = ?1 ->> 'ticket'
        AND platform = ?1 ->> 'platform' AND surface_id = ?1 ->> 'surface'
      ORDER BY created_at"
);

/// A round's delivery outcomes, as one command to the writer's thread (see `writes.rs` on
/// batches): the refreshes joined to a row after the delivery read it moved to a row of their
/// own at the end of the queue (keyed by the row's key and the number read), the rows' new
/// state, then the card messages they posted. A message id is one
/// card's: a post that came back with the id of a message stored for another ticket (a platform
/// never does this; a stand-in might) takes it over, and two such posts in one round keep the
/// first, so the round's outcomes are always recorded. One statement per
/// outcome held the round's lock for two round trips per delivery, and deliveries run beside
/// every create (BENCHMARKS.md). `?1` is the JSON array of [`SettledRow`]s.
const SETTLE: &str = concat!(
    super::writes::parse_batch_once!(),
    "INSERT INTO outbox (desk_id, destination, idempotency_key, payload, joined, next_attempt_at, created_at)
     SELECT o.desk_id, o.destination, o.idempotency_key || '+' || (s.value ->> 'joins'),
            json_set(o.payload, '$.note', NULL, '$.answered', NULL),
            (SELECT json_group_array(json(j.value) ORDER BY j.key) FROM json_each(o.joined) AS j
              WHERE j.key >= s.value ->> 'joins'),
            s.value ->> 'now', s.value ->> 'now'
       FROM jsonb_each((SELECT v FROM temp.piraja_batch)) AS s JOIN outbox AS o ON o.id = s.value ->> 'id'
      WHERE json_array_length(o.joined) > s.value ->> 'joins'
      ORDER BY o.id
     ON CONFLICT (idempotency_key) DO NOTHING;
     UPDATE outbox
        SET joined = (SELECT json_group_array(json(j.value) ORDER BY j.key) FROM json_each(outbox.joined) AS j
                       WHERE j.key < s.value ->> 'joins')
       FROM jsonb_each((SELECT v FROM temp.piraja_batch)) AS s
      WHERE outbox.id = s.value ->> 'id' AND json_array_length(outbox.joined) > s.value ->> 'joins';
     UPDATE outbox
        SET state = s.value ->> 'state',
            attempts = coalesce(s.value ->> 'attempts', outbox.attempts + 1),
            next_attempt_at = coalesce(s.value ->> 'next', outbox.next_attempt_at),
            last_error = s.value ->> 'error',
            done_at = s.value ->> 'done',
            progress = s.value ->> 'progress'
       FROM jsonb_each((SELECT v FROM temp.piraja_batch)) AS s
      WHERE outbox.id = s.value ->> 'id' AND s.value ->> 'state' IS NOT NULL;
     DELETE FROM card_messages
      WHERE (platform, channel, message_id) IN
            (SELECT s.value ->> 'card_platform', s.value ->> 'card_channel', s.value ->> 'card_message'
               FROM jsonb_each((SELECT v FROM temp.piraja_batch)) AS s
              WHERE s.value ->> 'card_ticket' IS NOT NULL);
     INSERT INTO card_messages (desk_id, ticket_id, platform, surface_id, channel, message_id, created_at)
     SELECT s.value ->> 'desk', s.value ->> 'card_ticket', s.value ->> 'card_platform',
            s.value ->> 'card_surface', s.value ->> 'card_channel', s.value ->> 'card_message',
            s.value ->> 'done'
       FROM jsonb_each((SELECT v FROM temp.piraja_batch)) AS s
      WHERE s.value ->> 'card_ticket' IS NOT NULL
      ORDER BY s.key
     ON CONFLICT (ticket_id, platform, channel) DO UPDATE SET message_id = excluded.message_id
     ON CONFLICT DO NOTHING"
);

/// One outcome as [`SETTLE`] reads it: `attempts` absent counts one more attempt, `next`
/// absent keeps the row's time, and the `card_` fields are the message a delivery posted. Fields
/// that are `None` are left out (`->>` reads an absent key as NULL): a round settles up to 64
/// deliveries, each with the rows it carried, so the parameter stays small.
#[derive(serde::Serialize)]
struct SettledRow<'a> {
    id: i64,
    desk: i64,
    now: i64,
    /// Absent: the row stays as it is ([`Outcome::Carried`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'static str>,
    /// How many refreshes joined to the row the delivery read.
    #[serde(skip_serializing_if = "Option::is_none")]
    joins: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    done: Option<i64>,
    /// [`crate::store::Progress`] as JSON text.
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    card_ticket: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    card_platform: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    card_surface: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    card_channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    card_message: Option<&'a str>,
}

impl<'a> SettledRow<'a> {
    fn of(s: &'a Settled, now: i64) -> SettledRow<'a> {
        let row = SettledRow {
            id: s.id,
            desk: s.desk.0,
            now,
            state: Some("pending"),
            joins: s.joins,
            attempts: None,
            next: None,
            error: None,
            done: None,
            progress: None,
            card_ticket: None,
            card_platform: None,
            card_surface: None,
            card_channel: None,
            card_message: None,
        };
        match &s.outcome {
            Outcome::Sent(card) => SettledRow {
                state: Some("sent"),
                done: Some(now),
                card_ticket: card.as_ref().map(|c| c.ticket.0),
                card_platform: card.as_ref().map(|c| c.surface.platform.as_str()),
                card_surface: card.as_ref().map(|c| c.surface.external_id.as_str()),
                card_channel: card.as_ref().map(|c| c.channel.as_str()),
                card_message: card.as_ref().map(|c| c.message_id.as_str()),
                ..row
            },
            Outcome::Retry {
                attempts,
                at: next,
                error,
                progress,
            } => SettledRow {
                attempts: Some(*attempts),
                next: Some(ms(*next)),
                error: Some(error),
                progress: progress
                    .as_ref()
                    .and_then(|p| serde_json::to_string(p).ok()),
                ..row
            },
            Outcome::Carried => SettledRow { state: None, ..row },
            Outcome::Dead { attempts, error } => SettledRow {
                state: Some("dead"),
                attempts: Some(*attempts),
                error: Some(error),
                done: Some(now),
                ..row
            },
        }
    }
}

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
        // the planner would otherwise sort every due row first. Whether the message's surface
        // revoked the app's token is read with it (one read a round, not one a delivery).
        // A card refresh comes with the rows queued behind it for the same destination (id,
        // kind, note, answered card and joined refreshes only), which it may carry in the same
        // delivery (`OutboxItem::absorb`), as it carries the refreshes joined to it.
        let behind = (MERGE_MAX - 1) as i64;
        let rows = sqlx::query!(
            r#"SELECT o.id AS "id!", o.desk_id, o.destination, o.idempotency_key, o.payload, o.attempts, o.created_at, o.progress, o.joined,
                    EXISTS (SELECT 1 FROM surfaces s
                             WHERE s.platform = o.payload ->> '$.surface.platform'
                               AND s.external_id = o.payload ->> '$.surface.external_id'
                               AND s.token_revoked_at IS NOT NULL) AS "revoked!: bool",
                    CASE WHEN o.payload ->> '$.kind' = 'update_cards' THEN
                      (SELECT json_group_array(json_object('id', f.id, 'kind', f.payload ->> '$.kind',
                                                           'note', f.payload ->> '$.note',
                                                           'answered', f.payload ->> '$.answered',
                                                           'joined', json(coalesce(f.joined, '[]')),
                                                           'held', json(iif(f.next_attempt_at > ?1, 'true', 'false'))))
                         FROM (SELECT id, payload, joined, next_attempt_at FROM outbox INDEXED BY outbox_pending
                                WHERE state = 'pending' AND destination = o.destination AND id > o.id
                                ORDER BY id LIMIT ?3) AS f)
                    END AS "behind: String"
             FROM outbox o INDEXED BY outbox_due
             WHERE o.state = 'pending' AND o.next_attempt_at <= ?1
               AND NOT EXISTS (SELECT 1 FROM outbox p
                               WHERE p.state = 'pending' AND p.destination = o.destination AND p.id < o.id)
             ORDER BY o.next_attempt_at, o.id LIMIT ?2"#,
            now,
            limit,
            behind
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        rows.into_iter()
            .map(|r| {
                let mut item = OutboxItem {
                    id: r.id,
                    desk: DeskId(r.desk_id),
                    destination: r.destination,
                    idempotency_key: r.idempotency_key,
                    message: serde_json::from_str(&r.payload).map_err(corrupt)?,
                    attempts: r.attempts,
                    created_at: at(r.created_at),
                    surface_revoked: r.revoked,
                    merged: Vec::new(),
                    progress: json_column(r.progress.as_deref())?,
                    joins: Vec::new(),
                };
                let own: Option<Vec<Joined>> = json_column(r.joined.as_deref())?;
                let behind: Option<Vec<Queued>> = json_column(r.behind.as_deref())?;
                item.absorb(own.unwrap_or_default(), behind.unwrap_or_default());
                Ok(item)
            })
            .collect()
    }

    async fn outbox_next_due(&self) -> Result<Option<DateTime<Utc>>> {
        let next = sqlx::query_scalar!(
            r#"SELECT o.next_attempt_at AS "next: i64" FROM outbox o INDEXED BY outbox_due
                WHERE o.state = 'pending'
                  AND NOT EXISTS (SELECT 1 FROM outbox p
                                  WHERE p.state = 'pending' AND p.destination = o.destination AND p.id < o.id)
                ORDER BY o.next_attempt_at, o.id LIMIT 1"#
        )
        .fetch_optional(&mut *self.read().await?)
        .await?;
        Ok(next.map(at))
    }

    async fn outbox_settle(&self, settled: &[Settled], now: DateTime<Utc>) -> Result<()> {
        if settled.is_empty() {
            return Ok(());
        }
        let now = ms(now);
        let rows = settled
            .iter()
            .map(|s| SettledRow::of(s, now))
            .collect::<Vec<_>>();
        let param = serde_json::to_string(&rows).map_err(corrupt)?;
        // The statements run with the one that opens the write's savepoint: one round trip
        // under the round's lock, taken on the writer thread as the batch writers take it.
        let (group, writer) = (self.group.clone(), self.writer.clone());
        self.thread
            .run(async move {
                let (tx, _) = group.write_first(&writer, SETTLE, param).await?;
                tx.commit().await
            })
            .await
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

    async fn prune_sent(
        &self,
        before: DateTime<Utc>,
        after: i64,
        window: i64,
    ) -> Result<(u64, Option<i64>)> {
        let before = ms(before);
        let mut tx = self.write().await?;
        let w = sqlx::query!(
            r#"SELECT count(*) AS "rows!: i64", max(id) AS "last: i64",
                      coalesce(max(created_at >= ?3), 0) AS "young!: bool"
                 FROM (SELECT id, created_at FROM outbox WHERE id > ?1 ORDER BY id LIMIT ?2)"#,
            after,
            window,
            before
        )
        .fetch_one(&mut *tx)
        .await?;
        let Some(last) = w.last else {
            return Ok((0, None));
        };
        // `+state`: the window is an id range; through the `(state, …)` index the delete
        // would read every sent row's entry.
        let deleted = sqlx::query!(
            "DELETE FROM outbox
              WHERE id > ?1 AND id <= ?2 AND +state = 'sent' AND created_at < ?3",
            after,
            last,
            before
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        let more = !w.young && w.rows == window;
        Ok((deleted, more.then_some(last)))
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

    async fn card_of(
        &self,
        desk: DeskId,
        ticket: TicketId,
        surface: &SurfaceRef,
    ) -> Result<Option<(TicketRecord, Vec<CardMessage>)>> {
        let param = serde_json::to_string(&serde_json::json!({
            "desk": desk.0,
            "ticket": ticket.0,
            "platform": surface.platform.as_str(),
            "surface": surface.external_id,
        }))
        .map_err(corrupt)?;
        let (record, cards) = self.two_reads(CARD, param).await?;
        let Some(record) = record.first() else {
            return Ok(None);
        };
        let record = <TicketRow as sqlx::FromRow<_>>::from_row(record)?.try_into()?;
        let cards = cards
            .iter()
            .map(|row| {
                use sqlx::Row;
                Ok(CardMessage {
                    ticket,
                    surface: surface.clone(),
                    channel: row.try_get("channel")?,
                    message_id: row.try_get("message_id")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some((record, cards)))
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

/// A JSON column read: `None` when it is NULL.
fn json_column<T: serde::de::DeserializeOwned>(text: Option<&str>) -> Result<Option<T>> {
    text.map(serde_json::from_str).transpose().map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::people::{Platform, UserRef};
    use crate::store::DeskStore;
    use crate::store::sqlite::testing::execute;

    #[tokio::test]
    async fn the_migration_moves_pending_card_rows_to_the_new_destination_form() {
        use sqlx::{ConnectOptions, Connection};
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("m.db").display());
        // The schema as migration 8 left it, with rows queued in the old form.
        let mut conn = std::str::FromStr::from_str(&url)
            .map(|o: sqlx::sqlite::SqliteConnectOptions| o.create_if_missing(true))
            .unwrap()
            .connect()
            .await
            .unwrap();
        super::super::MIGRATOR
            .run_to(20261204000008, &mut conn)
            .await
            .unwrap();
        sqlx::raw_sql(
            "INSERT INTO desks (id, name, created_at) VALUES (1, 'a', 0);
             INSERT INTO outbox (desk_id, destination, idempotency_key, payload, state,
                                 next_attempt_at, created_at)
             VALUES (1, 'slack:T1:ticket:42', 'k1', '{}', 'pending', 0, 0),
                    (1, 'discord:9:ticket:42', 'k2', '{}', 'sent', 0, 0),
                    (1, 'slack:T1:channel:C1', 'k3', '{}', 'pending', 0, 0);",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
        let store = SqliteStore::open(&url).await.unwrap();
        let rows: Vec<String> = sqlx::query_scalar("SELECT destination FROM outbox ORDER BY id")
            .fetch_all(&mut *store.read().await.unwrap())
            .await
            .unwrap();
        assert_eq!(
            rows,
            [
                "ticket:42:slack:T1",
                "discord:9:ticket:42",
                "slack:T1:channel:C1"
            ]
        );
    }

    /// A store with desk 1 and its tickets of ids `ids` (numbered 1, 2, …).
    async fn store_with_tickets(ids: &[i64]) -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("o.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        let mut w = store.write().await.unwrap();
        sqlx::query("INSERT INTO desks (id, name, created_at) VALUES (1, 'a', 0)")
            .execute(&mut *w)
            .await
            .unwrap();
        for (no, id) in ids.iter().enumerate() {
            sqlx::query(
                "INSERT INTO tickets (id, desk_id, no, description, priority, status, reporter,
                                      source, created_at, updated_at)
                 VALUES (?1, 1, ?2, 'x', 'low', 'open', 'cli:x', 'cli', 0, 0)",
            )
            .bind(id)
            .bind(no as i64 + 1)
            .execute(&mut *w)
            .await
            .unwrap();
        }
        w.commit().await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn rows_go_in_the_order_they_fall_due_and_a_row_waiting_behind_another_is_not_due() {
        let (_dir, store) = store_with_tickets(&[7]).await;
        let surface = SurfaceRef::new(Platform::Slack, "T1");
        let t0 = Utc::now();
        let dm = |user: &str, text: &str| Outgoing::DirectMessage {
            surface: surface.clone(),
            user: UserRef::slack(user),
            text: text.into(),
            ticket: None,
        };
        // U1 gets two messages; U2 one, queued later.
        store
            .enqueue(DeskId(1), "a", &[dm("U1", "first")], t0)
            .await
            .unwrap();
        store
            .enqueue(DeskId(1), "b", &[dm("U1", "second")], t0)
            .await
            .unwrap();
        store
            .enqueue(DeskId(1), "c", &[dm("U2", "other")], t0)
            .await
            .unwrap();
        let due = store.outbox_due(t0, 10).await.unwrap();
        let texts = |due: &[OutboxItem]| -> Vec<String> {
            due.iter()
                .map(|i| match &i.message {
                    Outgoing::DirectMessage { text, .. } => text.clone(),
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(texts(&due), ["first", "other"], "one row a destination");
        // U1's first is held for 30 s and U2's for 10 s: U1's second waits behind its first.
        let (later, sooner) = (
            t0 + chrono::Duration::seconds(30),
            t0 + chrono::Duration::seconds(10),
        );
        let retry = |item: &OutboxItem, at| Settled {
            joins: None,
            id: item.id,
            desk: item.desk,
            outcome: Outcome::Retry {
                attempts: 1,
                at,
                error: "429".into(),
                progress: None,
            },
        };
        store
            .outbox_settle(&[retry(&due[0], later), retry(&due[1], sooner)], t0)
            .await
            .unwrap();
        assert!(
            store
                .outbox_due(t0 + chrono::Duration::seconds(5), 10)
                .await
                .unwrap()
                .is_empty()
        );
        // The next due is the first row of a destination that falls due first: not the row
        // waiting (due since t0), which would wake the worker for nothing until then.
        let next = store.outbox_next_due().await.unwrap().unwrap();
        assert_eq!(ms(next), ms(sooner));
        // At 30 s both heads are due, in the order they fell due (U2's has the larger id).
        let due = store.outbox_due(later, 10).await.unwrap();
        assert_eq!(texts(&due), ["other", "first"]);
    }

    #[tokio::test]
    async fn a_round_of_outcomes_is_recorded_in_one_batch() {
        let (_dir, store) = store_with_tickets(&[7]).await;
        let surface = SurfaceRef::new(Platform::Slack, "T1");
        let t0 = Utc::now();
        for (key, user) in [("a", "U1"), ("b", "U2"), ("c", "U3"), ("d", "U4")] {
            let msg = Outgoing::DirectMessage {
                surface: surface.clone(),
                user: UserRef::slack(user),
                text: key.into(),
                ticket: None,
            };
            store.enqueue(DeskId(1), key, &[msg], t0).await.unwrap();
        }
        let due = store.outbox_due(t0, 10).await.unwrap();
        assert_eq!(due.len(), 4);
        let card = |message: &str| CardMessage {
            ticket: TicketId(7),
            surface: surface.clone(),
            channel: "C1".into(),
            message_id: message.into(),
        };
        let later = t0 + chrono::Duration::seconds(30);
        let outcomes = [
            Outcome::Sent(Some(card("1.1"))),
            Outcome::Sent(None),
            Outcome::Retry {
                attempts: 1,
                at: later,
                error: "429".into(),
                progress: Some(crate::store::Progress {
                    through: 3,
                    done: vec!["9.9".into()],
                }),
            },
            Outcome::Dead {
                attempts: 3,
                error: "gone".into(),
            },
        ];
        let settled: Vec<Settled> = due
            .iter()
            .zip(outcomes)
            .map(|(item, outcome)| Settled {
                joins: None,
                id: item.id,
                desk: item.desk,
                outcome,
            })
            .collect();
        store.outbox_settle(&settled, t0).await.unwrap();
        // state, attempts, next attempt, last error, done at
        type Row = (String, i64, i64, Option<String>, Option<i64>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT state, attempts, next_attempt_at, last_error, done_at FROM outbox ORDER BY id",
        )
        .fetch_all(&mut *store.read().await.unwrap())
        .await
        .unwrap();
        let (t0_ms, later_ms) = (ms(t0), ms(later));
        assert_eq!(
            rows,
            [
                ("sent".into(), 1, t0_ms, None, Some(t0_ms)),
                ("sent".into(), 1, t0_ms, None, Some(t0_ms)),
                ("pending".into(), 1, later_ms, Some("429".into()), None),
                ("dead".into(), 3, t0_ms, Some("gone".into()), Some(t0_ms)),
            ]
        );
        assert_eq!(
            store
                .card_messages(DeskId(1), TicketId(7), &surface)
                .await
                .unwrap(),
            [card("1.1")]
        );
        // The retried row is the only one left; its delivery now posts the card again, which
        // replaces the message the ticket's card is known by.
        let due = store.outbox_due(later, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        // It comes back with what its attempt finished.
        assert_eq!(due[0].progress.as_ref().unwrap().done, ["9.9"]);
        let settled = [Settled {
            joins: None,
            id: due[0].id,
            desk: DeskId(1),
            outcome: Outcome::Sent(Some(card("2.2"))),
        }];
        store.outbox_settle(&settled, later).await.unwrap();
        // The ticket and its cards in one read: only this surface's, only on its own desk.
        let (record, cards) = store
            .card_of(DeskId(1), TicketId(7), &surface)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((record.ticket.no.0, cards), (1, vec![card("2.2")]));
        let elsewhere = SurfaceRef::new(Platform::Slack, "T2");
        let (_, none) = store
            .card_of(DeskId(1), TicketId(7), &elsewhere)
            .await
            .unwrap()
            .unwrap();
        assert!(none.is_empty());
        assert!(
            store
                .card_of(DeskId(2), TicketId(7), &surface)
                .await
                .unwrap()
                .is_none()
        );
        let stats = store.outbox_stats(later).await.unwrap();
        assert_eq!((stats.pending, stats.dead), (0, 1));
    }

    #[tokio::test]
    async fn refreshes_joined_after_a_delivery_read_its_row_get_a_row_of_their_own() {
        let (_dir, store) = store_with_tickets(&[7]).await;
        let surface = SurfaceRef::new(Platform::Slack, "T1");
        let t0 = Utc::now();
        let refresh = |note: &str| Outgoing::UpdateCards {
            surface: surface.clone(),
            ticket: TicketId(7),
            note: Some(note.into()),
            answered: None,
        };
        store
            .enqueue(DeskId(1), "first", &[refresh("a")], t0)
            .await
            .unwrap();
        store
            .enqueue(DeskId(1), "second", &[refresh("b")], t0)
            .await
            .unwrap();
        let joined = |key: &str| {
            format!(
                r#"UPDATE outbox SET joined = json_insert(coalesce(joined, '[]'), '$[#]',
                     json_object('key', '{key}', 'note', '{key}', 'answered', 'm-{key}'))
                    WHERE idempotency_key = '1:{}:0'"#,
                if key < "c" { "first" } else { "second" }
            )
        };
        for key in ["a1", "a2", "c1"] {
            execute(&store, &joined(key)).await;
        }
        // The delivery says each row's note, then what joined it, in order; the card its last
        // joined refresh answered with is left alone.
        let due = store.outbox_due(t0, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        let item = &due[0];
        let Outgoing::UpdateCards { note, answered, .. } = &item.message else {
            panic!("{item:?}");
        };
        assert_eq!(note.as_deref(), Some("a\na1\na2\nb\nc1"));
        assert_eq!(answered.as_deref(), Some("m-c1"));
        assert_eq!(item.joins, [(item.id, 2), (item.merged[0], 1)]);
        // Joined to both while the delivery ran.
        for key in ["a3", "c2"] {
            execute(&store, &joined(key)).await;
        }
        let settled: Vec<Settled> = item
            .joins
            .iter()
            .map(|&(id, joins)| Settled {
                id,
                desk: DeskId(1),
                outcome: Outcome::Sent(None),
                joins: Some(joins),
            })
            .collect();
        store.outbox_settle(&settled, t0).await.unwrap();
        // Only they are said next, in the order the rows were: nothing lost, nothing twice.
        let due = store.outbox_due(t0, 10).await.unwrap();
        let notes: Vec<_> = due
            .iter()
            .map(|i| match &i.message {
                Outgoing::UpdateCards { note, .. } => note.clone(),
                _ => None,
            })
            .collect();
        assert_eq!(notes, [Some("a3\nc2".to_owned())]);
        let stats = store.outbox_stats(t0).await.unwrap();
        assert_eq!(stats.pending, 2);
        // A delivery to be retried leaves the rows it carried as they were, less what joined
        // them after it read them.
        let item = &due[0];
        let merged = item.merged[0];
        execute(
            &store,
            &format!(
                r#"UPDATE outbox SET joined = json_insert(joined, '$[#]', json_object('key', 'c3', 'note', 'c3'))
                    WHERE id = {merged}"#
            ),
        )
        .await;
        let carried = Settled {
            id: merged,
            desk: DeskId(1),
            outcome: Outcome::Carried,
            joins: Some(1),
        };
        store.outbox_settle(&[carried], t0).await.unwrap();
        let kept: (String, i64, String) = sqlx::query_as(
            "SELECT state, attempts, joined ->> '$[#-1].note' FROM outbox WHERE id = ?",
        )
        .bind(merged)
        .fetch_one(&mut *store.read().await.unwrap())
        .await
        .unwrap();
        assert_eq!(kept, ("pending".into(), 0, "c2".into()));
        let stats = store.outbox_stats(t0).await.unwrap();
        assert_eq!(stats.pending, 3, "c3 in a row of its own");
    }

    #[tokio::test]
    async fn a_message_id_posted_again_for_another_ticket_does_not_stop_the_round() {
        let (_dir, store) = store_with_tickets(&[7, 8, 9]).await;
        let surface = SurfaceRef::new(Platform::Slack, "T1");
        let t0 = Utc::now();
        for key in ["a", "b", "c", "d"] {
            // Each to a destination of its own, so all four are due at once.
            let msg = Outgoing::ChannelMessage {
                surface: surface.clone(),
                channel: format!("C{key}"),
                text: key.into(),
            };
            store.enqueue(DeskId(1), key, &[msg], t0).await.unwrap();
        }
        let due = store.outbox_due(t0, 10).await.unwrap();
        assert_eq!(due.len(), 4);
        // A stand-in that answers every post with the same ts: rounds one and two.
        let posted = |item: &OutboxItem, ticket: i64| Settled {
            joins: None,
            id: item.id,
            desk: DeskId(1),
            outcome: Outcome::Sent(Some(CardMessage {
                ticket: TicketId(ticket),
                surface: surface.clone(),
                channel: "C1".into(),
                message_id: "1.1".into(),
            })),
        };
        store
            .outbox_settle(&[posted(&due[0], 7)], t0)
            .await
            .unwrap();
        store
            .outbox_settle(&[posted(&due[1], 8), posted(&due[2], 9)], t0)
            .await
            .unwrap();
        let owners: Vec<(i64,)> =
            sqlx::query_as("SELECT ticket_id FROM card_messages WHERE message_id = '1.1'")
                .fetch_all(&mut *store.read().await.unwrap())
                .await
                .unwrap();
        assert_eq!(owners, [(8,)]);
        let stats = store.outbox_stats(t0).await.unwrap();
        assert_eq!(stats.pending, 1, "the three settled rows are recorded");
    }

    #[tokio::test]
    async fn pruning_walks_the_outbox_in_windows_and_stops_at_young_rows() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        let mut w = store.write().await.unwrap();
        // Ids 1-6 old (sent, sent, dead, sent, pending, sent), 7-8 young and sent.
        sqlx::query(
            "INSERT INTO desks (id, name, created_at) VALUES (1, 'a', 0), (2, 'b', 0);
             INSERT INTO outbox (id, desk_id, destination, idempotency_key, payload, state,
                                 next_attempt_at, created_at)
             VALUES (1, 1, 'd', 'k1', '{}', 'sent', 0, 10), (2, 1, 'd', 'k2', '{}', 'sent', 0, 10),
                    (3, 1, 'd', 'k3', '{}', 'dead', 0, 10), (4, 1, 'd', 'k4', '{}', 'sent', 0, 20),
                    (5, 1, 'd', 'k5', '{}', 'pending', 0, 20), (6, 1, 'd', 'k6', '{}', 'sent', 0, 30),
                    (7, 1, 'd', 'k7', '{}', 'sent', 0, 100), (8, 1, 'd', 'k8', '{}', 'sent', 0, 100);",
        )
        .execute(&mut *w)
        .await
        .unwrap();
        w.commit().await.unwrap();
        let before = at(50);
        assert_eq!(store.prune_sent(before, 0, 2).await.unwrap(), (2, Some(2)));
        assert_eq!(store.prune_sent(before, 2, 2).await.unwrap(), (1, Some(4)));
        // This window reaches a young row: the walk ends there.
        assert_eq!(store.prune_sent(before, 4, 3).await.unwrap(), (1, None));
        assert_eq!(store.prune_sent(before, 8, 3).await.unwrap(), (0, None));
        let left: Vec<i64> = sqlx::query_scalar("SELECT id FROM outbox ORDER BY id")
            .fetch_all(&mut *store.read().await.unwrap())
            .await
            .unwrap();
        assert_eq!(left, [3, 5, 7, 8]);

        // Request keys walk every desk in key order.
        for (desk, key, created) in [(1, "a", 10), (1, "b", 100), (2, "a", 10), (2, "c", 10)] {
            let mut w = store.write().await.unwrap();
            sqlx::query("INSERT INTO request_keys (desk_id, key, created_at) VALUES (?, ?, ?)")
                .bind(desk)
                .bind(key)
                .bind(created)
                .execute(&mut *w)
                .await
                .unwrap();
            w.commit().await.unwrap();
        }
        let step = store.prune_request_keys(before, None, 3).await.unwrap();
        assert_eq!(step, (2, Some((DeskId(2), "a".into()))));
        let step = store.prune_request_keys(before, step.1, 3).await.unwrap();
        assert_eq!(step, (1, Some((DeskId(2), "c".into()))));
        assert_eq!(
            store.prune_request_keys(before, step.1, 3).await.unwrap(),
            (0, None)
        );
        let left: Vec<(i64, String)> =
            sqlx::query_as("SELECT desk_id, key FROM request_keys ORDER BY desk_id, key")
                .fetch_all(&mut *store.read().await.unwrap())
                .await
                .unwrap();
        assert_eq!(left, [(1, "b".to_owned())]);
    }
}
