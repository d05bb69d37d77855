//! Tickets, the timeline and idempotent creation in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Sqlite;

use super::{SqliteStore, Write, at, corrupt, ms};
use crate::core::outgoing::Outgoing;
use crate::core::people::UserRef;
use crate::core::ticket::{
    Action, ContactLink, DeskId, Event, EventKind, NewEvent, Priority, Source, Status, Ticket,
    TicketId, TicketNo,
};
use crate::store::{
    Changed, Created, ExportedTicket, ListQuery, NewTicket, OutFn, Result, TicketRecord,
    TicketStore,
};

/// A row of `ticket_view`.
struct TicketRow {
    id: i64,
    desk_id: i64,
    no: i64,
    description: String,
    priority: String,
    status: String,
    assignee: Option<String>,
    reporter: String,
    source: String,
    created_at: i64,
    updated_at: i64,
    first_response_at: Option<i64>,
    resolved_at: Option<i64>,
    individual_id: Option<i64>,
    assignee_name: Option<String>,
    individual_name: Option<String>,
    individual_email: Option<String>,
    org_id: Option<i64>,
    organization_name: Option<String>,
    first_due: Option<i64>,
    resolution_due: Option<i64>,
    sla_paused: i64,
}

impl TryFrom<TicketRow> for TicketRecord {
    type Error = crate::store::StoreError;

    fn try_from(r: TicketRow) -> Result<TicketRecord> {
        let individual = r.individual_id.map(|id| {
            let label = match (&r.individual_name, &r.individual_email) {
                (Some(n), Some(e)) => format!("{n} <{e}>"),
                (Some(n), None) => n.clone(),
                (None, Some(e)) => e.clone(),
                (None, None) => format!("contact {id}"),
            };
            (id, label)
        });
        let organization = r.org_id.zip(r.organization_name);
        let contact = (individual.is_some() || organization.is_some()).then_some(ContactLink {
            individual,
            organization,
        });
        let ticket = Ticket {
            id: TicketId(r.id),
            desk: DeskId(r.desk_id),
            no: TicketNo(r.no),
            description: r.description,
            priority: Priority::parse(&r.priority).ok_or_else(|| corrupt(&r.priority))?,
            status: Status::parse(&r.status).ok_or_else(|| corrupt(&r.status))?,
            assignee: r.assignee.map(|a| a.parse()).transpose().map_err(corrupt)?,
            reporter: r.reporter.parse().map_err(corrupt)?,
            contact,
            source: Source::parse(&r.source).ok_or_else(|| corrupt(&r.source))?,
            created_at: at(r.created_at),
            updated_at: at(r.updated_at),
            first_response_at: r.first_response_at.map(at),
            resolved_at: r.resolved_at.map(at),
            sla: crate::core::sla::SlaDue {
                first_due: r.first_due.map(at),
                resolution_due: r.resolution_due.map(at),
                paused: r.sla_paused != 0,
            },
        };
        Ok(TicketRecord {
            ticket,
            assignee_name: r.assignee_name,
        })
    }
}

impl SqliteStore {
    /// One ticket by number or by id, through any executor (the reader, or a transaction).
    async fn fetch_ticket<'e, E: sqlx::Executor<'e, Database = Sqlite>>(
        exec: E,
        desk: DeskId,
        no: Option<TicketNo>,
        id: Option<TicketId>,
    ) -> Result<Option<TicketRecord>> {
        let (no, id) = (no.map(|n| n.0), id.map(|i| i.0));
        let row = sqlx::query_as!(
            TicketRow,
            r#"SELECT id AS "id!", desk_id AS "desk_id!", no AS "no!", description AS "description!",
                      priority AS "priority!", status AS "status!", assignee, reporter AS "reporter!",
                      source AS "source!", created_at AS "created_at!", updated_at AS "updated_at!",
                      first_response_at, resolved_at, individual_id, assignee_name,
                      individual_name, individual_email, org_id, organization_name,
                      first_due, resolution_due, sla_paused AS "sla_paused!"
               FROM ticket_view WHERE desk_id = ?1 AND (no = ?2 OR id = ?3)"#,
            desk.0,
            no,
            id
        )
        .fetch_optional(exec)
        .await?;
        row.map(TryInto::try_into).transpose()
    }

    async fn ticket_in(tx: &mut Write, desk: DeskId, no: TicketNo) -> Result<Option<TicketRecord>> {
        Self::fetch_ticket(&mut **tx, desk, Some(no), None).await
    }

