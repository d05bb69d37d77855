//! How tickets are written: a create or a change as one batch of statements inside a
//! group-commit round (see `group.rs`), with ids and numbers from the round's memory.

use chrono::{DateTime, Utc};

use super::{SqliteStore, Write, at, corrupt, ms};
use crate::core::outgoing::Outgoing;
use crate::core::people::UserRef;
use crate::core::ticket::{
    Action, DeskId, EventKind, NewEvent, Status, Ticket, TicketId, TicketNo,
};
use crate::store::{Changed, Created, NewTicket, OutFn, Result};

/// The tail of the create and change batches: the change's events, then the outbox rows it
/// causes. Rows without a key of their own are keyed by the change's last event
/// (`{desk}:event{id}:{index}`).
///
/// A batch is a string of statements that sqlx runs as one command on the connection's thread
/// (one round trip instead of one per statement). Its one parameter, `?1`, is a JSON object
/// every statement reads its values from by name (`desk`, `ticket`, `now`, `events` from
/// [`events_json`], `outbox` from [`outbox_json`], and the statement's own): sqlx binds
/// numbered parameters per statement and would skip a number a statement does not use.
/// Every statement is guarded by [`not_replayed`] (true for changes, which carry no `key`).
macro_rules! events_and_outbox {
    () => {
        concat!(
            "INSERT INTO events (desk_id, ticket_id, actor, kind, old_value, new_value, note, at)
             SELECT ?1 ->> 'desk', ?1 ->> 'ticket', value ->> 0, value ->> 1, value ->> 2,
                    value ->> 3, value ->> 4, ?1 ->> 'now'
             FROM json_each(?1, '$.events') WHERE ",
            not_replayed!(),
            " ORDER BY key;
             INSERT INTO outbox (desk_id, destination, idempotency_key, payload, next_attempt_at, created_at)
             SELECT ?1 ->> 'desk', value ->> 0,
                    coalesce(value ->> 1,
                             (?1 ->> 'desk') || ':event' || (SELECT max(id) FROM events) || ':' || key),
                    value ->> 2, ?1 ->> 'now', ?1 ->> 'now'
             FROM json_each(?1, '$.outbox') WHERE ",
            not_replayed!(),
            " ORDER BY key
             ON CONFLICT (idempotency_key) DO NOTHING;"
        )
    };
}

/// True unless the batch's request `key` is already known: a retried create writes nothing.
/// The key itself is stored by the batch's last statement, so the guard means the same thing
/// in every statement of it.
macro_rules! not_replayed {
    () => {
        "(?1 ->> 'key' IS NULL OR NOT EXISTS (SELECT 1 FROM request_keys
            WHERE desk_id = ?1 ->> 'desk' AND key = ?1 ->> 'key'))"
    };
}

/// Every write of a create ([`create_batch`] gives the parameter).
macro_rules! create_writes {
    () => {
        concat!(
            "UPDATE desks SET next_no = (?1 ->> 'no') + 1 WHERE id = ?1 ->> 'desk' AND ",
            not_replayed!(),
            ";
             INSERT INTO tickets (id, desk_id, no, description, priority, status, assignee, reporter,
                                  individual_id, source, created_at, updated_at, first_due,
                                  resolution_due, first_level, resolution_level, sla_check_at)
             SELECT ?1 ->> 'ticket', ?1 ->> 'desk', ?1 ->> 'no', ?1 ->> 'description',
                    ?1 ->> 'priority', 'open', ?1 ->> 'assignee', ?1 ->> 'reporter',
                    ?1 ->> 'individual', ?1 ->> 'source', ?1 ->> 'now', ?1 ->> 'now',
                    ?1 ->> 'first_due', ?1 ->> 'resolution_due', ?1 ->> 'first_level',
                    ?1 ->> 'resolution_level', ?1 ->> 'check_at'
             WHERE ",
            not_replayed!(),
            ";",
            events_and_outbox!(),
            "INSERT INTO request_keys (desk_id, key, ticket_id, created_at)
             SELECT ?1 ->> 'desk', ?1 ->> 'key', ?1 ->> 'ticket', ?1 ->> 'now'
             WHERE ?1 ->> 'key' IS NOT NULL AND ",
            not_replayed!(),
            ";"
        )
    };
}

