//! Creates, written in batches (`batches.rs`). A request hands its create to one task, which
//! writes every create waiting at that moment inside a group-commit round (see `group.rs`)
//! with two round trips to the writer connection's thread, one read and one batch of writes,
//! whatever their number; each request is answered once that round is on disk.
//!
//! Under load the round trips, not SQLite, were the cost of a create (one per create capped
//! creates near 2,500/s; BENCHMARKS.md). The batch reads each desk's next number and
//! the next ticket id afresh, so it trusts no memory of them, and it numbers the batch's
//! tickets in the order the requests arrived, gapless per desk.
//!
//! Retries: a request whose key (Slack's `trigger_id`, Discord's interaction id) is stored
//! already gets that ticket back; two requests with the same key in one batch get one ticket.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::batches::commit_and_answer;
use super::conns::Conns;
use super::group::Group;
use super::writes::create_row;
use super::{SqliteStore, corrupt, ms};
use crate::core::ticket::{DeskId, Ticket, TicketNo};
use crate::store::{Created, NewTicket, OwnedOut, Result, StoreError};

/// A create waiting for the next batch.
pub(super) struct Pending {
    pub(super) desk: DeskId,
    pub(super) new: NewTicket,
    pub(super) key: Option<String>,
    pub(super) out: OwnedOut,
    pub(super) now: DateTime<Utc>,
    pub(super) done: oneshot::Sender<Result<Created>>,
}

/// Per create, in arrival order: a request's key already stored (that ticket's number), the
/// desk's next number and the next ticket id (the same in every row).
const HEAD: &str = "SELECT (SELECT t.no FROM request_keys k JOIN tickets t ON t.id = k.ticket_id
                             WHERE k.desk_id = c.value ->> 'desk' AND k.key = c.value ->> 'key') AS seen,
            (SELECT next_no FROM desks WHERE id = c.value ->> 'desk') AS next_no,
            (SELECT coalesce(max(id), 0) + 1 FROM tickets) AS id
       FROM json_each(?1) AS c ORDER BY c.key";

/// The parameter of [`HEAD`], one per create.
#[derive(serde::Serialize)]
struct DeskKey<'a> {
    desk: i64,
    key: Option<&'a str>,
}

#[derive(sqlx::FromRow)]
struct Head {
    seen: Option<i64>,
    next_no: Option<i64>,
    id: i64,
}

/// Every write of a batch: `?1` is the JSON array of `create_row`s, in number order. One
/// command, so one round trip to the connection's thread (see `writes.rs` on batches). The
/// array is walked with `jsonb_each`, whose `value` is binary JSON that `->>` reads without
/// parsing: with `json_each` every field read re-rendered and re-parsed the create's text,
/// about half of these statements' time (measured: 86 against 46 µs a create).
const WRITES: &str = concat!(
    super::writes::parse_batch_once!(),
    "UPDATE desks SET next_no = n.next
       FROM (SELECT value ->> 'desk' AS desk, max(value ->> 'no') + 1 AS next
               FROM jsonb_each((SELECT v FROM temp.piraja_batch)) GROUP BY 1) AS n
      WHERE desks.id = n.desk;
     INSERT INTO tickets (id, desk_id, no, description, priority, status, assignee, reporter,
                          individual_id, source, created_at, updated_at, first_due,
                          resolution_due, first_level, resolution_level, sla_check_at)
     SELECT value ->> 'ticket', value ->> 'desk', value ->> 'no', value ->> 'description',
            value ->> 'priority', 'open', value ->> 'assignee', value ->> 'reporter',
            value ->> 'individual', value ->> 'source', value ->> 'now', value ->> 'now',
            value ->> 'first_due', value ->> 'resolution_due', value ->> 'first_level',
            value ->> 'resolution_level', value ->> 'check_at'
       FROM jsonb_each((SELECT v FROM temp.piraja_batch)) WHERE true ORDER BY key;
     INSERT INTO events (desk_id, ticket_id, actor, kind, old_value, new_value, note, at)
     SELECT c.value ->> 'desk', c.value ->> 'ticket', e.value ->> 0, e.value ->> 1,
            e.value ->> 2, e.value ->> 3, e.value ->> 4, c.value ->> 'now'
       FROM jsonb_each((SELECT v FROM temp.piraja_batch)) AS c JOIN jsonb_each(c.value, '$.events') AS e
      ORDER BY c.key, e.key;
     INSERT INTO outbox (desk_id, destination, idempotency_key, payload, next_attempt_at, created_at)
     SELECT c.value ->> 'desk', o.value ->> 0, o.value ->> 1, o.value ->> 2,
            c.value ->> 'now', c.value ->> 'now'
       FROM jsonb_each((SELECT v FROM temp.piraja_batch)) AS c JOIN jsonb_each(c.value, '$.outbox') AS o
      WHERE true ORDER BY c.key, o.key
     ON CONFLICT (idempotency_key) DO NOTHING;
     INSERT INTO request_keys (desk_id, key, ticket_id, created_at)
     SELECT value ->> 'desk', value ->> 'key', value ->> 'ticket', value ->> 'now'
       FROM jsonb_each((SELECT v FROM temp.piraja_batch)) WHERE value ->> 'key' IS NOT NULL"
);

