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
//!
//! A change may bring what computes its SLA clocks ([`SlaPlan`]): they are computed here from
//! the ticket's timeline, read with the ticket, and the change's own events, and stored with
//! the change, with any alert not queued for the ticket before. That saves each change a second
//! write and a second commit to wait for, and the read of its timeline beforehand.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use sqlx::sqlite::SqliteRow;
use tokio::sync::{mpsc, oneshot};

use super::batches::commit_and_answer;
use super::conns::Conns;
use super::group::{Group, Write};
use super::tickets::{StepJson, TicketRow, steps_of};
use super::writes::{Cause, EventJson, OutboxJson, TicketJson, events_json, outbox_json};
use super::{SqliteStore, at, corrupt, ms};
use crate::core::outgoing::Outgoing;
use crate::core::sla::{Memo, Step};
use crate::core::ticket::{Action, DeskId, Ticket, TicketNo};
use crate::store::{
    ChangeOutcome, Changed, MERGE_MAX, MERGED_NOTE_CHARS, Result, SlaAlert, SlaState, StoreError,
    TicketChange,
};

/// A change waiting for the next batch.
pub(super) struct Pending {
    pub(super) change: TicketChange,
    pub(super) done: oneshot::Sender<Result<ChangeOutcome>>,
}

/// Each ticket the batch changes, by the index of its `{desk, no, ticket, after}` in `?1`:
/// its timeline as the SLA clocks read it (its status and priority changes, the kinds
/// `sla::Step::of` reads, as [`super::tickets::StepJson`]s): only those after event `after`
/// when the ticket is `ticket`, whose earlier steps the [`StepCache`] holds (`cached`); its
/// last event's id, the SLA alerts queued for it before (`target:level`, space-separated), and
/// the ticket as `ticket_view` has it ([`TicketRow`]). A ticket not on its desk is left out.
///
/// One row, whatever the batch's size: the tickets as one JSON array ([`Head`]), and the next
/// event id. (A row per ticket was a message from the connection's thread to the writer's, and
/// a value copied out for each of its columns.)
const HEAD: &str = "SELECT (SELECT coalesce(max(id), 0) + 1 FROM events) AS next_event,
            json_group_array(json_object(
              'i', h.i, 'steps', json(h.steps), 'cached', h.cached,
              'last_event', h.last_event, 'alerted', h.alerted,
              'ticket', json_object(
                'id', h.id, 'desk_id', h.desk_id, 'no', h.no, 'description', h.description,
                'priority', h.priority, 'status', h.status, 'assignee', h.assignee,
                'reporter', h.reporter, 'source', h.source, 'created_at', h.created_at,
                'updated_at', h.updated_at, 'first_response_at', h.first_response_at,
                'resolved_at', h.resolved_at, 'individual_id', h.individual_id,
                'assignee_name', h.assignee_name, 'individual_name', h.individual_name,
                'individual_email', h.individual_email, 'org_id', h.org_id,
                'organization_name', h.organization_name, 'first_due', h.first_due,
                'resolution_due', h.resolution_due, 'sla_paused', h.sla_paused))) AS heads
       FROM (SELECT c.key AS i,
                    (SELECT json_group_array(json_array(e.kind, e.old_value, e.new_value, e.at) ORDER BY e.id)
                       FROM events e
                      WHERE e.ticket_id = t.id AND e.kind IN ('status', 'priority')
                        AND e.id > CASE WHEN t.id = c.value ->> 'ticket' THEN c.value ->> 'after' ELSE 0 END)
                      AS steps,
                    t.id = c.value ->> 'ticket' AS cached,
                    (SELECT coalesce(max(e.id), 0) FROM events e WHERE e.ticket_id = t.id) AS last_event,
                    (SELECT group_concat(a.target || ':' || a.level, ' ') FROM sla_alerts a
                      WHERE a.ticket_id = t.id) AS alerted,
                    t.*
               FROM json_each(?1) AS c
               JOIN ticket_view AS t ON t.desk_id = c.value ->> 'desk' AND t.no = c.value ->> 'no') AS h";

/// One ticket of [`HEAD`]'s array.
#[derive(serde::Deserialize)]
struct Head {
    i: usize,
    steps: Vec<StepJson>,
    cached: i64,
    last_event: i64,
    alerted: Option<String>,
    ticket: TicketRow,
}

/// The columns of a changed ticket ([`TicketJson`] as `n.value`) that both of [`WRITES`]'
/// ticket updates set.
macro_rules! changed_ticket_columns {
    () => {
        "priority = n.value ->> 'priority', status = n.value ->> 'status',
            assignee = n.value ->> 'assignee', individual_id = n.value ->> 'individual',
            organization_id = n.value ->> 'organization', updated_at = n.value ->> 'now',
            first_response_at = n.value ->> 'first_response', resolved_at = n.value ->> 'resolved'"
    };
}

/// Every write of a batch, as one command. `?1` is
/// `{"tickets": [...], "withdrawn": [...], "alerts": [...], "changes": [...], "joins": [...]}`:
/// each changed ticket once, as it is after the batch's last change of it, with its clocks if
/// that change brought them ([`ChangedJson`]: a ticket's row is updated once, by the first
/// `UPDATE` with its clocks, else by the second without); the alerts that no longer
/// stand (their clock fell back below their level: [`AlertKey`]), removed before the alerts
/// queued are added; and each change's rows
/// ([`ChangeJson`]) in arrival order.
///
/// A card refresh that joins the row waiting for its second ([`Paced::Join`]) is appended to
/// that row's `joined` if the row can still be joined: pending, never attempted, and its
/// destination's last pending row, with no part-way delivery before it (so the refreshes of a
/// destination are said in the order they were written). Otherwise it is written as a row of
/// its own, in its place: the insert that follows the joins writes each refresh the joins did
/// not take (each joined refresh is recorded by its own key, found in the row's `joined` text:
/// a note's quotes are escaped there, so `"key":"…"` is only ever a key). `?1`'s `joins` are
/// `[[key of the row joined, its joined refreshes as JSON objects, comma-separated]]`, one
/// for each row joined, so the joins append text and never parse JSON. They find their rows by
/// key (`+state`: through the index of pending rows the update read every one of them).
const WRITES: &str = concat!(
    super::writes::parse_batch_once!(),
    "UPDATE tickets SET ",
    changed_ticket_columns!(),
    ",
            first_due = n.value ->> '$.sla[0]', resolution_due = n.value ->> '$.sla[1]',
            sla_paused = n.value ->> '$.sla[2]', first_level = n.value ->> '$.sla[3]',
            resolution_level = n.value ->> '$.sla[4]', sla_check_at = n.value ->> '$.sla[5]'
       FROM jsonb_each((SELECT v FROM temp.piraja_batch), '$.tickets') AS n
      WHERE n.value -> 'sla' IS NOT NULL
        AND tickets.id = n.value ->> 'ticket' AND tickets.desk_id = n.value ->> 'desk';
     UPDATE tickets SET ",
    changed_ticket_columns!(),
    "
       FROM jsonb_each((SELECT v FROM temp.piraja_batch), '$.tickets') AS n
      WHERE n.value -> 'sla' IS NULL
        AND tickets.id = n.value ->> 'ticket' AND tickets.desk_id = n.value ->> 'desk';
     DELETE FROM sla_alerts
      WHERE (ticket_id, target, level, desk_id) IN
            (SELECT value ->> 1, value ->> 2, value ->> 3, value ->> 0
               FROM jsonb_each((SELECT v FROM temp.piraja_batch), '$.withdrawn'));
     INSERT INTO sla_alerts (desk_id, ticket_id, target, level, at)
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4
       FROM jsonb_each((SELECT v FROM temp.piraja_batch), '$.alerts') WHERE true
     ON CONFLICT DO NOTHING;
     INSERT INTO events (id, desk_id, ticket_id, actor, kind, old_value, new_value, note, at)
     SELECT e.value ->> 0, c.value ->> 0, c.value ->> 1, e.value ->> '$[1][0]',
            e.value ->> '$[1][1]', e.value ->> '$[1][2]', e.value ->> '$[1][3]',
            e.value ->> '$[1][4]', c.value ->> 2
       FROM jsonb_each((SELECT v FROM temp.piraja_batch), '$.changes') AS c JOIN jsonb_each(c.value, '$[3]') AS e
      ORDER BY c.key, e.key;
     UPDATE outbox
        SET joined = CASE WHEN joined IS NULL THEN '[' || (j.value ->> 1) || ']'
                     ELSE substr(joined, 1, length(joined) - 1) || ',' || (j.value ->> 1) || ']' END
       FROM jsonb_each((SELECT v FROM temp.piraja_batch), '$.joins') AS j
      WHERE outbox.idempotency_key = j.value ->> 0 AND +outbox.state = 'pending' AND outbox.attempts = 0
        AND NOT EXISTS (SELECT 1 FROM outbox AS l INDEXED BY outbox_pending
                         WHERE l.state = 'pending' AND l.destination = outbox.destination
                           AND (l.id > outbox.id OR l.progress IS NOT NULL));
     INSERT INTO outbox (desk_id, destination, idempotency_key, payload, next_attempt_at, created_at)
     SELECT c.value ->> 0, o.value ->> 0, o.value ->> 1, o.value ->> 2, coalesce(o.value ->> 3, c.value ->> 2), c.value ->> 2
       FROM jsonb_each((SELECT v FROM temp.piraja_batch), '$.changes') AS c JOIN jsonb_each(c.value, '$[4]') AS o
      WHERE o.value ->> 4 IS NULL
         OR NOT EXISTS (SELECT 1 FROM outbox AS x
                         WHERE x.idempotency_key = o.value ->> 4
                           AND instr(x.joined, '\"key\":' || json_quote(o.value ->> 1)) > 0)
      ORDER BY c.key, o.key
     ON CONFLICT (idempotency_key) DO NOTHING"
);

