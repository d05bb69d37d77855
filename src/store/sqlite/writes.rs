//! How tickets are written: a create or a change as one batch of statements inside a
//! group-commit round (see `group.rs`), with ids and numbers from the round's memory.

use chrono::{DateTime, Utc};

use super::{SqliteStore, Write, at, corrupt, ms};
use crate::core::outgoing::Outgoing;
use crate::core::people::UserRef;
use crate::core::ticket::{
    Action, DeskId, EventKind, NewEvent, Status, Ticket, TicketId, TicketNo,
};
use crate::store::{Changed, NewTicket, OutFn, Result};

/// The tail of a change's batch: its events, then the outbox rows it causes. Rows without a
/// key of their own are keyed by the change's last event (`event{id}:{index}`).
///
/// A batch is a string of statements that sqlx runs as one command on the connection's thread
/// (one round trip instead of one per statement). Its one parameter, `?1`, is a JSON object
/// every statement reads its values from by name (`desk`, `ticket`, `now`, `events` from
/// [`events_json`], `outbox` from [`outbox_json`], and the statement's own): sqlx binds
/// numbered parameters per statement and would skip a number a statement does not use.
macro_rules! events_and_outbox {
    () => {
        "INSERT INTO events (desk_id, ticket_id, actor, kind, old_value, new_value, note, at)
         SELECT ?1 ->> 'desk', ?1 ->> 'ticket', value ->> 0, value ->> 1, value ->> 2,
                value ->> 3, value ->> 4, ?1 ->> 'now'
         FROM json_each(?1, '$.events') WHERE true ORDER BY key;
         INSERT INTO outbox (desk_id, destination, idempotency_key, payload, next_attempt_at, created_at)
         SELECT ?1 ->> 'desk', value ->> 0,
                coalesce(value ->> 1, 'event' || (SELECT max(id) FROM events) || ':' || key),
                value ->> 2, ?1 ->> 'now', ?1 ->> 'now'
         FROM json_each(?1, '$.outbox') WHERE true ORDER BY key
         ON CONFLICT (idempotency_key) DO NOTHING;"
    };
}

/// The first statements of a batch of writes (creates, changes), whose `?1` is one JSON text
/// that each later statement walks with `jsonb_each`: given text, `jsonb_each` parses all of
/// it on every call, once per statement (six times for a change batch; ~4% of the server's CPU
/// under clicks, `perf` in BENCHMARKS.md). This parses it once into binary JSON, kept in a
/// one-row temporary table of the writer's connection; the statements after it read
/// `(SELECT v FROM temp.piraja_batch)`, which `jsonb_each` walks without parsing. The table
/// lives in memory (`temp_store = memory`) and the next batch's row replaces this one's.
macro_rules! parse_batch_once {
    () => {
        "CREATE TEMP TABLE IF NOT EXISTS piraja_batch (id INTEGER PRIMARY KEY, v BLOB);
         INSERT OR REPLACE INTO temp.piraja_batch (id, v) VALUES (1, jsonb(?1));"
    };
}
pub(super) use parse_batch_once;