/// Starts the create task for the store's writer; creates are sent to the returned queue. The
/// task ends when every sender is gone.
pub(super) fn spawn(
    thread: &super::batches::WriterThread,
    writer: Conns,
    group: Arc<Group>,
) -> mpsc::Sender<Pending> {
    super::batches::spawn(thread, writer, group, |writer, group, items| async move {
        write_batch(&writer, &group, items).await;
    })
}

/// What became of one create of a batch.
enum Outcome {
    /// Written now.
    New(Ticket),
    /// Its key was stored before, by the request that made ticket number `.0`: read next.
    Seen(TicketNo),
    /// That earlier request's ticket, read.
    Replayed(Ticket),
    /// Its key is that of the batch's create at this index.
    SameAs(usize),
    Failed(StoreError),
}

/// Writes `items` in one savepoint of the current round and answers each once the round is
/// committed. A failure of the batch's statements undoes the whole batch and fails each item.
async fn write_batch(writer: &Conns, group: &Group, items: Vec<Pending>) {
    let written = async {
        let param = serde_json::to_string(
            &items
                .iter()
                .map(|p| DeskKey {
                    desk: p.desk.0,
                    key: p.key.as_deref(),
                })
                .collect::<Vec<_>>(),
        )
        .map_err(corrupt)?;
        let (mut w, rows) = group.write_first(writer, HEAD, param).await?;
        let heads = rows
            .iter()
            .map(<Head as sqlx::FromRow<_>>::from_row)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if heads.len() != items.len() {
            return Err(corrupt("a create batch read the wrong number of rows"));
        }
        let (mut outcomes, rows) = plan(&items, &heads);
        let mut last = (!rows.is_empty()).then(|| (WRITES, format!("[{}]", rows.join(","))));
        // Tickets this batch hands back but did not build: a retried request's, and new ones
        // linked to a contact, whose label is the view's to build. Without them, the writes go
        // with the commit.
        let read_back: Vec<(usize, TicketNo)> = (outcomes.iter().zip(&items).enumerate())
            .filter_map(|(i, (outcome, item))| match outcome {
                Outcome::Seen(no) => Some((i, *no)),
                Outcome::New(t) if item.new.individual.is_some() => Some((i, t.no)),
                _ => None,
            })
            .collect();
        if !read_back.is_empty()
            && let Some((sql, writes)) = last.take()
        {
            sqlx::query(sql).bind(writes).execute(&mut *w).await?;
        }
        for (i, no) in read_back {
            let stored = SqliteStore::ticket_in(&mut w, items[i].desk, no)
                .await?
                .ok_or(StoreError::NoTicket(no))?
                .ticket;
            outcomes[i] = match outcomes[i] {
                Outcome::Seen(_) => Outcome::Replayed(stored),
                _ => Outcome::New(stored),
            };
        }
        Ok((w, last, outcomes))
    }
    .await;
    match written {
        Ok((w, last, outcomes)) => {
            commit_and_answer(w, last, move |committed| answer(items, outcomes, committed)).await;
        }
        Err(e) => {
            tracing::warn!(error = %e, creates = items.len(), "A batch of creates failed.");
            answer(items, Vec::new(), Err(e.to_string()));
        }
    }
}

