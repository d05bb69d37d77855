//! Ticket changes, written in batches (`batches.rs`): every change waiting at that moment is
//! read, applied and written inside one group-commit round with two round trips to the writer
//! connection's thread, one read and one batch of writes, whatever their number; each request
//! is answered once that round is on disk.
//!
//! The batch reads each ticket once, as stored, and applies the changes to it in the order the
//! requests arrived (a ticket changed twice in one batch gets the second change on top of the
//! first, as if they had been written one after the other). Event ids are given here, from the
//! next id read with the tickets, so each change's outbox rows are keyed by its own last event
//! (`event{id}:{index}`, the key a change written alone gets).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::batches::answer_when_committed;
use super::conns::Conns;
use super::group::Group;
use super::tickets::TicketRow;
use super::writes::{Cause, EventJson, OutboxJson, TicketJson, events_json, outbox_json};
use super::{SqliteStore, at, corrupt, ms};
use crate::core::people::UserRef;
use crate::core::ticket::{Action, DeskId, Ticket, TicketNo};
use crate::store::{Changed, OwnedOut, Result, StoreError};

/// A change waiting for the next batch.
pub(super) struct Pending {
    pub(super) desk: DeskId,
    pub(super) no: TicketNo,
    pub(super) actor: UserRef,
    pub(super) action: Action,
    pub(super) out: OwnedOut,
    pub(super) now: DateTime<Utc>,
    pub(super) done: oneshot::Sender<Result<Changed>>,
}

/// Each ticket the batch changes, by the index of its `{desk, no}` in `?1`, with the next
/// event id (the same in every row). A ticket that is not on its desk has no row.
const HEAD: &str =
    "SELECT c.key AS i, (SELECT coalesce(max(id), 0) + 1 FROM events) AS next_event, t.*
       FROM json_each(?1) AS c
       JOIN ticket_view AS t ON t.desk_id = c.value ->> 'desk' AND t.no = c.value ->> 'no'
      ORDER BY c.key";

/// Every write of a batch, as one command. `?1` is `{"tickets": [...], "changes": [...]}`:
/// each changed ticket once, as it is after the batch's last change of it ([`TicketJson`]),
/// and each change's rows ([`ChangeJson`]) in arrival order.
const WRITES: &str = "UPDATE tickets SET priority = n.value ->> 'priority', status = n.value ->> 'status',
            assignee = n.value ->> 'assignee', individual_id = n.value ->> 'individual',
            organization_id = n.value ->> 'organization', updated_at = n.value ->> 'now',
            first_response_at = n.value ->> 'first_response', resolved_at = n.value ->> 'resolved'
       FROM jsonb_each(?1, '$.tickets') AS n
      WHERE tickets.id = n.value ->> 'ticket' AND tickets.desk_id = n.value ->> 'desk';
     INSERT INTO events (id, desk_id, ticket_id, actor, kind, old_value, new_value, note, at)
     SELECT e.value ->> 0, c.value ->> 0, c.value ->> 1, e.value ->> '$[1][0]',
            e.value ->> '$[1][1]', e.value ->> '$[1][2]', e.value ->> '$[1][3]',
            e.value ->> '$[1][4]', c.value ->> 2
       FROM jsonb_each(?1, '$.changes') AS c JOIN jsonb_each(c.value, '$[3]') AS e
      ORDER BY c.key, e.key;
     INSERT INTO outbox (desk_id, destination, idempotency_key, payload, next_attempt_at, created_at)
     SELECT c.value ->> 0, o.value ->> 0, o.value ->> 1, o.value ->> 2, c.value ->> 2, c.value ->> 2
       FROM jsonb_each(?1, '$.changes') AS c JOIN jsonb_each(c.value, '$[4]') AS o
      WHERE true ORDER BY c.key, o.key
     ON CONFLICT (idempotency_key) DO NOTHING";

/// One change's rows: `[desk, ticket, now, events as `[id, event]`, outbox rows]`.
type ChangeJson<'a> = (i64, i64, i64, Vec<(i64, EventJson<'a>)>, Vec<OutboxJson>);

/// Starts the change task for the store's writer; changes are sent to the returned queue.
pub(super) fn spawn(writer: Conns, group: Arc<Group>) -> mpsc::Sender<Pending> {
    super::batches::spawn(writer, group, |writer, group, items| async move {
        write_batch(&writer, &group, items).await;
    })
}