/// Of the batch's request keys (`?1`: `[[desk, key], …]`, only changes that bring one), those
/// the desk has seen: their changes are replays. Run only for a batch with keys (a form's note,
/// a reaction: requests a platform may deliver twice), so the common batch pays nothing for it.
const KNOWN_KEYS: &str = "SELECT value ->> 0 AS desk, value ->> 1 AS key FROM json_each(?1)
     WHERE EXISTS (SELECT 1 FROM request_keys k
                    WHERE k.desk_id = value ->> 0 AND k.key = value ->> 1)";

/// Records the keys of the batch's changes that were made (`?1`: `[[desk, key, now], …]`).
const RECORD_KEYS: &str = "INSERT INTO request_keys (desk_id, key, created_at)
     SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?1) WHERE true
     ON CONFLICT (desk_id, key) DO NOTHING";

/// One change's rows: `[desk, ticket, now, events as `[id, event]`, outbox rows]`.
type ChangeJson<'a> = (i64, i64, i64, Vec<(i64, EventJson<'a>)>, Vec<OutboxJson>);

/// A ticket's clocks: `[first due, resolution due, paused, first level, resolution level,
/// next check]`.
type SlaJson = (
    Option<i64>,
    Option<i64>,
    bool,
    &'static str,
    &'static str,
    Option<i64>,
);

/// A changed ticket as [`WRITES`] reads it: as it is after the batch's last change of it, with
/// the clocks that change brought, if any.
#[derive(serde::Serialize)]
struct ChangedJson<'a> {
    #[serde(flatten)]
    ticket: TicketJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sla: Option<SlaJson>,
}

/// An alert queued: `[desk, ticket, target, level, at]`.
type AlertJson = (i64, i64, &'static str, &'static str, i64);

/// An alert forgotten: `[desk, ticket, target, level]`.
type AlertKey = (i64, i64, &'static str, &'static str);

/// A ticket of the batch as the changes so far left it.
struct Slot {
    ticket: Ticket,
    /// Its timeline as the clocks read it.
    steps: Vec<Step>,
    /// What the clocks' last computation from `steps` left for the next ([`SlaPlan`]).
    memo: Option<Memo>,
    /// The alerts queued for it (`target:level`).
    alerted: Vec<String>,
    /// The name of its assignee, while that is who the view named.
    assignee_name: Option<String>,
    /// The clocks to store: those of its last change, if that change brought them.
    sla: Option<SlaState>,
    /// The id of its last event.
    last_event: i64,
}

/// How much the [`StepCache`] keeps, in steps of 16 bytes (a step's room in its vector, used or
/// not), an entry counting as four more (its key and header) and its clocks' memo as
/// [`MEMO_STEPS`]: about 12 MB.
const CACHED_STEPS: usize = 750_000;

/// What a [`Memo`] counts, in steps' room.
const MEMO_STEPS: usize = std::mem::size_of::<Memo>().div_ceil(16);

/// What an entry of the [`StepCache`] counts against [`CACHED_STEPS`].
fn cost(c: &Cached) -> usize {
    c.steps.capacity() + 4 + if c.memo.is_some() { MEMO_STEPS } else { 0 }
}

/// The change task's memory of tickets' steps, so a batch reads only the events after those it
/// knows. An entry is put only once the round that read or wrote it is committed, so it holds
/// exactly the ticket's status and priority events up to `last_event`: events are never
/// removed, and any written since have larger ids (the batch reads `id > last_event`). A
/// ticket that is another by now (its number moved desks) is read whole.
#[derive(Default)]
struct StepCache {
    entries: HashMap<(DeskId, TicketNo), Cached>,
    /// What the entries count against [`CACHED_STEPS`].
    steps: usize,
}

struct Cached {
    ticket: i64,
    last_event: i64,
    steps: Vec<Step>,
    memo: Option<Memo>,
}

impl StepCache {
    fn take(&mut self, key: (DeskId, TicketNo)) -> Option<Cached> {
        let cached = self.entries.remove(&key)?;
        self.steps -= cost(&cached);
        Some(cached)
    }

    /// Keeps `cached` unless a later state of the ticket is kept already (or it alone would take
    /// a quarter of the room). When full, it forgets entries in the map's order, which is no
    /// order of use, until a quarter of the room is free: the next batch of each ticket
    /// forgotten reads it whole. (Forgetting everything at once, a desk whose busy tickets
    /// held more steps than the room read every ticket whole on every change from then on.)
    fn put(&mut self, key: (DeskId, TicketNo), cached: Cached) {
        if let Some(kept) = self.entries.get(&key)
            && kept.last_event >= cached.last_event
        {
            return;
        }
        if cost(&cached) > CACHED_STEPS / 4 {
            return;
        }
        if self.steps + cost(&cached) > CACHED_STEPS {
            let mut over = (self.steps + cost(&cached)).saturating_sub(CACHED_STEPS / 4 * 3);
            let steps = &mut self.steps;
            self.entries.retain(|_, c| {
                if over == 0 {
                    return true;
                }
                over = over.saturating_sub(cost(c));
                *steps -= cost(c);
                false
            });
        }
        self.steps += cost(&cached);
        if let Some(old) = self.entries.insert(key, cached) {
            self.steps -= cost(&old);
        }
    }
}

/// Starts the change task for the store's writer; changes are sent to the returned queue.
pub(super) fn spawn(
    thread: &super::batches::WriterThread,
    writer: Conns,
    group: Arc<Group>,
) -> mpsc::Sender<Pending> {
    let cache = Arc::new(Mutex::new(StepCache::default()));
    let pace = Arc::new(Mutex::new(Pace::default()));
    super::batches::spawn(thread, writer, group, move |writer, group, items| {
        let (cache, pace) = (cache.clone(), pace.clone());
        async move { write_batch(&writer, &group, &cache, &pace, items).await }
    })
}