/// Numbers the batch's new tickets: each desk's from its next number, ids from the next id,
/// both in arrival order; a create whose key is stored or earlier in the batch takes none.
/// Returns each create's outcome and the rows of [`WRITES`].
fn plan(items: &[Pending], heads: &[Head]) -> (Vec<Outcome>, Vec<String>) {
    let mut next_id = heads.first().map_or(1, |h| h.id);
    let mut next_no: HashMap<i64, i64> = HashMap::new();
    let mut keys: HashMap<(i64, &str), usize> = HashMap::new();
    let mut rows = Vec::with_capacity(items.len());
    let outcomes = items
        .iter()
        .zip(heads)
        .enumerate()
        .map(|(i, (item, head))| {
            if let Some(key) = item.key.as_deref() {
                if let Some(&first) = keys.get(&(item.desk.0, key)) {
                    return Outcome::SameAs(first);
                }
                keys.insert((item.desk.0, key), i);
            }
            if let Some(no) = head.seen {
                return Outcome::Seen(TicketNo(no));
            }
            let Some(desk_next) = head.next_no else {
                return Outcome::Failed(corrupt(format!("no desk {}", item.desk)));
            };
            let no = *next_no.entry(item.desk.0).or_insert(desk_next);
            match create_row(
                item.desk,
                (next_id, no),
                &item.new,
                item.key.as_deref(),
                &item.out,
                ms(item.now),
            ) {
                Ok((ticket, row)) => {
                    rows.push(row);
                    next_id += 1;
                    next_no.insert(item.desk.0, no + 1);
                    Outcome::New(ticket)
                }
                Err(e) => Outcome::Failed(e),
            }
        })
        .collect();
    (outcomes, rows)
}