impl SqliteStore {
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
        let outbox = outbox_json(desk, Cause::LastEvent, &out(&t))?;
        let batch = serde_json::to_string(&ChangeBatch {
            ticket: TicketJson::of(&t),
            events: events_json(&applied.events),
            outbox,
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
        let rows = serde_json::to_string(&outbox_json(desk, Cause::Other(cause), out)?)
            .map_err(corrupt)?;
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

/// A new ticket with id `id` and number `no`, and its element of the create batch's parameter
/// (see `creates.rs`): the ticket with its events, the outbox rows `out` makes of it (keyed
/// `ticket{id}:{index}` unless they have a key of their own) and the request's key.
pub(super) fn create_row(
    desk: DeskId,
    (id, no): (i64, i64),
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
    let outbox = outbox_json(desk, Cause::Ticket(id), &out(&ticket))?;
    let sla = new.sla.as_ref();
    let row = serde_json::to_string(&CreateRow {
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
    Ok((ticket, row))
}

/// The parameter of a change's batch (typed, so no JSON map is built on the way): the
/// ticket's columns (`desk`, `ticket` and `now` among them), its events and outbox rows.
#[derive(serde::Serialize)]
struct ChangeBatch<'a> {
    #[serde(flatten)]
    ticket: TicketJson<'a>,
    events: Vec<EventJson<'a>>,
    outbox: Vec<OutboxJson>,
}

/// A changed ticket's columns, as the change writes read them (`now` is its `updated_at`).
#[derive(serde::Serialize)]
pub(super) struct TicketJson<'a> {
    desk: i64,
    ticket: i64,
    now: i64,
    priority: &'a str,
    status: &'a str,
    assignee: Option<String>,
    individual: Option<i64>,
    organization: Option<i64>,
    first_response: Option<i64>,
    resolved: Option<i64>,
}

impl<'a> TicketJson<'a> {
    pub(super) fn of(t: &'a Ticket) -> TicketJson<'a> {
        let contact = t.contact.as_ref();
        TicketJson {
            desk: t.desk.0,
            ticket: t.id.0,
            now: ms(t.updated_at),
            priority: t.priority.as_str(),
            status: t.status.as_str(),
            assignee: t.assignee.as_ref().map(UserRef::to_string),
            individual: contact.and_then(|c| c.individual.as_ref().map(|i| i.0)),
            organization: contact.and_then(|c| c.organization.as_ref().map(|o| o.0)),
            first_response: t.first_response_at.map(ms),
            resolved: t.resolved_at.map(ms),
        }
    }
}

/// One create in the create batch's parameter.
#[derive(serde::Serialize)]
struct CreateRow<'a> {
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
pub(super) type EventJson<'a> = (
    String,
    &'a str,
    &'a Option<String>,
    &'a Option<String>,
    &'a Option<String>,
);

/// One outbox row as the inserts read it: `[destination, idempotency key, payload, due, joins]`;
/// `due` absent is at once (the write's own time); `joins`, the key of the row waiting for
/// that time which a change's card refresh joins instead (`changes.rs`, `Paced::Join`), is
/// absent everywhere else.
pub(super) type OutboxJson = (String, Option<String>, String, Option<i64>, Option<String>);

/// Events as the JSON array of `[actor, kind, old, new, note]` the batches read.
pub(super) fn events_json(events: &[NewEvent]) -> Vec<EventJson<'_>> {
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

/// What the idempotency keys of a write's outbox rows are made of.
///
/// Keys that lead with a number that grows (a ticket's or an event's id, unique across desks)
/// go in at the end of the outbox's unique index, on the page the last write touched; a key
/// that led with the desk went to a random page of it for every write, one more page for each
/// commit to write out (BENCHMARKS.md).
#[derive(Clone, Copy)]
pub(super) enum Cause<'a> {
    /// A new ticket's rows: `ticket{id}:{index}`.
    Ticket(i64),
    /// Rows of something else on the desk: `{desk}:{cause}:{index}`.
    Other(&'a str),
    /// A change's rows, keyed by its last event: `event{id}:{index}`.
    Event(i64),
    /// A change's rows, keyed as [`Cause::Event`] by the insert, from the last event in the
    /// table (a change written alone, whose events' ids the database gives).
    LastEvent,
}

/// Outbox rows as the JSON array of `[destination, idempotency key, payload]` the inserts read
/// with `json_each`. A card is posted to a channel once, whatever caused it
/// (`post:{ticket}:{surface}:{channel}`); other rows are keyed by their [`Cause`].
pub(super) fn outbox_json(
    desk: DeskId,
    cause: Cause<'_>,
    out: &[Outgoing],
) -> Result<Vec<OutboxJson>> {
    out.iter()
        .enumerate()
        .map(|(i, msg)| {
            let key = match (msg, cause) {
                (
                    Outgoing::PostCard {
                        surface,
                        channel,
                        ticket,
                    },
                    _,
                ) => Some(format!("post:{}:{surface}:{channel}", ticket.0)),
                (_, Cause::Ticket(id)) => Some(format!("ticket{id}:{i}")),
                (_, Cause::Other(c)) => Some(format!("{}:{c}:{i}", desk.0)),
                (_, Cause::Event(id)) => Some(format!("event{id}:{i}")),
                (_, Cause::LastEvent) => None,
            };
            let payload = serde_json::to_string(msg).map_err(corrupt)?;
            Ok((msg.destination(), key, payload, None, None))
        })
        .collect()
}