/// Writes `items` in one savepoint of the current round and answers each once the round is
/// committed. A failure of the batch's statements undoes the whole batch and fails each item;
/// a change that is refused (or whose ticket is not there) fails alone.
async fn write_batch(
    writer: &Conns,
    group: &Group,
    cache: &Arc<Mutex<StepCache>>,
    pace: &Mutex<Pace>,
    items: Vec<Pending>,
) {
    let (changes, dones): (Vec<TicketChange>, Vec<_>) =
        items.into_iter().map(|p| (p.change, p.done)).unzip();
    let keys: Vec<(DeskId, TicketNo)> = changes.iter().map(|c| (c.desk, c.no)).collect();
    let written: Result<_> = async {
        let (mut batch, param, known) = {
            let mut cache = cache
                .lock()
                .map_err(|_| corrupt("the step cache is poisoned"))?;
            Batch::ask(&keys, &mut cache)?
        };
        let (mut w, rows) = group.write_first(writer, HEAD, param).await?;
        batch.read(&rows, known)?;
        let asked: Vec<(i64, &str)> = (changes.iter())
            .filter_map(|c| Some((c.desk.0, c.key.as_deref()?)))
            .collect();
        // Keys seen before, and then those of this batch's changes as they are made: a key
        // twice in one batch (a form submitted twice at once) is made once too.
        let mut seen: HashSet<(i64, String)> = HashSet::new();
        if !asked.is_empty() {
            use sqlx::Row;
            let param = serde_json::to_string(&asked).map_err(corrupt)?;
            for row in sqlx::query(KNOWN_KEYS)
                .bind(param)
                .fetch_all(&mut *w)
                .await?
            {
                seen.insert((row.try_get("desk")?, row.try_get("key")?));
            }
        }
        let mut recorded: Vec<(i64, String, i64)> = Vec::new();
        let mut outcomes = Vec::with_capacity(changes.len());
        // Taken for the loop (a lock guard cannot be held across the writes' await); a batch
        // that fails half-way forgets the pace, which only lets the next refreshes go at once.
        let mut paced = std::mem::take(
            &mut *pace
                .lock()
                .map_err(|_| corrupt("the refresh pace is poisoned"))?,
        );
        for (n, c) in changes.into_iter().enumerate() {
            let key = c.key.clone().map(|k| (c.desk.0, k));
            let replayed = key.as_ref().is_some_and(|k| seen.contains(k));
            let now = ms(c.now);
            let outcome = batch.apply(n, c, replayed, &mut paced)?;
            if let (
                Some(key),
                Ok(ChangeOutcome {
                    changed: Changed::Yes(_),
                    ..
                }),
            ) = (key, &outcome)
            {
                recorded.push((key.0, key.1.clone(), now));
                seen.insert(key);
            }
            outcomes.push(outcome);
        }
        *pace
            .lock()
            .map_err(|_| corrupt("the refresh pace is poisoned"))? = paced;
        let mut last = batch.writes()?.map(|writes| (WRITES, writes));
        // The writes go with the commit, unless keys are recorded or links read after them.
        if !recorded.is_empty() || !batch.linked.is_empty() {
            if let Some((sql, writes)) = last.take() {
                sqlx::query(sql).bind(writes).execute(&mut *w).await?;
            }
            if !recorded.is_empty() {
                let param = serde_json::to_string(&recorded).map_err(corrupt)?;
                sqlx::query(RECORD_KEYS)
                    .bind(param)
                    .execute(&mut *w)
                    .await?;
            }
            batch.read_links(&mut w, &keys, &mut outcomes).await?;
        }
        Ok((w, last, outcomes, batch.fresh()))
    }
    .await;
    match written {
        Ok((w, last, outcomes, fresh)) => {
            let cache = cache.clone();
            commit_and_answer(w, last, move |committed| {
                if committed.is_ok()
                    && let Ok(mut cache) = cache.lock()
                {
                    for (key, cached) in fresh {
                        cache.put(key, cached);
                    }
                }
                for (done, outcome) in dones.into_iter().zip(outcomes) {
                    let result = match &committed {
                        Ok(()) => outcome,
                        Err(e) => Err(StoreError::Batch(e.clone())),
                    };
                    // The request may have gone away; its change stands.
                    let _ = done.send(result);
                }
            })
            .await
        }
        Err(e) => {
            tracing::warn!(error = %e, changes = dones.len(), "A batch of changes failed.");
            let e = e.to_string();
            for done in dones {
                let _ = done.send(Err(StoreError::Batch(e.clone())));
            }
        }
    }
}

/// How often a ticket's cards are refreshed at most, in milliseconds.
const PACE_MS: i64 = 1_000;

/// How many destinations the pace keeps before it forgets those whose second is over.
const PACE_KEPT: usize = 4096;

/// When each destination's card refreshes are due: the first at once, and those that follow
/// within [`PACE_MS`] together, [`PACE_MS`] after it. The first of those is written as a row
/// that waits for its time; the rest join it ([`Paced::Join`]), as long as the joined notes stay
/// within what one delivery says ([`MERGE_MAX`], [`MERGED_NOTE_CHARS`]).
#[derive(Default)]
struct Pace {
    /// Each destination's latest refresh and the row waiting for it.
    scheduled: HashMap<String, Scheduled>,
    /// The size at which those whose second is over are next forgotten: [`PACE_KEPT`], or
    /// twice what the last pass kept, so that many live destinations are not walked on
    /// every refresh.
    prune_at: usize,
}

struct Scheduled {
    /// When the latest refresh is (or was) due.
    at: i64,
    /// The row written for that time, which later refreshes of the same time may join.
    waiting: Option<Waiting>,
}

struct Waiting {
    /// Its idempotency key.
    key: String,
    /// The refreshes it says: its own and those joined.
    rows: usize,
    /// The characters of their joined notes.
    chars: usize,
}

/// A card refresh joined to a waiting row, as that row's `joined` keeps it (see
/// [`crate::store::Joined`]); `key` is the idempotency key its own row would have had.
#[derive(serde::Serialize)]
struct JoinedJson<'a> {
    key: &'a str,
    note: &'a Option<String>,
    answered: &'a Option<String>,
}

/// When a card refresh goes.
#[derive(Debug, PartialEq, Eq)]
enum Paced {
    /// At once, a row of its own.
    Now,
    /// At this time, a row of its own that later refreshes may join.
    At(i64),
    /// At this time, joined to the row with this key (written as a row of its own if that row
    /// can no longer be joined: see [`WRITES`]).
    Join(i64, String),
}

impl Pace {
    /// When a refresh of `destination` queued at `now` goes: `key` is the idempotency key its
    /// row would have, `note` what it says.
    fn due(&mut self, destination: &str, now: i64, key: &str, note: Option<&str>) -> Paced {
        if self.scheduled.len() >= self.prune_at.max(PACE_KEPT) {
            self.scheduled.retain(|_, s| s.at + PACE_MS > now);
            self.prune_at = self.scheduled.len() * 2;
        }
        let chars = note.map_or(0, |n| n.chars().count());
        let waiting = || {
            Some(Waiting {
                key: key.to_owned(),
                rows: 1,
                chars,
            })
        };
        let Some(s) = self.scheduled.get_mut(destination) else {
            let s = Scheduled {
                at: now,
                waiting: None,
            };
            self.scheduled.insert(destination.to_owned(), s);
            return Paced::Now;
        };
        if s.at > now {
            if let Some(w) = &mut s.waiting {
                let more = chars + usize::from(w.chars > 0 && chars > 0);
                if w.rows + 1 < MERGE_MAX && w.chars + more <= MERGED_NOTE_CHARS {
                    w.rows += 1;
                    w.chars += more;
                    return Paced::Join(s.at, w.key.clone());
                }
            }
            s.waiting = waiting();
            Paced::At(s.at)
        } else if s.at + PACE_MS > now {
            s.at += PACE_MS;
            s.waiting = waiting();
            Paced::At(s.at)
        } else {
            s.at = now;
            s.waiting = None;
            Paced::Now
        }
    }

    /// Another row of `destination` was written: a refresh queued after it must not join a row
    /// written before it.
    fn interrupt(&mut self, destination: &str) {
        if let Some(s) = self.scheduled.get_mut(destination) {
            s.waiting = None;
        }
    }
}

/// A batch being written: each of its tickets once, as read and then as its changes so far
/// left it, and the rows its changes make.
struct Batch {
    /// Each ticket's slot, in the order first asked for.
    index: HashMap<(DeskId, TicketNo), usize>,
    /// `None`: not on its desk.
    slots: Vec<Option<Slot>>,
    /// The id the next event gets.
    next_event: i64,
    /// Each change's [`ChangeJson`], in arrival order.
    rows: Vec<String>,
    alerts: Vec<AlertJson>,
    withdrawn: Vec<AlertKey>,
    /// Slots changed, in the order first changed.
    changed: Vec<usize>,
    /// (slot, change) where a contact was linked.
    linked: Vec<(usize, usize)>,
    /// The refreshes joined to each waiting row ([`WRITES`]' `joins`), by the row's key.
    joins: Vec<(String, String)>,
}