/// Tells every request its outcome, now that the round's commit (`committed`) is known; a
/// failed commit fails them all.
fn answer(items: Vec<Pending>, outcomes: Vec<Outcome>, committed: Result<(), String>) {
    let mut results: Vec<Result<Created>> = Vec::with_capacity(items.len());
    let mut outcomes = outcomes.into_iter();
    for _ in 0..items.len() {
        let result = match (&committed, outcomes.next()) {
            (Err(e), _) => Err(StoreError::Batch(e.clone())),
            (Ok(()), Some(Outcome::New(ticket))) => Ok(Created {
                ticket,
                replayed: false,
            }),
            (Ok(()), Some(Outcome::Replayed(ticket))) => Ok(Created {
                ticket,
                replayed: true,
            }),
            (Ok(()), Some(Outcome::SameAs(first))) => match results.get(first) {
                Some(Ok(c)) => Ok(Created {
                    ticket: c.ticket.clone(),
                    replayed: true,
                }),
                Some(Err(e)) => Err(StoreError::Batch(e.to_string())),
                None => Err(corrupt("a repeated key before its first create")),
            },
            (Ok(()), Some(Outcome::Failed(e))) => Err(e),
            (Ok(()), Some(Outcome::Seen(no))) => Err(StoreError::NoTicket(no)),
            (Ok(()), None) => Err(corrupt("a create of the batch was left out")),
        };
        results.push(result);
    }
    for (item, result) in items.into_iter().zip(results) {
        // The request may have gone away; its ticket stands (a retry with its key finds it).
        let _ = item.done.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::outgoing::Outgoing;
    use crate::core::ticket::{Priority, Source};
    use crate::store::TicketStore;
    use crate::store::sqlite::testing::count;
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

    /// A create whose one outbox row is a direct message (keyed by the batch).
    async fn create(
        store: &SqliteStore,
        desk: i64,
        text: &str,
        key: Option<&str>,
    ) -> Result<Created> {
        let out: OwnedOut = Box::new(|t: &Ticket| {
            vec![Outgoing::DirectMessage {
                surface: crate::core::people::SurfaceRef::new(
                    crate::core::people::Platform::Slack,
                    "T1",
                ),
                user: "slack:U2".parse().unwrap(),
                text: format!("made {}", t.no),
                ticket: Some(t.id),
            }]
        });
        store
            .create_ticket(
                DeskId(desk),
                new_ticket(text),
                key.map(str::to_owned),
                out,
                Utc::now(),
            )
            .await
    }

    async fn store() -> (tempfile::TempDir, String, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        let mut w = store.write().await.unwrap();
        sqlx::query("INSERT INTO desks (id, name, created_at) VALUES (1, 'a', 0), (2, 'b', 0)")
            .execute(&mut *w)
            .await
            .unwrap();
        w.commit().await.unwrap();
        (dir, url, store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_creates_are_numbered_gapless_per_desk_with_their_outbox_rows() {
        let (_dir, _url, store) = store().await;
        let mut set = tokio::task::JoinSet::new();
        for i in 0..300 {
            let store = store.clone();
            set.spawn(async move {
                let desk = 1 + i % 2;
                let c = create(&store, desk, &format!("t{i}"), Some(&format!("k{i}")))
                    .await
                    .unwrap();
                assert!(!c.replayed);
                assert_eq!(c.ticket.description, format!("t{i}"));
                (desk, c.ticket.no.0, c.ticket.id.0)
            });
        }
        let mut made = Vec::new();
        while let Some(r) = set.join_next().await {
            made.push(r.unwrap());
        }
        for desk in [1, 2] {
            let mut nos: Vec<i64> = made.iter().filter(|m| m.0 == desk).map(|m| m.1).collect();
            nos.sort_unstable();
            assert_eq!(nos, (1..=150).collect::<Vec<_>>(), "desk {desk}");
        }
        let mut ids: Vec<i64> = made.iter().map(|m| m.2).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 300);
        // What the answers said is what is stored, and each create queued its message.
        let stored: Vec<(i64, i64, i64)> =
            sqlx::query_as("SELECT desk_id, no, id FROM tickets ORDER BY id")
                .fetch_all(&mut *store.read().await.unwrap())
                .await
                .unwrap();
        made.sort_unstable_by_key(|m| m.2);
        assert_eq!(stored, made);
        assert_eq!(count(&store, "SELECT count(*) FROM outbox").await, 300);
        assert_eq!(count(&store, "SELECT count(*) FROM events").await, 300);
        assert_eq!(
            count(&store, "SELECT next_no FROM desks WHERE id = 1").await,
            151
        );
    }

    #[tokio::test]
    async fn a_retried_request_gets_its_ticket_back_in_the_same_batch_or_later() {
        let (_dir, _url, store) = store().await;
        // Sent together: one batch.
        let ((), a, b, c) = tokio::join!(
            store.one_batch(3),
            create(&store, 1, "first", Some("k1")),
            create(&store, 1, "first", Some("k1")),
            create(&store, 1, "second", Some("k2")),
        );
        let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
        assert!(!a.replayed && b.replayed && !c.replayed);
        assert_eq!((a.ticket.id, a.ticket.no.0), (b.ticket.id, b.ticket.no.0));
        // No gap after the repeated key.
        assert_eq!(c.ticket.no.0, 2);
        let later = create(&store, 1, "first", Some("k1")).await.unwrap();
        assert!(later.replayed);
        assert_eq!(later.ticket.no, a.ticket.no);
        assert_eq!(later.ticket.description, "first");
        // The same key on another desk is another request.
        let other = create(&store, 2, "first", Some("k1")).await.unwrap();
        assert!(!other.replayed);
        assert_eq!(count(&store, "SELECT count(*) FROM tickets").await, 3);
        assert_eq!(count(&store, "SELECT count(*) FROM outbox").await, 3);
    }

    #[tokio::test]
    async fn a_create_for_a_missing_desk_fails_alone_and_another_writer_is_respected() {
        let (_dir, url, store) = store().await;
        // One batch.
        let ((), ok, missing) = tokio::join!(
            store.one_batch(2),
            create(&store, 1, "ok", None),
            create(&store, 9, "x", None)
        );
        assert_eq!(ok.unwrap().ticket.no.0, 1);
        assert!(missing.is_err());
        // Another process writes desk 1's next ticket; the next create reads and follows it.
        let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO tickets (desk_id, no, description, priority, status, reporter, source,
                                  created_at, updated_at)
             VALUES (1, 2, 'elsewhere', 'low', 'open', 'cli:x', 'cli', 0, 0);
             UPDATE desks SET next_no = 3 WHERE id = 1;",
        )
        .execute(&mut other)
        .await
        .unwrap();
        other.close().await.unwrap();
        assert_eq!(
            create(&store, 1, "after", None).await.unwrap().ticket.no.0,
            3
        );
        assert_eq!(create(&store, 2, "b", None).await.unwrap().ticket.no.0, 1);
    }
}