/// A create whose id and number came from memory, in one round trip with its savepoint: the
/// number of the ticket a retried request made (a row only then), then every write.
const CREATE_FROM_MEMORY: &str = concat!(
    "SELECT t.no FROM request_keys k JOIN tickets t ON t.id = k.ticket_id
      WHERE k.desk_id = ?1 ->> 'desk' AND k.key = ?1 ->> 'key';",
    create_writes!()
);

/// What a create reads when memory has no id or number for it.
const CREATE_HEAD: &str =
    "SELECT (SELECT t.no FROM request_keys k JOIN tickets t ON t.id = k.ticket_id
         WHERE k.desk_id = ?1 ->> 'desk' AND k.key = ?1 ->> 'key') AS seen,
        (SELECT next_no FROM desks WHERE id = ?1 ->> 'desk') AS next_no,
        (SELECT coalesce(max(id), 0) + 1 FROM tickets) AS id";

/// What a create reads first: a retried request's ticket number, the desk's next number and
/// the next ticket id.
#[derive(sqlx::FromRow)]
pub(super) struct CreateHead {
    seen: Option<i64>,
    next_no: Option<i64>,
    id: i64,
}

impl SqliteStore {
    /// One try at a create (see [`TicketStore::create_ticket`]). Ids and numbers come from the
    /// round's memory when it has them (one round trip to the connection's thread, with the
    /// savepoint), else they are read first (two). Under load these round trips, not SQLite,
    /// were the writer's cost (BENCHMARKS.md).
    pub(super) async fn create_once(
        &self,
        desk: DeskId,
        new: &NewTicket,
        key: Option<&str>,
        out: &OutFn<'_>,
        now: DateTime<Utc>,
    ) -> Result<Created> {
        let now_ms = ms(now);
        let (mut tx, rows, planned) = self
            .group
            .write_first(&self.writer, |alloc| match alloc.next(desk.0) {
                Some((id, no)) => {
                    let (ticket, batch) = create_batch(desk, id, no, new, key, out, now_ms)?;
                    Ok((CREATE_FROM_MEMORY, batch, Some(ticket)))
                }
                None => Ok((
                    CREATE_HEAD,
                    serde_json::to_string(&DeskKey { desk: desk.0, key }).map_err(corrupt)?,
                    None,
                )),
            })
            .await?;
        let (seen, ticket) = match planned {
            // Written already, unless the first statement found the request's key.
            Some(ticket) => (
                rows.first()
                    .map(|r| sqlx::Row::try_get::<i64, _>(r, 0))
                    .transpose()?,
                Some(ticket),
            ),
            None => {
                let head: CreateHead = rows
                    .first()
                    .map(sqlx::FromRow::from_row)
                    .transpose()?
                    .ok_or_else(|| corrupt("no create head"))?;
                match head.seen {
                    Some(no) => (Some(no), None),
                    None => {
                        let no = head
                            .next_no
                            .ok_or_else(|| corrupt(format!("no desk {desk}")))?;
                        let (ticket, batch) =
                            create_batch(desk, head.id, no, new, key, out, now_ms)?;
                        sqlx::query(create_writes!())
                            .bind(batch)
                            .execute(&mut *tx)
                            .await?;
                        (None, Some(ticket))
                    }
                }
            }
        };
        let created = match (seen, ticket) {
            (Some(no), _) => Created {
                ticket: Self::ticket_in(&mut tx, desk, TicketNo(no))
                    .await?
                    .ok_or(crate::store::StoreError::NoTicket(TicketNo(no)))?
                    .ticket,
                replayed: true,
            },
            (None, Some(mut ticket)) => {
                tx.alloc().took(desk.0, ticket.id.0, ticket.no.0);
                if new.individual.is_some() {
                    // The contact's label is the view's to build.
                    ticket = Self::ticket_in(&mut tx, desk, ticket.no)
                        .await?
                        .ok_or(crate::store::StoreError::NoTicket(ticket.no))?
                        .ticket;
                }
                Created {
                    ticket,
                    replayed: false,
                }
            }
            (None, None) => return Err(corrupt("a create made nothing")),
        };
        tx.commit().await?;
        Ok(created)
    }