impl Batch {
    /// The batch's tickets, each once, and [`HEAD`]'s parameter for them, taking what the cache
    /// knows of each (returned by slot).
    fn ask(
        keys: &[(DeskId, TicketNo)],
        cache: &mut StepCache,
    ) -> Result<(Batch, String, Vec<Option<Cached>>)> {
        let mut index = HashMap::new();
        let mut asked = Vec::new();
        let mut known = Vec::new();
        for &(desk, no) in keys {
            index.entry((desk, no)).or_insert_with(|| {
                let cached = cache.take((desk, no));
                let (ticket, after) = cached.as_ref().map_or((0, 0), |c| (c.ticket, c.last_event));
                asked.push(serde_json::json!({"desk": desk.0, "no": no.0, "ticket": ticket, "after": after}));
                known.push(cached);
                asked.len() - 1
            });
        }
        let param = serde_json::to_string(&asked).map_err(corrupt)?;
        let mut slots = Vec::new();
        slots.resize_with(asked.len(), || None);
        let batch = Batch {
            index,
            slots,
            next_event: 1,
            rows: Vec::new(),
            alerts: Vec::new(),
            withdrawn: Vec::new(),
            changed: Vec::new(),
            linked: Vec::new(),
            joins: Vec::new(),
        };
        Ok((batch, param, known))
    }

    /// Fills the slots from [`HEAD`]'s row: each ticket with its steps (those the cache
    /// knew, then those read after them; or all, read).
    fn read(&mut self, rows: &[SqliteRow], mut known: Vec<Option<Cached>>) -> Result<()> {
        use sqlx::Row;
        let [row] = rows else {
            return Err(corrupt("a change batch's read is not one row"));
        };
        self.next_event = row.try_get("next_event")?;
        let heads: &str = row.try_get("heads")?;
        let heads: Vec<Head> = serde_json::from_str(heads).map_err(corrupt)?;
        for head in heads {
            let record: crate::store::TicketRecord = head.ticket.try_into()?;
            let i = Some(head.i)
                .filter(|&i| i < self.slots.len())
                .ok_or_else(|| corrupt("a change batch read a ticket it did not ask for"))?;
            let (mut all, memo) = match known[i].take() {
                Some(c) if head.cached != 0 => (c.steps, c.memo),
                _ => (Vec::new(), None),
            };
            all.extend(steps_of(head.steps)?);
            self.slots[i] = Some(Slot {
                ticket: record.ticket,
                steps: all,
                memo,
                last_event: head.last_event,
                alerted: (head.alerted)
                    .map(|a| a.split(' ').map(str::to_owned).collect())
                    .unwrap_or_default(),
                assignee_name: record.assignee_name,
                sla: None,
            });
        }
        Ok(())
    }

    /// Applies change `n` of the batch to its ticket as the batch's earlier changes left it.
    /// The outer error fails the whole batch; the inner is this change's alone (refused, or no
    /// such ticket).
    /// A `replayed` change (its key was seen) is not made: it answers with the ticket as it is.
    fn apply(
        &mut self,
        n: usize,
        c: TicketChange,
        replayed: bool,
        pace: &mut Pace,
    ) -> Result<Result<ChangeOutcome>> {
        let slot_no = self.index[&(c.desk, c.no)];
        let Some(slot) = &mut self.slots[slot_no] else {
            return Ok(Err(StoreError::NoTicket(c.no)));
        };
        let unchanged = |slot: &Slot| ChangeOutcome {
            changed: Changed::No(slot.ticket.clone()),
            sla: None,
            assignee_name: slot.assignee_name.clone(),
            replayed,
        };
        if replayed {
            return Ok(Ok(unchanged(slot)));
        }
        let applied = match slot.ticket.apply(&c.action, &c.actor, c.now) {
            Err(e) => return Ok(Err(e.into())),
            Ok(None) => return Ok(Ok(unchanged(slot))),
            Ok(Some(applied)) => applied,
        };
        let now = ms(c.now);
        let mut t = applied.ticket;
        t.updated_at = at(now);
        let next_event = &mut self.next_event;
        let events: Vec<(i64, EventJson<'_>)> = events_json(&applied.events)
            .into_iter()
            .map(|e| {
                *next_event += 1;
                (*next_event - 1, e)
            })
            .collect();
        let last_event = self.next_event - 1;
        slot.last_event = slot.last_event.max(last_event);
        let out = (c.out)(&t);
        let mut outbox = outbox_json(c.desk, Cause::Event(last_event), &out)?;
        for (row, msg) in outbox.iter_mut().zip(&out) {
            match (msg, &row.1) {
                (Outgoing::UpdateCards { note, answered, .. }, Some(key)) => {
                    match pace.due(&row.0, now, key, note.as_deref()) {
                        Paced::Now => {}
                        Paced::At(due) => row.3 = Some(due),
                        Paced::Join(due, to) => {
                            let joined = JoinedJson {
                                key,
                                note,
                                answered,
                            };
                            let joined = serde_json::to_string(&joined).map_err(corrupt)?;
                            match self.joins.iter_mut().find(|(k, _)| *k == to) {
                                Some((_, all)) => {
                                    all.push(',');
                                    all.push_str(&joined);
                                }
                                None => self.joins.push((to.clone(), joined)),
                            }
                            (row.3, row.4) = (Some(due), Some(to));
                        }
                    }
                }
                _ => pace.interrupt(&row.0),
            }
        }
        slot.steps.extend(applied.events.iter().filter_map(|e| {
            Step::of(
                e.kind,
                e.old_value.as_deref(),
                e.new_value.as_deref(),
                t.updated_at,
            )
        }));
        if t.assignee != slot.ticket.assignee {
            slot.assignee_name = None;
        }
        // The clocks stored are those of the ticket's last change, if it brought them.
        slot.sla = None;
        let sla = match c.sla {
            Some(plan) => {
                let (state, due) = plan(&t, &slot.steps, &mut slot.memo);
                t.sla = state.due;
                slot.sla = Some(state);
                withdraw(slot, &t, &state, &mut self.alerts, &mut self.withdrawn);
                Some(queue_alerts(
                    slot,
                    &t,
                    due,
                    now,
                    &mut self.alerts,
                    &mut outbox,
                )?)
            }
            None => None,
        };
        slot.ticket = t.clone();
        let row: ChangeJson<'_> = (c.desk.0, t.id.0, now, events, outbox);
        self.rows
            .push(serde_json::to_string(&row).map_err(corrupt)?);
        if !self.changed.contains(&slot_no) {
            self.changed.push(slot_no);
        }
        if matches!(c.action, Action::LinkContact(_)) {
            self.linked.push((slot_no, n));
        }
        Ok(Ok(ChangeOutcome {
            changed: Changed::Yes(t),
            sla,
            assignee_name: slot.assignee_name.clone(),
            replayed: false,
        }))
    }

    /// [`WRITES`]' parameter, or `None` when no change changed anything.
    fn writes(&self) -> Result<Option<String>> {
        if self.rows.is_empty() {
            return Ok(None);
        }
        let slots: Vec<&Slot> = (self.changed.iter())
            .filter_map(|&i| self.slots[i].as_ref())
            .collect();
        let tickets: Vec<ChangedJson<'_>> = (slots.iter())
            .map(|s| ChangedJson {
                ticket: TicketJson::of(&s.ticket),
                sla: s.sla.as_ref().map(sla_json),
            })
            .collect();
        Ok(Some(format!(
            r#"{{"tickets":{},"withdrawn":{},"alerts":{},"changes":[{}],"joins":{}}}"#,
            serde_json::to_string(&tickets).map_err(corrupt)?,
            serde_json::to_string(&self.withdrawn).map_err(corrupt)?,
            serde_json::to_string(&self.alerts).map_err(corrupt)?,
            self.rows.join(","),
            serde_json::to_string(&self.joins).map_err(corrupt)?
        )))
    }

    /// A linked contact's label is the view's to build: reads it back, after the writes, for
    /// the changes of that ticket from the link on (`keys` and `outcomes` by change).
    async fn read_links(
        &self,
        w: &mut Write,
        keys: &[(DeskId, TicketNo)],
        outcomes: &mut [Result<ChangeOutcome>],
    ) -> Result<()> {
        for &(slot_no, from) in &self.linked {
            let Some(slot) = &self.slots[slot_no] else {
                continue;
            };
            let (desk, no) = (slot.ticket.desk, slot.ticket.no);
            let stored = SqliteStore::ticket_in(w, desk, no)
                .await?
                .ok_or(StoreError::NoTicket(no))?
                .ticket;
            for (key, outcome) in keys.iter().zip(outcomes.iter_mut()).skip(from) {
                if let Ok(ChangeOutcome {
                    changed: Changed::Yes(changed),
                    ..
                }) = outcome
                    && *key == (desk, no)
                {
                    changed.contact.clone_from(&stored.contact);
                }
            }
        }
        Ok(())
    }

    /// What the step cache may keep of the batch's tickets once its round is committed.
    fn fresh(self) -> Vec<((DeskId, TicketNo), Cached)> {
        (self.slots.into_iter().flatten())
            .map(|s| {
                let cached = Cached {
                    ticket: s.ticket.id.0,
                    last_event: s.last_event,
                    steps: s.steps,
                    memo: s.memo,
                };
                ((s.ticket.desk, s.ticket.no), cached)
            })
            .collect()
    }
}

/// Forgets the ticket's alerts that its new clocks `state` fell back below
/// ([`SlaState::withdrawn`]): those stored (to be removed by [`WRITES`]) and those queued
/// earlier in this batch (their messages stay queued; only the record goes). A deadline that
/// moves away and is reached again is alerted again.
fn withdraw(
    slot: &mut Slot,
    t: &Ticket,
    state: &SlaState,
    alerts: &mut Vec<AlertJson>,
    withdrawn: &mut Vec<AlertKey>,
) {
    for (target, level) in state.withdrawn() {
        let key = format!("{target}:{level}");
        let Some(at) = slot.alerted.iter().position(|k| *k == key) else {
            continue;
        };
        slot.alerted.remove(at);
        alerts.retain(|a| !(a.1 == t.id.0 && a.2 == target && a.3 == level));
        withdrawn.push((t.desk.0, t.id.0, target, level));
    }
}

/// Queues the alerts of `due` not queued for the ticket before: a row of `alerts` each, and
/// their messages on the change's `outbox` (keyed as `save_sla` keys them, so an alert is sent
/// once whichever path queues it). Returns the levels queued.
fn queue_alerts(
    slot: &mut Slot,
    t: &Ticket,
    due: Vec<SlaAlert>,
    now: i64,
    alerts: &mut Vec<AlertJson>,
    outbox: &mut Vec<OutboxJson>,
) -> Result<Vec<&'static str>> {
    let mut queued = Vec::new();
    for alert in due {
        let key = format!("{}:{}", alert.target, alert.level);
        if slot.alerted.contains(&key) {
            continue;
        }
        slot.alerted.push(key);
        let cause = super::sla::alert_cause(t.id, alert.target, alert.level, now);
        outbox.extend(outbox_json(t.desk, Cause::Other(&cause), &alert.out)?);
        alerts.push((t.desk.0, t.id.0, alert.target, alert.level, now));
        queued.push(alert.level);
    }
    Ok(queued)
}