/// Writes `items` in one savepoint of the current round and answers each once the round is
/// committed. A failure of the batch's statements undoes the whole batch and fails each item;
/// a change that is refused (or whose ticket is not there) fails alone.
async fn write_batch(writer: &Conns, group: &Group, items: Vec<Pending>) {
    let written: Result<_> = async {
        // Each ticket once, in the order first asked for.
        let mut index: HashMap<(i64, i64), usize> = HashMap::new();
        let mut asked = Vec::new();
        for p in &items {
            index.entry((p.desk.0, p.no.0)).or_insert_with(|| {
                asked.push(serde_json::json!({"desk": p.desk.0, "no": p.no.0}));
                asked.len() - 1
            });
        }
        let param = serde_json::to_string(&asked).map_err(corrupt)?;
        let (mut w, rows) = group.write_first(writer, HEAD, param).await?;
        let mut tickets: Vec<Option<Ticket>> = vec![None; asked.len()];
        let mut next_event = 1;
        for row in &rows {
            use sqlx::Row;
            let i: i64 = row.try_get("i")?;
            next_event = row.try_get("next_event")?;
            let record: crate::store::TicketRecord =
                <TicketRow as sqlx::FromRow<_>>::from_row(row)?.try_into()?;
            let slot = usize::try_from(i)
                .ok()
                .and_then(|i| tickets.get_mut(i))
                .ok_or_else(|| corrupt("a change batch read a ticket it did not ask for"))?;
            *slot = Some(record.ticket);
        }
        let mut outcomes = Vec::with_capacity(items.len());
        let mut changes = Vec::new();
        // Tickets changed, by slot; and (slot, change) where a contact was linked.
        let mut changed = Vec::new();
        let mut linked = Vec::new();
        for (n, p) in items.iter().enumerate() {
            let slot = index[&(p.desk.0, p.no.0)];
            let Some(before) = &tickets[slot] else {
                outcomes.push(Err(StoreError::NoTicket(p.no)));
                continue;
            };
            let applied = match before.apply(&p.action, &p.actor, p.now) {
                Err(e) => {
                    outcomes.push(Err(e.into()));
                    continue;
                }
                Ok(None) => {
                    outcomes.push(Ok(Changed::No(before.clone())));
                    continue;
                }
                Ok(Some(applied)) => applied,
            };
            let now = ms(p.now);
            let mut t = applied.ticket;
            t.updated_at = at(now);
            let events: Vec<(i64, EventJson<'_>)> = events_json(&applied.events)
                .into_iter()
                .map(|e| {
                    next_event += 1;
                    (next_event - 1, e)
                })
                .collect();
            let outbox = outbox_json(p.desk, Cause::Event(next_event - 1), &(p.out)(&t))?;
            let row: ChangeJson<'_> = (p.desk.0, t.id.0, now, events, outbox);
            changes.push(serde_json::to_string(&row).map_err(corrupt)?);
            if !changed.contains(&slot) {
                changed.push(slot);
            }
            if matches!(p.action, Action::LinkContact(_)) {
                linked.push((slot, n));
            }
            tickets[slot] = Some(t.clone());
            outcomes.push(Ok(Changed::Yes(t)));
        }
        if !changes.is_empty() {
            let changed: Vec<TicketJson<'_>> = changed
                .iter()
                .filter_map(|&slot| tickets[slot].as_ref())
                .map(TicketJson::of)
                .collect();
            let writes = format!(
                r#"{{"tickets":{},"changes":[{}]}}"#,
                serde_json::to_string(&changed).map_err(corrupt)?,
                changes.join(",")
            );
            sqlx::query(WRITES).bind(writes).execute(&mut *w).await?;
        }
        // A linked contact's label is the view's to build: read it back for the changes of
        // that ticket from the link on.
        for (slot, from) in linked {
            let Some(t) = &tickets[slot] else { continue };
            let stored = SqliteStore::ticket_in(&mut w, t.desk, t.no)
                .await?
                .ok_or(StoreError::NoTicket(t.no))?
                .ticket;
            for (p, outcome) in items.iter().zip(outcomes.iter_mut()).skip(from) {
                if let Ok(Changed::Yes(changed)) = outcome
                    && (p.desk, p.no) == (t.desk, t.no)
                {
                    changed.contact.clone_from(&stored.contact);
                }
            }
        }
        Ok((w, outcomes))
    }
    .await;
    match written {
        Ok((w, outcomes)) => answer_when_committed(w, move |committed| {
            for (item, outcome) in items.into_iter().zip(outcomes) {
                let result = match &committed {
                    Ok(()) => outcome,
                    Err(e) => Err(StoreError::Batch(e.clone())),
                };
                // The request may have gone away; its change stands.
                let _ = item.done.send(result);
            }
        }),
        Err(e) => {
            tracing::warn!(error = %e, changes = items.len(), "A batch of changes failed.");
            let e = e.to_string();
            for item in items {
                let _ = item.done.send(Err(StoreError::Batch(e.clone())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::outgoing::Outgoing;
    use crate::core::people::{Platform, SurfaceRef};
    use crate::core::ticket::{ContactLink, Priority, Source, Status};
    use crate::store::{NewTicket, TicketStore};

    fn user(id: &str) -> UserRef {
        format!("slack:{id}").parse().unwrap()
    }

    /// A change whose one outbox row is a card refresh saying `note`.
    async fn change(store: &SqliteStore, no: i64, action: Action, note: &str) -> Result<Changed> {
        let note = note.to_owned();
        let out: OwnedOut = Box::new(move |t: &Ticket| {
            vec![Outgoing::UpdateCards {
                surface: SurfaceRef::new(Platform::Slack, "T1"),
                ticket: t.id,
                note: Some(note.clone()),
            }]
        });
        store
            .change_ticket(DeskId(1), TicketNo(no), user("U1"), action, out, Utc::now())
            .await
    }

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("c.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        let mut w = store.write().await.unwrap();
        sqlx::query(
            "INSERT INTO desks (id, name, created_at) VALUES (1, 'a', 0), (2, 'b', 0);
             INSERT INTO individuals (id, desk_id, name, created_at) VALUES (7, 1, 'Jane', 0);
             INSERT INTO individual_emails (desk_id, individual_id, email)
             VALUES (1, 7, 'jane@acme.test');",
        )
        .execute(&mut *w)
        .await
        .unwrap();
        w.commit().await.unwrap();
        for desk in [1, 1, 2] {
            let new = NewTicket {
                description: "printer".into(),
                priority: Priority::Medium,
                reporter: user("U9"),
                assignee: None,
                individual: None,
                source: Source::Slack,
                sla: None,
            };
            store
                .create_ticket(
                    DeskId(desk),
                    new,
                    None,
                    Box::new(|_| Vec::new()),
                    Utc::now(),
                )
                .await
                .unwrap();
        }
        (dir, store)
    }

    async fn rows(store: &SqliteStore, sql: &'static str) -> Vec<(i64, String)> {
        sqlx::query_as(sql)
            .fetch_all(&mut *store.read().await.unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_batch_applies_changes_in_order_and_keys_each_by_its_own_last_event() {
        let (_dir, store) = store().await;
        // Sent together: one batch on this one-thread runtime.
        let start = Action::Move(Status::InProgress, None);
        let (a, b, c, d, e) = tokio::join!(
            change(&store, 1, start.clone(), "started"),
            change(&store, 1, Action::SetPriority(Priority::Urgent), "urgent"),
            change(&store, 1, start.clone(), "again"),
            // Refused: an in-progress ticket cannot be reopened, and it is in progress by now.
            change(&store, 1, Action::Move(Status::Open, None), "refused"),
            change(&store, 9, start.clone(), "missing"),
        );
        let Changed::Yes(a) = a.unwrap() else {
            panic!("the start changed nothing")
        };
        assert_eq!(
            (a.status, a.priority),
            (Status::InProgress, Priority::Medium)
        );
        // The second change is on top of the first.
        let Changed::Yes(b) = b.unwrap() else {
            panic!("the priority changed nothing")
        };
        assert_eq!(
            (b.status, b.priority),
            (Status::InProgress, Priority::Urgent)
        );
        assert!(matches!(c.unwrap(), Changed::No(t) if t.priority == Priority::Urgent));
        assert!(matches!(d, Err(StoreError::Refused(_))));
        assert!(matches!(e, Err(StoreError::NoTicket(TicketNo(9)))));
        // Stored as the last change left it; desk 2's ticket 1 untouched.
        let stored = store.ticket(DeskId(1), TicketNo(1)).await.unwrap().unwrap();
        assert_eq!(stored.ticket.priority, Priority::Urgent);
        assert_eq!(stored.ticket.status, Status::InProgress);
        let other = store.ticket(DeskId(2), TicketNo(1)).await.unwrap().unwrap();
        assert_eq!(other.ticket.status, Status::Open);
        // Each change's rows are keyed by its own last event.
        let events = rows(
            &store,
            "SELECT id, kind FROM events WHERE ticket_id = 1 AND kind != 'created' ORDER BY id",
        )
        .await;
        assert_eq!(events.len(), 2, "{events:?}");
        let keys: Vec<(i64, String)> =
            rows(&store, "SELECT id, idempotency_key FROM outbox ORDER BY id").await;
        let want: Vec<String> = events
            .iter()
            .map(|(id, _)| format!("event{id}:0"))
            .collect();
        assert_eq!(keys.iter().map(|k| k.1.clone()).collect::<Vec<_>>(), want);
        // A change written after the batch continues the ids.
        change(&store, 1, Action::Note("later".into()), "noted")
            .await
            .unwrap();
        let last = rows(&store, "SELECT max(id), 'x' FROM events").await[0].0;
        assert_eq!(last, events[1].0 + 1);
    }

    #[tokio::test]
    async fn a_linked_contact_comes_back_with_the_label_the_view_builds() {
        let (_dir, store) = store().await;
        let link = ContactLink {
            individual: Some((7, "given".into())),
            organization: None,
        };
        let (linked, noted) = tokio::join!(
            change(&store, 1, Action::LinkContact(link), "linked"),
            change(&store, 1, Action::Note("after".into()), "noted"),
        );
        for changed in [linked.unwrap(), noted.unwrap()] {
            let Changed::Yes(t) = changed else {
                panic!("nothing changed")
            };
            let label = t.contact.and_then(|c| c.individual).map(|i| i.1);
            assert_eq!(label.as_deref(), Some("Jane <jane@acme.test>"));
        }
    }
}