    /// Applies `action` to ticket `no` in the caller's transaction: the ticket, its events and
    /// `out` in the outbox (one read, then one batch of writes).
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
        Self::apply_in(tx, before, actor, action, out, now).await
    }

    /// Applies `action` to `before` (the ticket as read in this transaction).
    pub(super) async fn apply_in(
        tx: &mut Write,
        before: Ticket,
        actor: &UserRef,
        action: &Action,
        out: &OutFn<'_>,
        now: DateTime<Utc>,
    ) -> Result<Changed> {
        let (desk, no) = (before.desk, before.no);
        let Some(applied) = before.apply(action, actor, now)? else {
            return Ok(Changed::No(before));
        };
        let now_ms = ms(now);
        let mut t = applied.ticket;
        t.updated_at = at(now_ms);
        let outbox = outbox_json(desk, None, &out(&t))?;
        let batch = serde_json::to_string(&ChangeBatch {
            desk: desk.0,
            ticket: t.id.0,
            now: now_ms,
            events: events_json(&applied.events),
            outbox,
            priority: t.priority.as_str(),
            status: t.status.as_str(),
            assignee: t.assignee.as_ref().map(UserRef::to_string),
            individual: t
                .contact
                .as_ref()
                .and_then(|c| c.individual.as_ref().map(|i| i.0)),
            organization: t
                .contact
                .as_ref()
                .and_then(|c| c.organization.as_ref().map(|o| o.0)),
            first_response: t.first_response_at.map(ms),
            resolved: t.resolved_at.map(ms),
        })
        .map_err(corrupt)?;
        sqlx::query(concat!(
            "UPDATE tickets SET priority = ?1 ->> 'priority', status = ?1 ->> 'status',
                    assignee = ?1 ->> 'assignee', individual_id = ?1 ->> 'individual',
                    organization_id = ?1 ->> 'organization', updated_at = ?1 ->> 'now',
                    first_response_at = ?1 ->> 'first_response', resolved_at = ?1 ->> 'resolved'
             WHERE desk_id = ?1 ->> 'desk' AND id = ?1 ->> 'ticket';",
            events_and_outbox!()
        ))
        .bind(batch)
        .execute(&mut **tx)
        .await?;
        if matches!(action, Action::LinkContact(_)) {
            // The contact's label is the view's to build.
            t = Self::ticket_in(tx, desk, no)
                .await?
                .ok_or(crate::store::StoreError::NoTicket(no))?
                .ticket;
        }
        Ok(Changed::Yes(t))
    }

    /// Queues `out` in the caller's transaction; `cause` makes each row's idempotency key.
    pub(super) async fn enqueue_in(
        tx: &mut Write,
        desk: DeskId,
        cause: &str,
        out: &[Outgoing],
        now: i64,
    ) -> Result<()> {
        let rows = serde_json::to_string(&outbox_json(desk, Some(cause), out)?).map_err(corrupt)?;
        sqlx::query!(
            "INSERT INTO outbox (desk_id, destination, idempotency_key, payload, next_attempt_at, created_at)
             SELECT ?1, value ->> 0, value ->> 1, value ->> 2, ?2, ?2
             FROM json_each(?3) WHERE true ORDER BY key
             ON CONFLICT (idempotency_key) DO NOTHING",
            desk.0,
            now,
            rows
        )
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

/// A new ticket with id `id` and number `no`, and the parameter of [`create_writes`] that
/// stores it with its events, the outbox rows `out` makes of it, and the request's key.
fn create_batch(
    desk: DeskId,
    id: i64,
    no: i64,
    new: &NewTicket,
    key: Option<&str>,
    out: &OutFn<'_>,
    now_ms: i64,
) -> Result<(Ticket, String)> {
    let ticket = Ticket {
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
    // The cards are built before the contact's label is known: they carry the ticket id and
    // are rendered from the stored ticket when they are delivered.
    let outbox = outbox_json(desk, None, &out(&ticket))?;
    let sla = new.sla.as_ref();
    let batch = serde_json::to_string(&CreateBatch {
        desk: desk.0,
        ticket: id,
        now: now_ms,
        events: events_json(&events),
        outbox,
        no,
        description: &new.description,
        priority: new.priority.as_str(),
        assignee: new.assignee.as_ref().map(UserRef::to_string),
        reporter: new.reporter.to_string(),
        individual: new.individual,
        source: new.source.as_str(),
        first_due: sla.and_then(|s| s.due.first_due).map(ms),
        resolution_due: sla.and_then(|s| s.due.resolution_due).map(ms),
        first_level: sla.map(|s| s.first_level.as_str()),
        resolution_level: sla.map(|s| s.resolution_level.as_str()),
        check_at: sla.and_then(|s| s.check_at).map(ms),
        key,
    })
    .map_err(corrupt)?;
    Ok((ticket, batch))
}

/// The parameter of [`CREATE_HEAD`].
#[derive(serde::Serialize)]
struct DeskKey<'a> {
    desk: i64,
    key: Option<&'a str>,
}

/// The parameter of a change's batch (typed, so no JSON map is built on the way).
#[derive(serde::Serialize)]
struct ChangeBatch<'a> {
    desk: i64,
    ticket: i64,
    now: i64,
    events: Vec<EventJson<'a>>,
    outbox: Vec<OutboxJson>,
    priority: &'a str,
    status: &'a str,
    assignee: Option<String>,
    individual: Option<i64>,
    organization: Option<i64>,
    first_response: Option<i64>,
    resolved: Option<i64>,
}