/// A ticket's clocks as [`WRITES`] reads them.
fn sla_json(s: &SlaState) -> SlaJson {
    (
        s.due.first_due.map(ms),
        s.due.resolution_due.map(ms),
        s.due.paused,
        s.first_level.as_str(),
        s.resolution_level.as_str(),
        s.check_at.map(ms),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::outgoing::Outgoing;
    use crate::core::people::{Platform, SurfaceRef, UserRef};
    use crate::core::sla::{Level, SlaDue};
    use crate::core::ticket::{ContactLink, Priority, Source, Status};
    use crate::store::sqlite::testing::{count, execute};
    use crate::store::{NewTicket, OwnedOut, SlaPlan, TicketStore};
    use chrono::Utc;

    fn user(id: &str) -> UserRef {
        format!("slack:{id}").parse().unwrap()
    }

    /// A change of desk 1's ticket `no` whose one outbox row is a card refresh saying `note`.
    fn request(no: i64, action: Action, note: &str, sla: Option<SlaPlan>) -> TicketChange {
        let note = note.to_owned();
        let out: OwnedOut = Box::new(move |t: &Ticket| {
            vec![Outgoing::UpdateCards {
                surface: SurfaceRef::new(Platform::Slack, "T1"),
                ticket: t.id,
                note: Some(note.clone()),
                answered: None,
            }]
        });
        TicketChange {
            desk: DeskId(1),
            no: TicketNo(no),
            actor: user("U1"),
            action,
            out,
            sla,
            now: Utc::now(),
            key: None,
        }
    }

    #[tokio::test]
    async fn a_keyed_change_is_made_once_in_its_batch_and_after_it() {
        let (_dir, store) = store().await;
        let keyed = |key: &str| TicketChange {
            key: Some(key.into()),
            ..request(1, Action::Note("call them back".into()), "noted", None)
        };
        // The same form submitted twice at once: one batch, one note.
        let ((), a, b) = tokio::join!(
            store.one_batch(2),
            store.change_ticket(keyed("slack:V1")),
            store.change_ticket(keyed("slack:V1"))
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(u8::from(a.replayed) + u8::from(b.replayed), 1);
        // Submitted again later: a replay, answered with the ticket as it is.
        let again = store.change_ticket(keyed("slack:V1")).await.unwrap();
        assert!(again.replayed);
        assert!(matches!(again.changed, Changed::No(t) if t.no == TicketNo(1)));
        // Another form notes again; a key is the desk's own (desk 2 has its own V1).
        let other = store.change_ticket(keyed("slack:V2")).await.unwrap();
        assert!(!other.replayed && matches!(other.changed, Changed::Yes(_)));
        let desk2 = TicketChange {
            desk: DeskId(2),
            ..keyed("slack:V1")
        };
        assert!(!store.change_ticket(desk2).await.unwrap().replayed);
        let notes = count(&store, "SELECT count(*) FROM events WHERE kind = 'note'").await;
        assert_eq!(notes, 3);
        let keys = count(&store, "SELECT count(*) FROM request_keys").await;
        assert_eq!(keys, 3);
    }

    #[tokio::test]
    async fn the_batch_reads_each_ticket_as_the_view_has_it_whatever_its_text() {
        let (_dir, store) = store().await;
        // Text the head's JSON must carry as it is: quotes, a backslash, a newline, non-ASCII.
        let description = "say \"hi\" \\ then\nline two — ☕";
        execute(
            &store,
            &format!(
                "UPDATE tickets SET description = '{}', individual_id = 7, assignee = 'slack:U5'
                  WHERE desk_id = 1 AND no = 1;
                 INSERT INTO members (desk_id, user_ref, name, role, created_at)
                 VALUES (1, 'slack:U5', 'Ann \"the fixer\"', 'agent', 0);",
                description.replace('\'', "''")
            ),
        )
        .await;
        let ((), high, other) = tokio::join!(
            store.one_batch(2),
            store.change_ticket(request(1, Action::SetPriority(Priority::High), "h", None)),
            // A ticket not on the desk fails alone.
            store.change_ticket(request(99, Action::SetPriority(Priority::High), "x", None))
        );
        let high = high.unwrap();
        let Changed::Yes(t) = &high.changed else {
            panic!("not changed: {high:?}")
        };
        assert_eq!(t.description, description);
        assert_eq!(t.assignee, Some(user("U5")));
        assert_eq!(high.assignee_name.as_deref(), Some("Ann \"the fixer\""));
        let contact = t.contact.as_ref().and_then(|c| c.individual.clone());
        assert_eq!(contact, Some((7, "Jane <jane@acme.test>".to_owned())));
        assert!(
            matches!(other, Err(StoreError::NoTicket(TicketNo(99)))),
            "{other:?}"
        );
    }

    #[test]
    fn a_destinations_refreshes_go_at_once_then_together_once_a_second() {
        let mut pace = Pace::default();
        let d1 = "ticket:1:slack:T1";
        let join = |at, key: &str| Paced::Join(at, key.to_owned());
        assert_eq!(
            pace.due(d1, 10_000, "k1", Some("a")),
            Paced::Now,
            "the first at once"
        );
        // Those within the second after it wait for its end, together: the first as a row,
        // the rest joined to it.
        assert_eq!(pace.due(d1, 10_200, "k2", Some("b")), Paced::At(11_000));
        assert_eq!(pace.due(d1, 10_999, "k3", None), join(11_000, "k2"));
        // Another destination is paced on its own.
        assert_eq!(
            pace.due("ticket:2:slack:T1", 10_500, "k4", None),
            Paced::Now
        );
        // Queued while the waiting refresh is due but within its second: the next second.
        assert_eq!(pace.due(d1, 11_000, "k5", None), Paced::At(12_000));
        assert_eq!(pace.due(d1, 11_400, "k6", None), join(12_000, "k5"));
        // Another row of the destination (a card post) comes between: no joining across it.
        pace.interrupt(d1);
        assert_eq!(pace.due(d1, 11_500, "k7", None), Paced::At(12_000));
        assert_eq!(pace.due(d1, 11_600, "k8", None), join(12_000, "k7"));
        // A second after the last one was due: at once again.
        assert_eq!(pace.due(d1, 13_000, "k9", None), Paced::Now);
        assert_eq!(pace.due(d1, 13_001, "k10", None), Paced::At(14_000));
    }

    #[test]
    fn a_waiting_refresh_is_joined_only_within_what_one_delivery_says() {
        let mut pace = Pace::default();
        let d = "ticket:1:slack:T1";
        pace.due(d, 0, "k0", None);
        let long = "x".repeat(MERGED_NOTE_CHARS / 2);
        assert_eq!(pace.due(d, 1, "k1", Some(&long)), Paced::At(PACE_MS));
        // The two notes and the line between them would pass the bound.
        assert_eq!(pace.due(d, 2, "k2", Some(&long)), Paced::At(PACE_MS));
        assert_eq!(
            pace.due(d, 3, "k3", Some(&long[1..])),
            Paced::Join(PACE_MS, "k2".into())
        );
        // Refreshes without a note count as rows only, up to what one delivery carries.
        for i in 4..MERGE_MAX + 1 {
            assert_eq!(
                pace.due(d, 4, &format!("k{i}"), None),
                Paced::Join(PACE_MS, "k2".into())
            );
        }
        assert_eq!(pace.due(d, 5, "last", None), Paced::At(PACE_MS));
    }

    #[test]
    fn the_pace_forgets_destinations_whose_second_is_over() {
        let mut pace = Pace::default();
        let due = |pace: &mut Pace, d: &str, at| pace.due(d, at, "k", None);
        for i in 0..PACE_KEPT {
            due(&mut pace, &format!("ticket:{i}:slack:T1"), 0);
        }
        assert_eq!(pace.scheduled.len(), PACE_KEPT);
        // One more, a second later: those over are dropped before it is kept.
        assert_eq!(due(&mut pace, "ticket:x:slack:T1", PACE_MS), Paced::Now);
        assert_eq!(pace.scheduled.len(), 1);
        // Still kept while their second lasts, and not walked again until the map doubles.
        for i in 0..PACE_KEPT {
            due(&mut pace, &format!("ticket:{i}:slack:T1"), PACE_MS + 1);
        }
        assert_eq!(pace.scheduled.len(), PACE_KEPT + 1);
        // That pass kept them all: the next waits until the map has doubled.
        assert_eq!(pace.prune_at, 2 * PACE_KEPT);
        for i in PACE_KEPT..2 * PACE_KEPT - 1 {
            due(&mut pace, &format!("ticket:{i}:slack:T1"), 3 * PACE_MS);
        }
        assert_eq!(pace.scheduled.len(), 2 * PACE_KEPT);
        // Then it forgets all whose second is over, here all but the last few.
        due(&mut pace, "ticket:y:slack:T1", 3 * PACE_MS);
        assert_eq!(pace.scheduled.len(), PACE_KEPT);
        assert_eq!(pace.prune_at, 2 * (PACE_KEPT - 1));
    }

    /// The card refreshes in the outbox, in order: `(due - queued, note, joined notes)`.
    async fn refreshes(store: &SqliteStore) -> Vec<(i64, String, Option<String>)> {
        rows(
            store,
            "SELECT next_attempt_at - created_at, payload ->> 'note',
                    (SELECT group_concat(j.value ->> 'note', '|') FROM json_each(joined) AS j)
               FROM outbox WHERE payload ->> 'kind' = 'update_cards' ORDER BY id",
        )
        .await
    }

    #[tokio::test]
    async fn a_tickets_card_refreshes_are_queued_at_once_then_for_the_end_of_the_second() {
        let (_dir, store) = store().await;
        let t0 = Utc::now();
        let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
        let change_at = |ms: i64, action: Action, note: &str| TicketChange {
            now: at(ms),
            ..request(1, action, note, None)
        };
        let changes = [
            (0, Action::Note("one".into()), "started"),
            (300, Action::Note("two".into()), "completed"),
            (600, Action::Note("three".into()), "reopened"),
            (700, Action::Note("four".into()), "noted"),
            (2_500, Action::Note("five".into()), "started again"),
        ];
        for (ms, action, note) in changes {
            store
                .change_ticket(change_at(ms, action, note))
                .await
                .unwrap();
        }
        // Ticket 2's refresh is not held back by ticket 1's.
        store
            .change_ticket(TicketChange {
                now: at(300),
                ..request(2, Action::Note("six".into()), "other", None)
            })
            .await
            .unwrap();
        let s = |n: &str| n.to_owned();
        assert_eq!(
            refreshes(&store).await,
            [
                (0, s("started"), None),
                (700, s("completed"), Some(s("reopened|noted"))),
                (0, s("started again"), None),
                (0, s("other"), None),
            ]
        );
    }

    #[tokio::test]
    async fn a_refresh_whose_waiting_row_cannot_be_joined_is_written_in_its_place() {
        let (_dir, store) = store().await;
        let t0 = Utc::now();
        let change_at = |ms: i64, note: &str| TicketChange {
            now: t0 + chrono::Duration::milliseconds(ms),
            ..request(1, Action::Note(note.into()), note, None)
        };
        store.change_ticket(change_at(0, "a")).await.unwrap();
        store.change_ticket(change_at(100, "b")).await.unwrap();
        // The waiting row was tried (and failed): what follows is a row of its own.
        execute(
            &store,
            "UPDATE outbox SET attempts = 1 WHERE payload ->> 'note' = 'b'",
        )
        .await;
        store.change_ticket(change_at(200, "c")).await.unwrap();
        // The next second's: joined while it is the destination's last pending row, and not
        // once another row is queued after it.
        store.change_ticket(change_at(1_100, "d")).await.unwrap();
        store.change_ticket(change_at(1_200, "e")).await.unwrap();
        execute(&store, "INSERT INTO outbox (desk_id, destination, idempotency_key, payload, next_attempt_at, created_at)
             SELECT desk_id, destination, 'other', payload, 0, 0 FROM outbox WHERE payload ->> 'note' = 'a'")
        .await;
        store.change_ticket(change_at(1_300, "f")).await.unwrap();
        // The second after: delivered (and settled) before the refresh is written.
        store.change_ticket(change_at(2_100, "g")).await.unwrap();
        execute(&store, "UPDATE outbox SET state = 'sent' WHERE idempotency_key = 'other' OR payload ->> 'note' = 'g'").await;
        store.change_ticket(change_at(2_200, "h")).await.unwrap();
        let notes: Vec<(String, Option<String>)> = refreshes(&store)
            .await
            .into_iter()
            .map(|(_, note, joined)| (note, joined))
            .collect();
        let s = |n: &str| n.to_owned();
        assert_eq!(
            notes,
            [
                (s("a"), None),
                (s("b"), None),
                (s("c"), None),
                (s("d"), Some(s("e"))),
                (s("a"), None),
                (s("f"), None),
                (s("g"), None),
                (s("h"), None),
            ]
        );
    }

    async fn change(store: &SqliteStore, no: i64, action: Action, note: &str) -> Result<Changed> {
        let c = store.change_ticket(request(no, action, note, None)).await?;
        assert!(c.sla.is_none());
        Ok(c.changed)
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

    async fn rows<T>(store: &SqliteStore, sql: &'static str) -> Vec<T>
    where
        T: for<'r> sqlx::FromRow<'r, SqliteRow> + Send + Unpin,
    {
        sqlx::query_as(sql)
            .fetch_all(&mut *store.read().await.unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_batch_applies_changes_in_order_and_keys_each_by_its_own_last_event() {
        let (_dir, store) = store().await;
        // Sent together: one batch.
        let start = Action::Move(Status::InProgress, None);
        let ((), a, b, c, d, e) = tokio::join!(
            store.one_batch(5),
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
        let events: Vec<(i64, String)> = rows(
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
        let last = count(&store, "SELECT max(id) FROM events").await;
        assert_eq!(last, events[1].0 + 1);
    }

    #[tokio::test]
    async fn the_clocks_read_the_whole_timeline_in_order_with_the_change_last() {
        let (_dir, store) = store().await;
        for action in [
            Action::SetPriority(Priority::High),
            Action::Note("x".into()),
        ] {
            change(&store, 1, action, "n").await.unwrap();
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let waiting = Action::Move(Status::Waiting, None);
        let c = store
            .change_ticket(request(1, waiting, "w", Some(recording(&seen))))
            .await
            .unwrap();
        assert_eq!(c.sla, Some(vec![]));
        let (_, timeline) = store
            .ticket_with_timeline(DeskId(1), TicketNo(1))
            .await
            .unwrap()
            .unwrap();
        // Its status and priority changes (the note and the creation are not read), then the
        // change's own event.
        let want: Vec<Step> = timeline.iter().filter_map(Step::of_event).collect();
        assert_eq!(want.len(), 2);
        assert_eq!(*seen.lock().unwrap(), want);
    }

    /// A plan that records the steps it is given.
    fn recording(seen: &Arc<Mutex<Vec<Step>>>) -> SlaPlan {
        let seen = seen.clone();
        Box::new(move |t: &Ticket, steps: &[Step], _: &mut Option<Memo>| {
            *seen.lock().unwrap() = steps.to_vec();
            let state = SlaState {
                due: t.sla,
                first_level: Level::Ok,
                resolution_level: Level::Ok,
                check_at: None,
            };
            (state, Vec::new())
        })
    }

    #[tokio::test]
    async fn remembered_steps_and_those_written_since_by_others_make_the_whole_timeline() {
        let (_dir, store) = store().await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let high = Action::SetPriority(Priority::High);
        store
            .change_ticket(request(1, high, "h", Some(recording(&seen))))
            .await
            .unwrap();
        assert_eq!(seen.lock().unwrap().len(), 1);
        // Another writer (an email append, another process) adds a status change. And, to
        // show that the priority change is not read again but remembered, its stored row is
        // altered (events are never altered; this one is only to tell the two apart).
        let mut w = store.write().await.unwrap();
        sqlx::query(
            "INSERT INTO events (desk_id, ticket_id, actor, kind, old_value, new_value, at)
             VALUES (1, 1, 'cli:x', 'status', 'open', 'waiting', 5);
             UPDATE events SET new_value = 'low' WHERE kind = 'priority';",
        )
        .execute(&mut *w)
        .await
        .unwrap();
        w.commit().await.unwrap();
        let urgent = Action::SetPriority(Priority::Urgent);
        store
            .change_ticket(request(1, urgent, "u", Some(recording(&seen))))
            .await
            .unwrap();
        let (_, timeline) = store
            .ticket_with_timeline(DeskId(1), TicketNo(1))
            .await
            .unwrap()
            .unwrap();
        let mut want: Vec<Step> = timeline.iter().filter_map(Step::of_event).collect();
        assert_eq!(want.len(), 3);
        // The remembered priority change, as it was written.
        let Step::Priority { to, .. } = &mut want[0] else {
            panic!("not the priority change: {want:?}")
        };
        assert_eq!(*to, Priority::Low);
        *to = Priority::High;
        assert_eq!(*seen.lock().unwrap(), want);
        // Another ticket gets its own steps (none), not ticket 1's.
        store
            .change_ticket(request(
                2,
                Action::Note("n".into()),
                "n",
                Some(recording(&seen)),
            ))
            .await
            .unwrap();
        assert!(seen.lock().unwrap().is_empty());
    }

    /// A plan that computes the clocks as the desk's does, and records whether it was given
    /// the memo of the ticket's last computation.
    fn memoizing(given: &Arc<Mutex<Vec<bool>>>) -> SlaPlan {
        let given = given.clone();
        Box::new(move |t: &Ticket, steps: &[Step], memo: &mut Option<Memo>| {
            given.lock().unwrap().push(memo.is_some());
            let policy = crate::core::sla::Policy::default();
            let calendar = Arc::new(crate::core::sla::Calendar::always());
            let clocks =
                crate::core::sla::clocks_of(&policy, &calendar, t, steps, memo, t.updated_at);
            let state = SlaState {
                due: SlaDue::of(&clocks),
                first_level: clocks.first_response.level,
                resolution_level: clocks.resolution.level,
                check_at: None,
            };
            (state, Vec::new())
        })
    }

    #[tokio::test]
    async fn the_clocks_memo_is_kept_with_the_steps_for_the_tickets_next_change() {
        let (_dir, store) = store().await;
        let given = Arc::new(Mutex::new(Vec::new()));
        for (no, action) in [
            (1, Action::SetPriority(Priority::High)),
            (1, Action::SetPriority(Priority::Urgent)),
            (2, Action::SetPriority(Priority::High)),
            (1, Action::SetPriority(Priority::Low)),
        ] {
            store
                .change_ticket(request(no, action, "p", Some(memoizing(&given))))
                .await
                .unwrap();
        }
        // Ticket 1's first change finds none; its next ones find the last one's. Ticket 2 gets
        // none of ticket 1's.
        assert_eq!(*given.lock().unwrap(), [false, true, false, true]);
    }

    #[test]
    fn the_step_cache_keeps_the_latest_state_and_forgets_a_quarter_when_full() {
        let at = chrono::DateTime::from_timestamp(0, 0).unwrap();
        let step = Step::Status {
            to: Status::Open,
            at,
        };
        let key = (DeskId(1), TicketNo(1));
        let entry = |last_event, n| Cached {
            ticket: 1,
            last_event,
            steps: vec![step; n],
            memo: None,
        };
        // What the bound in bytes rests on.
        assert!(std::mem::size_of::<Step>() <= 16);
        let mut cache = StepCache::default();
        cache.put(key, entry(5, 2));
        cache.put(key, entry(4, 9));
        assert_eq!(cache.steps, 2 + 4);
        cache.put(key, entry(6, 3));
        assert_eq!(cache.steps, 3 + 4);
        // The room a vector holds counts, used or not.
        let mut roomy = entry(7, 1);
        roomy.steps.reserve_exact(99);
        cache.put(key, roomy);
        assert_eq!(cache.steps, 100 + 4);
        // A timeline that would take a quarter of the room is not kept.
        cache.put((DeskId(1), TicketNo(9)), entry(1, CACHED_STEPS / 4));
        assert!(cache.take((DeskId(1), TicketNo(9))).is_none());
        // Full: entries are forgotten until a quarter of the room is free, not all of them.
        let each = CACHED_STEPS / 100 - 4;
        for no in 2..=120 {
            cache.put((DeskId(1), TicketNo(no)), entry(1, each));
        }
        assert!(cache.steps <= CACHED_STEPS);
        let kept = cache.entries.len();
        assert!((75..=100).contains(&kept), "{kept} kept");
        assert!(
            cache.steps >= CACHED_STEPS / 2,
            "{} steps kept",
            cache.steps
        );
        let counted: usize = cache.entries.values().map(cost).sum();
        assert_eq!(counted, cache.steps);
        let last = cache.take((DeskId(1), TicketNo(120))).unwrap();
        assert_eq!(last.steps.len(), each);
    }

    #[tokio::test]
    async fn a_batch_that_panics_fails_its_requests_and_the_writer_goes_on() {
        let (_dir, store) = store().await;
        let mut boom = request(1, Action::Note("boom".into()), "b", None);
        boom.out = Box::new(|_: &Ticket| panic!("a closure of the batch panicked"));
        assert!(store.change_ticket(boom).await.is_err());
        // Nothing of it was written, and the next change goes through.
        let note = Action::Note("after".into());
        assert!(matches!(
            change(&store, 1, note, "n").await.unwrap(),
            Changed::Yes(_)
        ));
        let notes = count(&store, "SELECT count(*) FROM events WHERE kind = 'note'").await;
        assert_eq!(notes, 1);
    }

    #[tokio::test]
    async fn a_linked_contact_comes_back_with_the_label_the_view_builds() {
        let (_dir, store) = store().await;
        let link = ContactLink {
            individual: Some((7, "given".into())),
            organization: None,
        };
        let ((), linked, noted) = tokio::join!(
            store.one_batch(2),
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

    /// Clocks that say the first response is breached, with its alert (a direct message),
    /// from a timeline that must hold `steps` events.
    fn breached(steps: usize) -> SlaPlan {
        Box::new(move |t: &Ticket, timeline: &[Step], _: &mut Option<Memo>| {
            assert_eq!(
                timeline.len(),
                steps,
                "the stored events and the change's own"
            );
            let due = SlaDue {
                first_due: Some(t.created_at),
                resolution_due: None,
                paused: false,
            };
            let state = SlaState {
                due,
                first_level: Level::Breached,
                resolution_level: Level::Met,
                check_at: None,
            };
            (state, vec![breach_alert(t)])
        })
    }

    /// A first-response breach alert: a direct message saying so.
    fn breach_alert(t: &Ticket) -> SlaAlert {
        SlaAlert {
            target: "first_response",
            level: "breached",
            out: vec![Outgoing::DirectMessage {
                surface: SurfaceRef::new(Platform::Slack, "T1"),
                user: "slack:U2".parse().unwrap(),
                text: format!("{} breached", t.no),
                ticket: Some(t.id),
            }],
        }
    }

    #[tokio::test]
    async fn a_change_stores_its_clocks_and_queues_an_alert_once() {
        let (_dir, store) = store().await;
        // The clocks read the priority change (the creation is the ticket's own field).
        let high = Action::SetPriority(Priority::High);
        let c = store
            .change_ticket(request(1, high, "high", Some(breached(1))))
            .await
            .unwrap();
        assert_eq!(c.sla, Some(vec!["breached"]));
        let Changed::Yes(t) = c.changed else {
            panic!("nothing changed")
        };
        assert!(t.sla.first_due.is_some());
        let stored: Vec<(String, String)> =
            sqlx::query_as("SELECT first_level, resolution_level FROM tickets WHERE id = 1")
                .fetch_all(&mut *store.read().await.unwrap())
                .await
                .unwrap();
        assert_eq!(stored, [("breached".into(), "met".into())]);
        // The same alert is not queued again; a note is not a step.
        let again = Action::Note("second".into());
        let c = store
            .change_ticket(request(1, again, "noted", Some(breached(1))))
            .await
            .unwrap();
        assert_eq!(c.sla, Some(vec![]));
        assert_eq!(count(&store, "SELECT count(*) FROM sla_alerts").await, 1);
        let messages = count(
            &store,
            "SELECT count(*) FROM outbox WHERE destination LIKE 'dm:%' OR payload LIKE '%breached%'",
        )
        .await;
        assert_eq!(messages, 1);
    }

    /// Clocks whose first response stands at `level`, with the alert that level brings.
    fn first_at(level: Level) -> SlaPlan {
        Box::new(move |t: &Ticket, _: &[Step], _: &mut Option<Memo>| {
            let state = SlaState {
                due: SlaDue {
                    first_due: Some(t.created_at),
                    resolution_due: None,
                    paused: false,
                },
                first_level: level,
                resolution_level: Level::Ok,
                check_at: None,
            };
            let alerts = (level == Level::Breached).then(|| breach_alert(t));
            (state, alerts.into_iter().collect())
        })
    }

    #[tokio::test]
    async fn a_clock_that_falls_back_forgets_its_alert_and_a_new_breach_alerts_again() {
        let (_dir, store) = store().await;
        let prio = |p| Action::SetPriority(p);
        let alerts = |store| count(store, "SELECT count(*) FROM sla_alerts");
        let sent = |store| {
            count(
                store,
                "SELECT count(*) FROM outbox WHERE payload LIKE '%breached%'",
            )
        };
        let breached = Some(first_at(Level::Breached));
        let c = store
            .change_ticket(request(1, prio(Priority::High), "a", breached))
            .await
            .unwrap();
        assert_eq!(c.sla, Some(vec!["breached"]));
        assert_eq!(alerts(&store).await, 1);
        // A lower priority moves the deadline away: the breach no longer stands.
        let ok = Some(first_at(Level::Ok));
        let c = store
            .change_ticket(request(1, prio(Priority::Low), "b", ok))
            .await
            .unwrap();
        assert_eq!(c.sla, Some(vec![]));
        assert_eq!(alerts(&store).await, 0);
        // Breached again: alerted again, under a key of its own.
        let breached = Some(first_at(Level::Breached));
        let c = store
            .change_ticket(request(1, prio(Priority::Urgent), "c", breached))
            .await
            .unwrap();
        assert_eq!(c.sla, Some(vec!["breached"]));
        assert_eq!(alerts(&store).await, 1);
        assert_eq!(sent(&store).await, 2);
        // Within one batch: alerted (the message goes) and then withdrawn (the record goes).
        let ((), a, b) = tokio::join!(
            store.one_batch(2),
            store.change_ticket(request(
                2,
                prio(Priority::High),
                "d",
                Some(first_at(Level::Breached))
            )),
            store.change_ticket(request(
                2,
                prio(Priority::Low),
                "e",
                Some(first_at(Level::AtRisk))
            )),
        );
        assert_eq!(a.unwrap().sla, Some(vec!["breached"]));
        assert_eq!(b.unwrap().sla, Some(vec![]));
        let kept: Vec<(i64, String)> = rows(
            &store,
            "SELECT ticket_id, level FROM sla_alerts ORDER BY ticket_id",
        )
        .await;
        assert_eq!(kept, [(1, "breached".to_owned())]);
        assert_eq!(sent(&store).await, 3);
    }

    #[tokio::test]
    async fn a_second_change_in_a_batch_reads_the_first_ones_events_and_its_clocks_are_stored() {
        let (_dir, store) = store().await;
        // Each priority change is a step. One batch.
        let prio = |p| Action::SetPriority(p);
        let ((), a, b, c) = tokio::join!(
            store.one_batch(3),
            store.change_ticket(request(2, prio(Priority::High), "b", Some(breached(1)))),
            store.change_ticket(request(2, prio(Priority::Low), "c", None)),
            store.change_ticket(request(2, prio(Priority::Urgent), "d", Some(breached(3)))),
        );
        // The alert is queued once, by the first; the third finds it queued.
        assert_eq!(a.unwrap().sla, Some(vec!["breached"]));
        assert!(b.unwrap().sla.is_none());
        assert_eq!(c.unwrap().sla, Some(vec![]));
        let levels: Vec<(i64, String)> = rows(
            &store,
            "SELECT no, coalesce(first_level, 'none') FROM tickets WHERE desk_id = 1 ORDER BY no",
        )
        .await;
        assert_ne!(levels[0].1, "breached");
        assert_eq!(levels[1].1, "breached");
        // A last change without clocks leaves the stored ones to the caller.
        let ((), d, e) = tokio::join!(
            store.one_batch(2),
            store.change_ticket(request(1, prio(Priority::High), "e", Some(breached(1)))),
            store.change_ticket(request(1, Action::Note("f".into()), "f", None)),
        );
        assert!(d.unwrap().sla.is_some() && e.unwrap().sla.is_none());
        let levels: Vec<(i64, String)> = rows(
            &store,
            "SELECT no, coalesce(first_level, 'none') FROM tickets WHERE desk_id = 1 ORDER BY no",
        )
        .await;
        assert_ne!(levels[0].1, "breached");
    }
}
