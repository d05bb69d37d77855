//! Mailboxes and the email that joined tickets, in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{SqliteStore, at, corrupt, ms};
use crate::core::command::Provider;
use crate::core::people::UserRef;
use crate::core::ticket::{Action, TicketNo};
use crate::core::ticket::{DeskId, TicketId};
use crate::store::{Changed, MailRecord, MailStore, Mailbox, OutFn, Result, SealFn};

struct MailboxRow {
    id: i64,
    desk_id: i64,
    provider: String,
    address: String,
    tokens: Vec<u8>,
    cursor: Option<String>,
    status: String,
}

impl MailboxRow {
    fn mailbox(self) -> Result<Mailbox> {
        Ok(Mailbox {
            id: self.id,
            desk: DeskId(self.desk_id),
            provider: Provider::parse(&self.provider).ok_or_else(|| corrupt(&self.provider))?,
            address: self.address,
            tokens: self.tokens,
            cursor: self.cursor,
            connected: self.status == "connected",
        })
    }
}

#[async_trait]
impl MailStore for SqliteStore {
    async fn save_mailbox(
        &self,
        desk: DeskId,
        provider: Provider,
        address: &str,
        by: &UserRef,
        seal: &SealFn<'_>,
        cursor: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let provider = provider.as_str();
        let address = address.to_lowercase();
        let by = by.to_string();
        let now = ms(now);
        let empty: Vec<u8> = Vec::new();
        let mut tx = self.write().await?;
        let id = sqlx::query_scalar!(
            r#"INSERT INTO mailboxes (desk_id, provider, address, connected_by, tokens, cursor, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (desk_id, provider, address) DO UPDATE SET status = 'connected',
                   connected_by = excluded.connected_by, last_error = NULL,
                   cursor = coalesce(mailboxes.cursor, excluded.cursor)
               RETURNING id AS "id!: i64""#,
            desk.0,
            provider,
            address,
            by,
            empty,
            cursor,
            now
        )
        .fetch_one(&mut *tx)
        .await?;
        let sealed = seal(id);
        sqlx::query!("UPDATE mailboxes SET tokens = ? WHERE id = ?", sealed, id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn connected_mailboxes(&self) -> Result<Vec<Mailbox>> {
        let rows = sqlx::query_as!(
            MailboxRow,
            r#"SELECT id AS "id!", desk_id, provider, address, tokens, cursor, status
               FROM mailboxes WHERE status = 'connected' ORDER BY id"#
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        rows.into_iter().map(MailboxRow::mailbox).collect()
    }

    async fn mailboxes_of(&self, desk: DeskId) -> Result<Vec<Mailbox>> {
        let rows = sqlx::query_as!(
            MailboxRow,
            r#"SELECT id AS "id!", desk_id, provider, address, tokens, cursor, status
               FROM mailboxes WHERE desk_id = ? ORDER BY id"#,
            desk.0
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        rows.into_iter().map(MailboxRow::mailbox).collect()
    }

    async fn set_mailbox_tokens(&self, id: i64, sealed: &[u8]) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query!("UPDATE mailboxes SET tokens = ? WHERE id = ?", sealed, id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_mailbox_cursor(&self, id: i64, cursor: &str, now: DateTime<Utc>) -> Result<()> {
        let now = ms(now);
        let mut tx = self.write().await?;
        sqlx::query!(
            "UPDATE mailboxes SET cursor = ?, last_polled_at = ?, last_error = NULL WHERE id = ?",
            cursor,
            now,
            id
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn disconnect_mailbox(&self, id: i64, reason: &str) -> Result<bool> {
        let mut tx = self.write().await?;
        let n = sqlx::query!(
            "UPDATE mailboxes SET status = 'disconnected', last_error = ? WHERE id = ? AND status = 'connected'",
            reason,
            id
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn mail_seen(&self, mailbox: i64, provider_id: &str) -> Result<bool> {
        let seen = sqlx::query_scalar!(
            "SELECT 1 AS one FROM mail_messages WHERE mailbox_id = ? AND provider_id = ?",
            mailbox,
            provider_id
        )
        .fetch_optional(&mut *self.read().await?)
        .await?;
        Ok(seen.is_some())
    }

    async fn record_mail(
        &self,
        desk: DeskId,
        mailbox: i64,
        ticket: TicketId,
        m: &MailRecord,
    ) -> Result<()> {
        let sent = m.sent_at.map(ms);
        let mut tx = self.write().await?;
        sqlx::query!(
            "INSERT OR IGNORE INTO mail_messages (desk_id, mailbox_id, provider_id, ticket_id, message_id,
                 thread_id, from_email, subject, web_link, sent_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            desk.0,
            mailbox,
            m.provider_id,
            ticket.0,
            m.message_id,
            m.thread_id,
            m.from_email,
            m.subject,
            m.web_link,
            sent
        )
        .execute(&mut *tx)
        .await?;
        if let Some(thread) = &m.thread_id {
            sqlx::query!(
                "INSERT OR IGNORE INTO ticket_threads (desk_id, mailbox_id, thread_id, ticket_id) VALUES (?, ?, ?, ?)",
                desk.0,
                mailbox,
                thread,
                ticket.0
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn ticket_of_thread(&self, mailbox: i64, thread_id: &str) -> Result<Option<TicketId>> {
        let t = sqlx::query_scalar!(
            "SELECT ticket_id FROM ticket_threads WHERE mailbox_id = ? AND thread_id = ?",
            mailbox,
            thread_id
        )
        .fetch_optional(&mut *self.read().await?)
        .await?;
        Ok(t.map(TicketId))
    }

    async fn ticket_of_message_ids(
        &self,
        desk: DeskId,
        ids: &[String],
    ) -> Result<Option<TicketId>> {
        for id in ids.iter().rev() {
            let t = sqlx::query_scalar!(
                "SELECT ticket_id FROM mail_messages WHERE desk_id = ? AND message_id = ? LIMIT 1",
                desk.0,
                id
            )
            .fetch_optional(&mut *self.read().await?)
            .await?;
            if let Some(t) = t {
                return Ok(Some(TicketId(t)));
            }
        }
        Ok(None)
    }

    async fn link_thread(
        &self,
        desk: DeskId,
        mailbox: i64,
        thread_id: &str,
        ticket: TicketId,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query!(
            "INSERT INTO ticket_threads (desk_id, mailbox_id, thread_id, ticket_id) VALUES (?, ?, ?, ?)
             ON CONFLICT (mailbox_id, thread_id) DO UPDATE SET ticket_id = excluded.ticket_id",
            desk.0,
            mailbox,
            thread_id,
            ticket.0
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn mail_of_ticket(&self, desk: DeskId, ticket: TicketId) -> Result<Vec<MailRecord>> {
        let rows = sqlx::query!(
            r#"SELECT provider_id, message_id, thread_id, from_email, subject, web_link, sent_at
               FROM mail_messages WHERE desk_id = ? AND ticket_id = ? ORDER BY sent_at, provider_id"#,
            desk.0,
            ticket.0
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| MailRecord {
                provider_id: r.provider_id,
                message_id: r.message_id,
                thread_id: r.thread_id,
                from_email: r.from_email,
                subject: r.subject.unwrap_or_default(),
                web_link: r.web_link,
                sent_at: r.sent_at.map(at),
            })
            .collect())
    }

    async fn append_mail(
        &self,
        desk: DeskId,
        mailbox: i64,
        no: TicketNo,
        actor: &UserRef,
        actions: &[Action],
        m: &MailRecord,
        out: &OutFn<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<Changed>> {
        let sent = m.sent_at.map(ms);
        let mut tx = self.write().await?;
        let ticket = sqlx::query_scalar!(
            r#"SELECT id AS "id!: i64" FROM tickets WHERE desk_id = ? AND no = ?"#,
            desk.0,
            no.0
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(crate::store::StoreError::NoTicket(no))?;
        let inserted = sqlx::query!(
            "INSERT OR IGNORE INTO mail_messages (desk_id, mailbox_id, provider_id, ticket_id, message_id,
                 thread_id, from_email, subject, web_link, sent_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            desk.0,
            mailbox,
            m.provider_id,
            ticket,
            m.message_id,
            m.thread_id,
            m.from_email,
            m.subject,
            m.web_link,
            sent
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(None);
        }
        if let Some(thread) = &m.thread_id {
            sqlx::query!(
                "INSERT OR IGNORE INTO ticket_threads (desk_id, mailbox_id, thread_id, ticket_id) VALUES (?, ?, ?, ?)",
                desk.0,
                mailbox,
                thread,
                ticket
            )
            .execute(&mut *tx)
            .await?;
        }
        // The messages go with the last action: a reply that reopens a ticket is one note and
        // one message to the assignee, not one per action.
        let mut last = None;
        let silent: &OutFn<'_> = &|_| Vec::new();
        for (i, action) in actions.iter().enumerate() {
            let out = if i + 1 == actions.len() { out } else { silent };
            last = Some(Self::change_in(&mut tx, desk, no, actor, action, out, now).await?);
        }
        tx.commit().await?;
        Ok(last)
    }
}