/// The parameter of [`create_writes`].
#[derive(serde::Serialize)]
struct CreateBatch<'a> {
    desk: i64,
    ticket: i64,
    now: i64,
    events: Vec<EventJson<'a>>,
    outbox: Vec<OutboxJson>,
    no: i64,
    description: &'a str,
    priority: &'a str,
    assignee: Option<String>,
    reporter: String,
    individual: Option<i64>,
    source: &'a str,
    first_due: Option<i64>,
    resolution_due: Option<i64>,
    first_level: Option<&'a str>,
    resolution_level: Option<&'a str>,
    check_at: Option<i64>,
    key: Option<&'a str>,
}

/// One event as the batches read it: `[actor, kind, old, new, note]`.
type EventJson<'a> = (
    String,
    &'a str,
    &'a Option<String>,
    &'a Option<String>,
    &'a Option<String>,
);

/// One outbox row as the inserts read it: `[destination, idempotency key, payload]`.
type OutboxJson = (String, Option<String>, String);

/// Events as the JSON array of `[actor, kind, old, new, note]` the batches read.
fn events_json(events: &[NewEvent]) -> Vec<EventJson<'_>> {
    events
        .iter()
        .map(|e| {
            (
                e.actor.to_string(),
                e.kind.as_str(),
                &e.old_value,
                &e.new_value,
                &e.note,
            )
        })
        .collect()
}

