//! Tickets and the timeline in SQLite: reads, lists, export, and the `TicketStore` entry points
//! for creates and changes (their writes are in `writes.rs`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Sqlite;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, Write, at, corrupt};
use crate::core::people::UserRef;
use crate::core::sla::Step;
use crate::core::ticket::{
    ContactLink, DeskId, Event, EventKind, Priority, Source, Status, Ticket, TicketId, TicketNo,
};
use crate::store::{
    ChangeOutcome, Created, ExportedTicket, ListQuery, NewTicket, OwnedOut, Result, TicketChange,
    TicketRecord, TicketStore,
};

/// A statement reading tickets of `ticket_view` that match `$where` (plain names: the rows
/// are read with `FromRow` as [`TicketRow`]s).
macro_rules! select_tickets {
    ($where:literal) => {
        concat!(
            "SELECT id, desk_id, no, description, priority, status, assignee, reporter,
                source, created_at, updated_at, first_response_at, resolved_at, individual_id,
                assignee_name, individual_name, individual_email, org_id, organization_name,
                first_due, resolution_due, sla_paused
               FROM ticket_view WHERE ",
            $where
        )
    };
}
pub(super) use select_tickets;

/// `/ticket show`'s two reads as one command: the ticket by desk and number, then its
/// timeline.
const SHOW: &str = concat!(
    select_tickets!("desk_id = ?1 ->> 'desk' AND no = ?1 ->> 'no';"),
    "SELECT e.actor, (SELECT m.name FROM members m
                       WHERE m.desk_id = e.desk_id AND m.user_ref = e.actor) AS actor_name,
            e.kind, e.old_value, e.new_value, e.note, e.at
       FROM events e
      WHERE e.desk_id = ?1 ->> 'desk'
        AND e.ticket_id = (SELECT id FROM tickets WHERE desk_id = ?1 ->> 'desk' AND no = ?1 ->> 'no')
      ORDER BY e.id"
);

/// The parameter of [`SHOW`].
#[derive(serde::Serialize)]
struct DeskNo {
    desk: i64,
    no: i64,
}

/// A row of a ticket's timeline.
#[derive(sqlx::FromRow)]
struct EventRow {
    actor: String,
    actor_name: Option<String>,
    kind: String,
    old_value: Option<String>,
    new_value: Option<String>,
    note: Option<String>,
    at: i64,
}

impl TryFrom<EventRow> for Event {
    type Error = crate::store::StoreError;

    fn try_from(r: EventRow) -> Result<Event> {
        Ok(Event {
            actor: r.actor.parse().map_err(corrupt)?,
            actor_name: r.actor_name,
            kind: EventKind::parse(&r.kind).ok_or_else(|| corrupt(&r.kind))?,
            old_value: r.old_value,
            new_value: r.new_value,
            note: r.note,
            at: at(r.at),
        })
    }
}

/// A row of `ticket_view` (or the same fields as a JSON object: [`super::changes`]' head).
#[derive(sqlx::FromRow, serde::Deserialize)]
pub(super) struct TicketRow {
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

    /// Runs `sql`, two statements reading the one parameter `param`, as one command on a
    /// reader (one round trip to its thread) and returns each statement's rows.
    pub(super) async fn two_reads(
        &self,
        sql: &'static str,
        param: String,
    ) -> Result<(Vec<SqliteRow>, Vec<SqliteRow>)> {
        use futures_util::TryStreamExt;
        use sqlx::Executor;
        let mut conn = self.read().await?;
        let mut results = (&mut *conn).fetch_many(sqlx::query(sql).bind(param));
        // The stream marks where the first statement ended.
        let (mut first, mut second, mut first_done) = (Vec::new(), Vec::new(), false);
        while let Some(item) = results.try_next().await? {
            match item {
                sqlx::Either::Left(_) => first_done = true,
                sqlx::Either::Right(row) if !first_done => first.push(row),
                sqlx::Either::Right(row) => second.push(row),
            }
        }
        Ok((first, second))
    }

    pub(super) async fn ticket_in(
        tx: &mut Write,
        desk: DeskId,
        no: TicketNo,
    ) -> Result<Option<TicketRecord>> {
        Self::fetch_ticket(&mut **tx, desk, Some(no), None).await
    }
}

/// A step as the batches read a ticket's timeline: `[kind, old, new, at]`, an element of a
/// JSON array (`json_group_array`: one value to copy out of the database instead of a row per
/// event).
pub(super) type StepJson = (String, Option<String>, Option<String>, i64);

/// The steps of events read as [`StepJson`]s (kinds the clocks do not read are left out).
pub(super) fn steps_of(steps: Vec<StepJson>) -> Result<Vec<Step>> {
    steps
        .into_iter()
        .map(|(kind, old, new, ms)| {
            let kind = EventKind::parse(&kind).ok_or_else(|| corrupt(&kind))?;
            Ok(Step::of(kind, old.as_deref(), new.as_deref(), at(ms)))
        })
        .filter_map(Result::transpose)
        .collect()
}

#[async_trait]
impl TicketStore for SqliteStore {
    async fn create_ticket(
        &self,
        desk: DeskId,
        new: NewTicket,
        key: Option<String>,
        out: OwnedOut,
        now: DateTime<Utc>,
    ) -> Result<Created> {
        super::batches::submit(&self.creates, |done| super::creates::Pending {
            desk,
            new,
            key,
            out,
            now,
            done,
        })
        .await
    }

    async fn change_ticket(&self, change: TicketChange) -> Result<ChangeOutcome> {
        super::batches::submit(&self.changes, |done| super::changes::Pending {
            change,
            done,
        })
        .await
    }

    async fn ticket(&self, desk: DeskId, no: TicketNo) -> Result<Option<TicketRecord>> {
        Self::fetch_ticket(&mut *self.read().await?, desk, Some(no), None).await
    }

    async fn ticket_by_id(&self, desk: DeskId, id: TicketId) -> Result<Option<TicketRecord>> {
        Self::fetch_ticket(&mut *self.read().await?, desk, None, Some(id)).await
    }

    async fn timeline(&self, desk: DeskId, id: TicketId) -> Result<Vec<Event>> {
        let rows = sqlx::query_as!(
            EventRow,
            // A scalar subquery, not a LEFT JOIN: SQLite re-prepared the join form on every
            // execution (see migration 0006), and every `show` and SLA refresh reads this.
            r#"SELECT e.actor AS "actor!",
                      (SELECT m.name FROM members m
                        WHERE m.desk_id = e.desk_id AND m.user_ref = e.actor) AS actor_name,
                      e.kind AS "kind!", e.old_value, e.new_value, e.note, e.at AS "at!"
               FROM events e
               WHERE e.desk_id = ? AND e.ticket_id = ? ORDER BY e.id"#,
            desk.0,
            id.0
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        rows.into_iter().map(Event::try_from).collect()
    }

    async fn ticket_with_timeline(
        &self,
        desk: DeskId,
        no: TicketNo,
    ) -> Result<Option<(TicketRecord, Vec<Event>)>> {
        // Both reads in one command to the reader's thread.
        let param = serde_json::to_string(&DeskNo {
            desk: desk.0,
            no: no.0,
        })
        .map_err(corrupt)?;
        let (ticket, events) = self.two_reads(SHOW, param).await?;
        let Some(ticket) = ticket.first() else {
            return Ok(None);
        };
        let ticket = <TicketRow as sqlx::FromRow<_>>::from_row(ticket)?;
        let events = events
            .iter()
            .map(|row| Event::try_from(<EventRow as sqlx::FromRow<_>>::from_row(row)?))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some((ticket.try_into()?, events)))
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