    async fn insert_events(
        tx: &mut Write,
        ticket: &Ticket,
        events: &[NewEvent],
        now: i64,
    ) -> Result<i64> {
        let mut last = 0;
        for e in events {
            let actor = e.actor.to_string();
            let kind = e.kind.as_str();
            last = sqlx::query_scalar!(
                "INSERT INTO events (desk_id, ticket_id, actor, kind, old_value, new_value, note, at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id AS \"id!: i64\"",
                ticket.desk.0,
                ticket.id.0,
                actor,
                kind,
                e.old_value,
                e.new_value,
                e.note,
                now
            )
            .fetch_one(&mut **tx)
            .await?;
        }
        Ok(last)
    }

    /// Creates a ticket in the caller's transaction (see [`TicketStore::create_ticket`]).
    pub(super) async fn create_in(
        tx: &mut Write,
        desk: DeskId,
        new: &NewTicket,
        key: Option<&str>,
        out: &OutFn<'_>,
        now: DateTime<Utc>,
    ) -> Result<Created> {
        let now_ms = ms(now);
        if let Some(key) = key {
            let seen = sqlx::query_scalar!(
                "SELECT t.no FROM request_keys k JOIN tickets t ON t.id = k.ticket_id
                 WHERE k.desk_id = ? AND k.key = ?",
                desk.0,
                key
            )
            .fetch_optional(&mut **tx)
            .await?;
            if let Some(no) = seen {
                let record = Self::ticket_in(tx, desk, TicketNo(no))
                    .await?
                    .ok_or(crate::store::StoreError::NoTicket(TicketNo(no)))?;
                return Ok(Created {
                    ticket: record.ticket,
                    replayed: true,
                });
            }
        }
        let no = sqlx::query_scalar!(
            "UPDATE desks SET next_no = next_no + 1 WHERE id = ? RETURNING next_no - 1 AS \"no!: i64\"",
            desk.0
        )
        .fetch_one(&mut **tx)
        .await?;
        let priority = new.priority.as_str();
        let reporter = new.reporter.to_string();
        let assignee = new.assignee.as_ref().map(UserRef::to_string);
        let source = new.source.as_str();
        let sla = new.sla.as_ref();
        let first_due = sla.and_then(|s| s.due.first_due).map(ms);
        let resolution_due = sla.and_then(|s| s.due.resolution_due).map(ms);
        let first_level = sla.map(|s| s.first_level.as_str());
        let resolution_level = sla.map(|s| s.resolution_level.as_str());
        let check_at = sla.and_then(|s| s.check_at).map(ms);
        let id = sqlx::query_scalar!(
            "INSERT INTO tickets (desk_id, no, description, priority, status, assignee, reporter,
                                  individual_id, source, created_at, updated_at, first_due,
                                  resolution_due, first_level, resolution_level, sla_check_at)
             VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id AS \"id!: i64\"",
            desk.0,
            no,
            new.description,
            priority,
            assignee,
            reporter,
            new.individual,
            source,
            now_ms,
            now_ms,
            first_due,
            resolution_due,
            first_level,
            resolution_level,
            check_at
        )
        .fetch_one(&mut **tx)
        .await?;
        if let Some(key) = key {
            sqlx::query!(
                "INSERT INTO request_keys (desk_id, key, ticket_id, created_at) VALUES (?, ?, ?, ?)",
                desk.0,
                key,
                id,
                now_ms
            )
            .execute(&mut **tx)
            .await?;
        }
        // The new ticket is known whole without reading it back, unless it links a contact
        // (whose label the view builds).
        let record = if new.individual.is_some() {
            Self::ticket_in(tx, desk, TicketNo(no))
                .await?
                .ok_or(crate::store::StoreError::NoTicket(TicketNo(no)))?
        } else {
            TicketRecord {
                ticket: Ticket {
                    id: TicketId(id),
                    desk,
                    no: TicketNo(no),
                    description: new.description.clone(),
                    priority: new.priority,
                    status: Status::Open,
                    assignee: new.assignee.clone(),
                    reporter: new.reporter.clone(),
                    contact: None,
                    source: new.source,
                    created_at: at(now_ms),
                    updated_at: at(now_ms),
                    first_response_at: None,
                    resolved_at: None,
                    sla: new.sla.map(|s| s.due).unwrap_or_default(),
                },
                assignee_name: None,
            }
        };
        let mut events = vec![NewEvent {
            actor: new.reporter.clone(),
            kind: EventKind::Created,
            old_value: None,
            new_value: Some(new.priority.as_str().into()),
            note: None,
        }];
        if let Some(a) = &new.assignee {
            events.push(NewEvent {
                actor: new.reporter.clone(),
                kind: EventKind::Assigned,
                old_value: None,
                new_value: Some(a.to_string()),
                note: None,
            });
        }
        let cause = Self::insert_events(tx, &record.ticket, &events, now_ms).await?;
        Self::enqueue_in(
            tx,
            desk,
            &format!("event{cause}"),
            &out(&record.ticket),
            now_ms,
        )
        .await?;
        Ok(Created {
            ticket: record.ticket,
            replayed: false,
        })
    }

    /// Applies `action` to ticket `no` in the caller's transaction: the ticket, its events and
    /// `out` in the outbox.
    pub(super) async fn change_in(
        tx: &mut Write,
        desk: DeskId,
        no: TicketNo,
        actor: &UserRef,
        action: &Action,
        out: &OutFn<'_>,
        now: DateTime<Utc>,
    ) -> Result<Changed> {
        let before = Self::ticket_in(tx, desk, no)
            .await?
            .ok_or(crate::store::StoreError::NoTicket(no))?
            .ticket;
        let Some(applied) = before.apply(action, actor, now)? else {
            return Ok(Changed::No(before));
        };
        let t = &applied.ticket;
        let now_ms = ms(now);
        let (priority, status) = (t.priority.as_str(), t.status.as_str());
        let assignee = t.assignee.as_ref().map(UserRef::to_string);
        let individual = t
            .contact
            .as_ref()
            .and_then(|c| c.individual.as_ref().map(|i| i.0));
        let organization = t
            .contact
            .as_ref()
            .and_then(|c| c.organization.as_ref().map(|o| o.0));
        let first_response = t.first_response_at.map(ms);
        let resolved = t.resolved_at.map(ms);
        sqlx::query!(
            "UPDATE tickets SET priority = ?, status = ?, assignee = ?, individual_id = ?,
                    organization_id = ?, updated_at = ?, first_response_at = ?, resolved_at = ?
             WHERE desk_id = ? AND id = ?",
            priority,
            status,
            assignee,
            individual,
            organization,
            now_ms,
            first_response,
            resolved,
            desk.0,
            t.id.0
        )
        .execute(&mut **tx)
        .await?;
        let cause = Self::insert_events(tx, t, &applied.events, now_ms).await?;
        Self::enqueue_in(tx, desk, &format!("event{cause}"), &out(t), now_ms).await?;
        let after = Self::ticket_in(tx, desk, no)
            .await?
            .ok_or(crate::store::StoreError::NoTicket(no))?;
        Ok(Changed::Yes(after.ticket))
    }

    /// Queues `out` in the caller's transaction; `cause` makes each row's idempotency key.
    pub(super) async fn enqueue_in(
        tx: &mut Write,
        desk: DeskId,
        cause: &str,
        out: &[Outgoing],
        now: i64,
    ) -> Result<()> {
        for (i, msg) in out.iter().enumerate() {
            let destination = msg.destination();
            // A card is posted to a channel once, whatever caused it.
            let key = match msg {
                Outgoing::PostCard {
                    surface,
                    channel,
                    ticket,
                } => format!("post:{surface}:{channel}:{}", ticket.0),
                _ => format!("{}:{cause}:{i}", desk.0),
            };
            let payload = serde_json::to_string(msg).map_err(corrupt)?;
            sqlx::query!(
                "INSERT INTO outbox (desk_id, destination, idempotency_key, payload, next_attempt_at, created_at)
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING",
                desk.0,
                destination,
                key,
                payload,
                now,
                now
            )
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl TicketStore for SqliteStore {
    async fn create_ticket(
        &self,
        desk: DeskId,
        new: &NewTicket,
        key: Option<&str>,
        out: &OutFn<'_>,
        now: DateTime<Utc>,
    ) -> Result<Created> {
        let mut tx = self.write().await?;
        let created = Self::create_in(&mut tx, desk, new, key, out, now).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn change_ticket(
        &self,
        desk: DeskId,
        no: TicketNo,
        actor: &UserRef,
        action: &Action,
        out: &OutFn<'_>,
        now: DateTime<Utc>,
    ) -> Result<Changed> {
        let mut tx = self.write().await?;
        let changed = Self::change_in(&mut tx, desk, no, actor, action, out, now).await?;
        tx.commit().await?;
        Ok(changed)
    }

    async fn ticket(&self, desk: DeskId, no: TicketNo) -> Result<Option<TicketRecord>> {
        Self::fetch_ticket(&mut *self.read().await?, desk, Some(no), None).await
    }

    async fn ticket_by_id(&self, desk: DeskId, id: TicketId) -> Result<Option<TicketRecord>> {
        Self::fetch_ticket(&mut *self.read().await?, desk, None, Some(id)).await
    }

    async fn timeline(&self, desk: DeskId, id: TicketId) -> Result<Vec<Event>> {
        let rows = sqlx::query!(
            "SELECT e.actor, m.name AS actor_name, e.kind, e.old_value, e.new_value, e.note, e.at
             FROM events e LEFT JOIN members m ON m.desk_id = e.desk_id AND m.user_ref = e.actor
             WHERE e.desk_id = ? AND e.ticket_id = ? ORDER BY e.id",
            desk.0,
            id.0
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(Event {
                    actor: r.actor.parse().map_err(corrupt)?,
                    actor_name: r.actor_name,
                    kind: EventKind::parse(&r.kind).ok_or_else(|| corrupt(&r.kind))?,
                    old_value: r.old_value,
                    new_value: r.new_value,
                    note: r.note,
                    at: at(r.at),
                })
            })
            .collect()
    }

    async fn list(
        &self,
        desk: DeskId,
        q: &ListQuery,
        limit: i64,
    ) -> Result<(Vec<TicketRecord>, i64)> {
        let status = q.status.map(Status::as_str);
        let priority = q.priority.map(Priority::as_str);
        let assignee = q.assignee.as_ref().map(UserRef::to_string);
        let rows = sqlx::query_as!(
            TicketRow,
            r#"SELECT id AS "id!", desk_id AS "desk_id!", no AS "no!", description AS "description!",
                      priority AS "priority!", status AS "status!", assignee, reporter AS "reporter!",
                      source AS "source!", created_at AS "created_at!", updated_at AS "updated_at!",
                      first_response_at, resolved_at, individual_id, assignee_name,
                      individual_name, individual_email, org_id, organization_name,
                      first_due, resolution_due, sla_paused AS "sla_paused!"
               FROM ticket_view
               WHERE desk_id = ?1
                 AND (?2 = 0 OR status IN ('open', 'in_progress', 'waiting'))
                 AND (?3 IS NULL OR status = ?3)
                 AND (?4 IS NULL OR priority = ?4)
                 AND (?5 IS NULL OR assignee = ?5)
                 AND (?6 = 0 OR assignee IS NULL)
               ORDER BY CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1
                                      WHEN 'medium' THEN 2 ELSE 3 END, no
               LIMIT ?7"#,
            desk.0,
            q.active_only,
            status,
            priority,
            assignee,
            q.unassigned,
            limit
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        let total = sqlx::query_scalar!(
            r#"SELECT COUNT(*) AS "n!: i64" FROM tickets
               WHERE desk_id = ?1
                 AND (?2 = 0 OR status IN ('open', 'in_progress', 'waiting'))
                 AND (?3 IS NULL OR status = ?3)
                 AND (?4 IS NULL OR priority = ?4)
                 AND (?5 IS NULL OR assignee = ?5)
                 AND (?6 = 0 OR assignee IS NULL)"#,
            desk.0,
            q.active_only,
            status,
            priority,
            assignee,
            q.unassigned
        )
        .fetch_one(&mut *self.read().await?)
        .await?;
        let records = rows
            .into_iter()
            .map(TryInto::try_into)
            .collect::<Result<Vec<_>>>()?;
        Ok((records, total))
    }

    async fn export(&self, desk: DeskId) -> Result<Vec<ExportedTicket>> {
        let (records, _) = self.list(desk, &ListQuery::default(), i64::MAX).await?;
        let mut records = records;
        records.sort_by_key(|r| r.ticket.no);
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            let timeline = self.timeline(desk, r.ticket.id).await?;
            out.push(ExportedTicket {
                ticket: r.ticket,
                assignee_name: r.assignee_name,
                timeline,
            });
        }
        Ok(out)
    }
}