/// Outbox rows as the JSON array of `[destination, idempotency key, payload]` the inserts read
/// with `json_each`. A card is posted to a channel once, whatever caused it; other rows are
/// keyed `{desk}:{cause}:{index}`, or left for the insert to key by the change's last event
/// when `cause` is `None`.
fn outbox_json(desk: DeskId, cause: Option<&str>, out: &[Outgoing]) -> Result<Vec<OutboxJson>> {
    out.iter()
        .enumerate()
        .map(|(i, msg)| {
            let key = match msg {
                Outgoing::PostCard {
                    surface,
                    channel,
                    ticket,
                } => Some(format!("post:{surface}:{channel}:{}", ticket.0)),
                _ => cause.map(|c| format!("{}:{c}:{i}", desk.0)),
            };
            let payload = serde_json::to_string(msg).map_err(corrupt)?;
            Ok((msg.destination(), key, payload))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ticket::{Priority, Source};
    use crate::store::TicketStore;
    use sqlx::Connection;

    fn new_ticket(text: &str) -> NewTicket {
        NewTicket {
            description: text.into(),
            priority: Priority::Medium,
            reporter: "slack:U1".parse().unwrap(),
            assignee: None,
            individual: None,
            source: Source::Slack,
            sla: None,
        }
    }

    async fn create(store: &SqliteStore, desk: i64, text: &str, key: Option<&str>) -> Created {
        let out = |_: &Ticket| Vec::new();
        store
            .create_ticket(DeskId(desk), &new_ticket(text), key, &out, Utc::now())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn numbers_from_memory_stay_gapless_survive_another_writer_and_replays() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        let mut w = store.write().await.unwrap();
        sqlx::query("INSERT INTO desks (id, name, created_at) VALUES (1, 'a', 0), (2, 'b', 0)")
            .execute(&mut *w)
            .await
            .unwrap();
        w.commit().await.unwrap();
        let mut numbers = Vec::new();
        for i in 0..5 {
            let desk = 1 + i % 2;
            numbers.push((
                desk,
                create(&store, desk, &format!("t{i}"), None)
                    .await
                    .ticket
                    .no
                    .0,
            ));
        }
        assert_eq!(numbers, [(1, 1), (2, 1), (1, 2), (2, 2), (1, 3)]);
        // A retried request in the memory path gets its ticket back and writes nothing.
        let first = create(&store, 1, "keyed", Some("k1")).await;
        let again = create(&store, 1, "keyed", Some("k1")).await;
        assert!(!first.replayed && again.replayed);
        assert_eq!(
            (first.ticket.id, first.ticket.no),
            (again.ticket.id, again.ticket.no)
        );
        // Another process writes a ticket of desk 1: memory is stale, the next create clashes,
        // reads again and takes the next number.
        let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO tickets (desk_id, no, description, priority, status, reporter, source,
                                  created_at, updated_at)
             VALUES (1, 5, 'elsewhere', 'low', 'open', 'cli:x', 'cli', 0, 0);
             UPDATE desks SET next_no = 6 WHERE id = 1;",
        )
        .execute(&mut other)
        .await
        .unwrap();
        other.close().await.unwrap();
        assert_eq!(create(&store, 1, "after", None).await.ticket.no.0, 6);
        // A write of ours that numbers a ticket itself (as a desk merge does) leaves memory
        // stale without another connection: the create clashes, reads again and goes on.
        let mut w = store.write().await.unwrap();
        sqlx::query(
            "INSERT INTO tickets (desk_id, no, description, priority, status, reporter, source,
                                  created_at, updated_at)
             VALUES (1, 7, 'merged', 'low', 'open', 'cli:x', 'cli', 0, 0);
             UPDATE desks SET next_no = 8 WHERE id = 1;",
        )
        .execute(&mut *w)
        .await
        .unwrap();
        w.commit().await.unwrap();
        assert_eq!(
            create(&store, 1, "after a merge", None).await.ticket.no.0,
            8
        );
        assert_eq!(create(&store, 2, "b3", None).await.ticket.no.0, 3);
        let rows: Vec<(i64, i64)> =
            sqlx::query_as("SELECT desk_id, no FROM tickets ORDER BY desk_id, no")
                .fetch_all(&mut *store.read().await.unwrap())
                .await
                .unwrap();
        assert_eq!(
            rows,
            [
                (1, 1),
                (1, 2),
                (1, 3),
                (1, 4),
                (1, 5),
                (1, 6),
                (1, 7),
                (1, 8),
                (2, 1),
                (2, 2),
                (2, 3)
            ]
        );
    }
}
