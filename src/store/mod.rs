//! Storage behind traits, with a SQLite implementation in [`sqlite`].
//!
//! **Every query takes a desk.** No method reads or writes a ticket, contact or event without
//! the desk it belongs to, and the SQLite implementation filters every statement on `desk_id`.
//! The one exception is the outbox worker's scan of due messages ([`OutboxStore::outbox_due`]):
//! it is the only reader across desks, and every row it returns carries its desk.
//!
//! **One change, one transaction.** A ticket change, its timeline events and the outbox rows it
//! causes are written in a single transaction: either all of them are durable or none is.

pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::core::contact::{Email, HistoryLine, Individual, Organization};
use crate::core::outgoing::Outgoing;
use crate::core::people::{Role, Surface, SurfaceRef, UserRef};
use crate::core::ticket::{
    Action, DeskId, Event, Priority, Source, Ticket, TicketError, TicketId, TicketNo,
};

pub use sqlite::SqliteStore;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("ticket {0} does not exist on this desk")]
    NoTicket(TicketNo),
    #[error(transparent)]
    Refused(#[from] TicketError),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A database error shared by the writes of one batch (see `sqlite/creates.rs`).
    #[error("database error: {0}")]
    Batch(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists; choose a new file")]
    Exists(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What a change must say: the outbox rows for the ticket as it is after the change.
pub type OutFn<'a> = dyn for<'t> Fn(&'t Ticket) -> Vec<Outgoing> + Send + Sync + 'a;

/// What a create or a change must say, owned: the store may write it in a batch with others,
/// away from the caller's task.
pub type OwnedOut = Box<OutFn<'static>>;

/// A member's standing on a desk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    pub role: Role,
    /// True while the desk has no agents (small-team mode).
    pub small_team: bool,
}

/// A ticket with the names a view needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRecord {
    pub ticket: Ticket,
    pub assignee_name: Option<String>,
}

/// A ticket about to be created.
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub description: String,
    pub priority: Priority,
    pub reporter: UserRef,
    pub assignee: Option<UserRef>,
    pub individual: Option<i64>,
    pub source: Source,
    /// The new ticket's SLA clocks, stored with it.
    pub sla: Option<SlaState>,
}

/// The result of a create.
#[derive(Debug, Clone)]
pub struct Created {
    pub ticket: Ticket,
    /// True when the idempotency key was seen before: this is the earlier request's ticket.
    pub replayed: bool,
}

/// The result of a change.
#[derive(Debug, Clone)]
pub enum Changed {
    /// The action changed the ticket; events and outbox rows were written.
    Yes(Ticket),
    /// The action changed nothing (it was already so); nothing was written.
    No(Ticket),
}

/// A change of a ticket, as the store takes it.
pub struct TicketChange {
    pub desk: DeskId,
    pub no: TicketNo,
    pub actor: UserRef,
    pub action: Action,
    /// The outbox rows for the ticket as it is after the change.
    pub out: OwnedOut,
    /// Computes the ticket's SLA clocks after the change, inside the change's write; `None`
    /// leaves them to the caller.
    pub sla: Option<SlaPlan>,
    pub now: DateTime<Utc>,
    /// A key unique to the request (a form's id): a change whose key the desk has seen before
    /// is not made again ([`ChangeOutcome::replayed`]). Recorded with the change.
    pub key: Option<String>,
}

/// The clocks and the alerts due, from the ticket as changed and its whole timeline as the
/// clocks read it (the stored events, then the change's own), read in the change's write. The
/// memo is what the last computation for the ticket left ([`crate::core::sla::clocks_of`]), or
/// `None`; the plan leaves its own there.
pub type SlaPlan = Box<
    dyn FnOnce(
            &Ticket,
            &[crate::core::sla::Step],
            &mut Option<crate::core::sla::Memo>,
        ) -> (SlaState, Vec<SlaAlert>)
        + Send,
>;

/// The result of [`TicketStore::change_ticket`].
#[derive(Debug, Clone)]
pub struct ChangeOutcome {
    pub changed: Changed,
    /// `Some` when the SLA clocks were stored with the change: the alert levels it queued
    /// (an alert queued before for the ticket is not queued again). `None`: refresh them.
    pub sla: Option<Vec<&'static str>>,
    /// The name of the ticket's assignee, when it was the assignee before the change too
    /// (read with the ticket); otherwise it is the caller's to look up.
    pub assignee_name: Option<String>,
    /// The change's key was seen before: nothing was written, and `changed` is the ticket as
    /// it is now.
    pub replayed: bool,
}

/// Which tickets a list shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListQuery {
    /// Only open, in-progress and waiting tickets.
    pub active_only: bool,
    pub status: Option<crate::core::ticket::Status>,
    pub priority: Option<Priority>,
    pub assignee: Option<UserRef>,
    pub unassigned: bool,
}

/// Where a ticket's card shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardMessage {
    pub ticket: TicketId,
    pub surface: SurfaceRef,
    pub channel: String,
    pub message_id: String,
}

/// What became of one delivery attempt of outbox row `id`.
#[derive(Debug, Clone)]
pub struct Settled {
    pub id: i64,
    pub desk: DeskId,
    pub outcome: Outcome,
    /// How many of the refreshes joined to the row ([`Joined`]) the delivery carried: any
    /// joined after the row was read are moved to a row of their own, so they are neither lost
    /// with the row's settling nor said twice. `None`: the row was not read with its joins.
    pub joins: Option<usize>,
}

/// How a delivery attempt ended, as recorded.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Delivered; the card message it posted, if it posted one.
    Sent(Option<CardMessage>),
    /// Try again at `at`; `progress` is what the attempts so far finished of a card refresh.
    Retry {
        attempts: i64,
        at: DateTime<Utc>,
        error: String,
        progress: Option<Progress>,
    },
    /// Given up on (dead-lettered).
    Dead { attempts: i64, error: String },
    /// Carried by a delivery that is to be tried again: the row stays as it is (its own
    /// delivery carries it again), only what was joined to it since it was read is moved.
    Carried,
}

/// How far the attempts at a card refresh got before one failed: the copies they finished (edited
/// and told the note; as `channel/message id`), and the last queued row they carried (`through`). Its
/// retry carries exactly those rows again, so it says the same note, and skips those copies:
/// no thread hears a note twice.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    pub through: i64,
    pub done: Vec<String>,
}

/// One outbox row due for delivery.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: i64,
    pub desk: DeskId,
    pub destination: String,
    pub idempotency_key: String,
    pub message: Outgoing,
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    /// The message's surface had revoked the app's token when the row was read.
    pub surface_revoked: bool,
    /// Later rows of the same destination that this delivery carries too: card refreshes of
    /// the same ticket queued behind this one, their notes joined into `message`'s (see
    /// [`OutboxItem::absorb`]). They are settled with this row when it is sent or dead.
    pub merged: Vec<i64>,
    /// What earlier attempts finished, when one failed part-way.
    pub progress: Option<Progress>,
    /// How many refreshes joined to each row carried (its own, then `merged`) were read with
    /// it; what the delivery says of them is in `message`.
    pub joins: Vec<(i64, usize)>,
}

/// A card refresh that joined a refresh waiting for its second (it has no row of its own): its
/// note and the card its request's answer replaced, in the `joined` list of the row it joined.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Joined {
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub answered: Option<String>,
}

/// A pending outbox row queued behind a delivery's own, as [`OutboxItem::absorb`] reads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Queued {
    pub id: i64,
    /// The message's kind, as [`Outgoing`] tags it (`update_cards`, `post_card`, …).
    pub kind: String,
    pub note: Option<String>,
    #[serde(default)]
    pub answered: Option<String>,
    /// The refreshes joined to it, in order.
    #[serde(default)]
    pub joined: Vec<Joined>,
    /// Not due yet: a refresh the pace holds to the end of its second, which a delivery does
    /// not carry early (later refreshes of that second join it).
    #[serde(default)]
    pub held: bool,
}

/// The most rows one delivery carries: its own and the card refreshes it absorbs.
pub const MERGE_MAX: usize = 50;

/// The longest joined note a delivery of merged card refreshes says: half of Discord's
/// 2,000-character content, so escaping (at most a backslash a character) never cuts it.
pub const MERGED_NOTE_CHARS: usize = 1_000;

impl OutboxItem {
    /// Takes in the card refreshes joined to this row (`own`, in order), then those queued
    /// behind it for the same ticket and surface (`later`: the destination's next pending rows,
    /// each whole with its own joined refreshes), and records how many joined refreshes of
    /// each row it read ([`OutboxItem::joins`]). Cards are rendered from the ticket as it
    /// is at delivery time, so one edit shows what every queued refresh would have shown; their
    /// notes are said in one thread message, a line each, in the order they were written.
    /// Stops at the first row that is not a card refresh (a card post keeps its place in the
    /// order) or is not due yet ([`Queued::held`]), at [`MERGE_MAX`] rows, where the joined
    /// note would pass [`MERGED_NOTE_CHARS`], or past the rows an earlier, part-way attempt
    /// carried ([`Progress::through`]). Only a card refresh absorbs anything. The card a
    /// request's answer replaced is left alone only when that request's row is the last one
    /// carried (an answer shows its own change, not those after it).
    pub fn absorb(&mut self, own: Vec<Joined>, mut later: Vec<Queued>) {
        self.joins = vec![(self.id, own.len())];
        let Outgoing::UpdateCards { note, answered, .. } = &mut self.message else {
            return;
        };
        // The refreshes joined to this row are part of it (the pace kept them within the
        // bounds below when it joined them).
        let mut chars = note.as_deref().map_or(0, |n| n.chars().count());
        for j in own {
            chars += say_too(note, j.note.as_deref(), chars);
            *answered = j.answered;
        }
        later.sort_by_key(|q| q.id);
        // A retry of a refresh that got part-way carries what it carried then, and no more.
        let through = self.progress.as_ref().map_or(i64::MAX, |p| p.through);
        for q in later {
            if q.kind != "update_cards"
                || q.held
                || q.id <= self.id
                || q.id > through
                || self.merged.len() + 1 >= MERGE_MAX
            {
                break;
            }
            let notes = || {
                std::iter::once(q.note.as_deref())
                    .chain(q.joined.iter().map(|j| j.note.as_deref()))
                    .flatten()
                    .filter(|n| !n.is_empty())
            };
            let more: usize = notes().map(|n| n.chars().count() + 1).sum();
            if chars + more > MERGED_NOTE_CHARS + usize::from(chars == 0 && more > 0) {
                break;
            }
            for n in notes() {
                chars += say_too(note, Some(n), chars);
            }
            self.merged.push(q.id);
            self.joins.push((q.id, q.joined.len()));
            *answered = q.joined.last().map_or(q.answered, |j| j.answered.clone());
        }
    }

    /// The progress to record when this attempt failed after finishing the copies `done`: the
    /// earlier attempts' and these, with the rows this one carried. `None` while nothing was.
    pub fn progress_after(&self, done: Vec<String>) -> Option<Progress> {
        match &self.progress {
            None if done.is_empty() => None,
            before => {
                let mut all = before.as_ref().map(|p| p.done.clone()).unwrap_or_default();
                all.extend(done);
                let carried = self.merged.iter().copied().fold(self.id, i64::max);
                let through = before.as_ref().map_or(carried, |p| p.through.max(carried));
                Some(Progress { through, done: all })
            }
        }
    }
}

/// Adds `add` (if any) to a delivery's joined `note` (`chars` long so far), a line of its own;
/// returns the characters it added.
fn say_too(note: &mut Option<String>, add: Option<&str>, chars: usize) -> usize {
    let Some(add) = add.filter(|a| !a.is_empty()) else {
        return 0;
    };
    match note {
        Some(n) if !n.is_empty() => {
            n.push('\n');
            n.push_str(add);
        }
        _ => *note = Some(add.to_owned()),
    }
    add.chars().count() + usize::from(chars > 0)
}

/// How the outbox is doing, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OutboxStats {
    pub pending: i64,
    pub dead: i64,
    /// Age of the oldest pending message, in seconds.
    pub oldest_age_secs: f64,
}

/// A ticket as exported, with contact and timeline.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportedTicket {
    pub ticket: Ticket,
    pub assignee_name: Option<String>,
    pub timeline: Vec<Event>,
}

/// Desks, surfaces and members.
#[async_trait]
pub trait DeskStore: Send + Sync {
    /// Checks that the database answers.
    async fn ping(&self) -> Result<()>;
    /// Finishes pending writes and closes the database.
    async fn close(&self);
    /// The desk a surface serves; a surface seen for the first time gets a new desk.
    async fn desk_for_surface(
        &self,
        surface: &SurfaceRef,
        name: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<DeskId>;
    /// The desk a surface serves, without creating one.
    async fn desk_of_surface(&self, surface: &SurfaceRef) -> Result<Option<DeskId>>;
    /// Whether a desk exists.
    async fn desk_exists(&self, desk: DeskId) -> Result<bool>;
    /// The surfaces serving a desk.
    async fn surfaces(&self, desk: DeskId) -> Result<Vec<Surface>>;
    /// Makes `channel` the surface's notification channel.
    async fn set_notify_channel(
        &self,
        desk: DeskId,
        surface: &SurfaceRef,
        channel: &str,
    ) -> Result<()>;
    /// Records a request key (an event id); false when it was seen before on this desk.
    async fn remember_request(&self, desk: DeskId, key: &str, now: DateTime<Utc>) -> Result<bool>;
    /// Whether a request key was recorded on this desk.
    async fn request_known(&self, desk: DeskId, key: &str) -> Result<bool>;
    /// One step of pruning request keys: looks at the `window` keys after `after` (in key
    /// order, every desk; `None` starts at the first) and deletes those recorded before
    /// `before`. Returns how many it deleted and the key to go on after (`None`: the end).
    async fn prune_request_keys(
        &self,
        before: DateTime<Utc>,
        after: Option<(DeskId, String)>,
        window: i64,
    ) -> Result<(u64, Option<(DeskId, String)>)>;
    /// Marks a surface's token revoked (`Some`) or usable again (`None`).
    async fn set_surface_revoked(
        &self,
        surface: &SurfaceRef,
        at: Option<DateTime<Utc>>,
    ) -> Result<()>;
    /// Records that `user` was seen on the desk and returns their standing. With `first_admin`,
    /// the desk's first member becomes its admin (Slack, where the platform tells us nothing
    /// of roles; Discord admins come from Manage Guild instead). A known `name` updates the
    /// stored one.
    async fn see_member(
        &self,
        desk: DeskId,
        user: &UserRef,
        name: Option<&str>,
        first_admin: bool,
        now: DateTime<Utc>,
    ) -> Result<Membership>;
    /// Sets a member's role, adding them if new.
    async fn set_role(
        &self,
        desk: DeskId,
        user: &UserRef,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Records a known member's name and email as the platform reports them.
    async fn set_member_profile(
        &self,
        desk: DeskId,
        user: &UserRef,
        name: Option<&str>,
        email: Option<&str>,
    ) -> Result<()>;
    /// A member's display name, when known.
    async fn member_name(&self, desk: DeskId, user: &UserRef) -> Result<Option<String>>;
}

/// Tickets and their timelines.
#[async_trait]
pub trait TicketStore: Send + Sync {
    /// Creates a ticket with the next number, its `created` event and `out` in one transaction.
    /// With a `key` seen before on this desk, returns that request's ticket and writes nothing.
    async fn create_ticket(
        &self,
        desk: DeskId,
        new: NewTicket,
        key: Option<String>,
        out: OwnedOut,
        now: DateTime<Utc>,
    ) -> Result<Created>;
    /// Applies the change's action to its ticket through [`Ticket::apply`], writing the
    /// changed ticket, its events, the outbox rows `out` returns and (see [`SlaPlan`]) its
    /// SLA clocks and alerts, in one transaction.
    async fn change_ticket(&self, change: TicketChange) -> Result<ChangeOutcome>;
    async fn ticket(&self, desk: DeskId, no: TicketNo) -> Result<Option<TicketRecord>>;
    async fn ticket_by_id(&self, desk: DeskId, id: TicketId) -> Result<Option<TicketRecord>>;
    /// The timeline, oldest first.
    async fn timeline(&self, desk: DeskId, id: TicketId) -> Result<Vec<Event>>;
    /// Ticket `no` with its timeline (what `/ticket show` reads), in one read where the store
    /// can.
    async fn ticket_with_timeline(
        &self,
        desk: DeskId,
        no: TicketNo,
    ) -> Result<Option<(TicketRecord, Vec<Event>)>> {
        let Some(record) = self.ticket(desk, no).await? else {
            return Ok(None);
        };
        let timeline = self.timeline(desk, record.ticket.id).await?;
        Ok(Some((record, timeline)))
    }
    /// Tickets matching `query`, most urgent first, then oldest; and how many match in all.
    async fn list(
        &self,
        desk: DeskId,
        query: &ListQuery,
        limit: i64,
    ) -> Result<(Vec<TicketRecord>, i64)>;
    /// Every ticket of a desk with its timeline, in number order.
    async fn export(&self, desk: DeskId) -> Result<Vec<ExportedTicket>>;
}

/// Individuals and organizations.
#[async_trait]
pub trait ContactStore: Send + Sync {
    /// Finds the individual with `email`, or creates them (joining the organization that owns
    /// the email's domain). A given `name` replaces a missing one.
    async fn upsert_individual(
        &self,
        desk: DeskId,
        email: &Email,
        name: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Individual>;
    /// Finds the organization named `name` (case-insensitively), or creates it.
    async fn upsert_organization(
        &self,
        desk: DeskId,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Organization>;
    /// Makes `individual` a member of `organization` and teaches the organization the
    /// individual's email domains that are not free-mail and not yet another's.
    async fn join_organization(
        &self,
        desk: DeskId,
        individual: i64,
        organization: i64,
    ) -> Result<()>;
    async fn find_individual(&self, desk: DeskId, email: &Email) -> Result<Option<Individual>>;
    async fn find_organization(&self, desk: DeskId, name: &str) -> Result<Option<Organization>>;
    /// The individual's tickets, newest first, and their count.
    async fn history_of_individual(
        &self,
        desk: DeskId,
        individual: i64,
        limit: i64,
    ) -> Result<(Vec<HistoryLine>, i64)>;
    /// The organization's tickets (linked directly or through its people), newest first.
    async fn history_of_organization(
        &self,
        desk: DeskId,
        organization: i64,
        limit: i64,
    ) -> Result<(Vec<HistoryLine>, i64)>;
}

/// The durable outbox and the card messages it records.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Queues messages outside a ticket change (notices); `key` makes them idempotent.
    async fn enqueue(
        &self,
        desk: DeskId,
        key: &str,
        out: &[Outgoing],
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Up to `limit` due messages, each the oldest pending one of its destination.
    async fn outbox_due(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<OutboxItem>>;
    /// When the next message that [`OutboxStore::outbox_due`] could hand out falls due: the
    /// earliest due time of a destination's oldest pending message (a message waiting behind
    /// an earlier one of its destination is not due before it), if any is pending.
    async fn outbox_next_due(&self) -> Result<Option<DateTime<Utc>>>;
    /// Records what became of delivery attempts, all in one transaction (one commit for a
    /// whole round of deliveries): delivered messages are marked sent with the cards they
    /// posted, others get another attempt or are given up on.
    async fn outbox_settle(&self, settled: &[Settled], now: DateTime<Utc>) -> Result<()>;
    async fn outbox_stats(&self, now: DateTime<Utc>) -> Result<OutboxStats>;
    /// One step of pruning delivered messages: looks at the `window` rows after id `after`
    /// and deletes those sent and written before `before` (pending and dead rows stay).
    /// Returns how many it deleted and the id to go on after; `None` once the walk has reached
    /// rows written since `before` (ids follow time) or the end.
    async fn prune_sent(
        &self,
        before: DateTime<Utc>,
        after: i64,
        window: i64,
    ) -> Result<(u64, Option<i64>)>;
    /// Where a ticket's card shows on one surface.
    async fn card_messages(
        &self,
        desk: DeskId,
        ticket: TicketId,
        surface: &SurfaceRef,
    ) -> Result<Vec<CardMessage>>;
    /// A ticket as its card shows it and where that card shows on one surface, in one read.
    async fn card_of(
        &self,
        desk: DeskId,
        ticket: TicketId,
        surface: &SurfaceRef,
    ) -> Result<Option<(TicketRecord, Vec<CardMessage>)>>;
    /// The ticket whose card is the message `message_id` in `channel`, if any.
    async fn ticket_of_card(
        &self,
        desk: DeskId,
        surface: &SurfaceRef,
        channel: &str,
        message_id: &str,
    ) -> Result<Option<TicketId>>;
}

/// Everything the desk stores.
pub trait Store:
    DeskStore + TicketStore + ContactStore + OutboxStore + InstallStore + SlaStore + MailStore + 'static
{
}

impl<T> Store for T where
    T: DeskStore
        + TicketStore
        + ContactStore
        + OutboxStore
        + InstallStore
        + SlaStore
        + MailStore
        + 'static
{
}

/// A connected (or disconnected) mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub id: i64,
    pub desk: DeskId,
    pub provider: crate::core::command::Provider,
    pub address: String,
    /// Sealed for `mailbox:<id>`.
    pub tokens: Vec<u8>,
    pub cursor: Option<String>,
    pub connected: bool,
}

/// An email appended to a ticket, as recorded for threading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailRecord {
    pub provider_id: String,
    pub message_id: Option<String>,
    pub thread_id: Option<String>,
    pub from_email: Option<String>,
    pub subject: String,
    pub web_link: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Seals a mailbox's tokens once its id is known.
pub type SealFn<'a> = dyn Fn(i64) -> Vec<u8> + Send + Sync + 'a;

/// Mailboxes, their cursors, and the email that joined tickets.
#[async_trait]
pub trait MailStore: Send + Sync {
    /// Stores a newly connected mailbox (or reconnects the same address), its tokens sealed by
    /// `seal` for its id; returns the id.
    #[allow(clippy::too_many_arguments)]
    async fn save_mailbox(
        &self,
        desk: DeskId,
        provider: crate::core::command::Provider,
        address: &str,
        by: &UserRef,
        seal: &SealFn<'_>,
        cursor: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<i64>;
    /// Every connected mailbox, across desks (the poller's read).
    async fn connected_mailboxes(&self) -> Result<Vec<Mailbox>>;
    async fn mailboxes_of(&self, desk: DeskId) -> Result<Vec<Mailbox>>;
    async fn set_mailbox_tokens(&self, id: i64, sealed: &[u8]) -> Result<()>;
    async fn set_mailbox_cursor(&self, id: i64, cursor: &str, now: DateTime<Utc>) -> Result<()>;
    /// Marks a mailbox disconnected; true when it was connected (so the desk is told once).
    async fn disconnect_mailbox(&self, id: i64, reason: &str) -> Result<bool>;
    /// Whether this provider message was already appended somewhere.
    async fn mail_seen(&self, mailbox: i64, provider_id: &str) -> Result<bool>;
    /// Records an appended email and links its thread to the ticket.
    async fn record_mail(
        &self,
        desk: DeskId,
        mailbox: i64,
        ticket: TicketId,
        mail: &MailRecord,
    ) -> Result<()>;
    /// The ticket a thread is linked to.
    async fn ticket_of_thread(&self, mailbox: i64, thread_id: &str) -> Result<Option<TicketId>>;
    /// The ticket holding any of these Message-IDs.
    async fn ticket_of_message_ids(&self, desk: DeskId, ids: &[String])
    -> Result<Option<TicketId>>;
    /// Links a thread to a ticket (a later link moves it).
    async fn link_thread(
        &self,
        desk: DeskId,
        mailbox: i64,
        thread_id: &str,
        ticket: TicketId,
    ) -> Result<()>;
    /// The emails of a ticket, oldest first.
    async fn mail_of_ticket(&self, desk: DeskId, ticket: TicketId) -> Result<Vec<MailRecord>>;
    /// Appends an email to ticket `no` exactly once, in one transaction: records it (and links
    /// its thread), applies `actions` in order (a reopen, then the email itself) with their
    /// events and `out`. `None` when this provider message was appended before.
    #[allow(clippy::too_many_arguments)]
    async fn append_mail(
        &self,
        desk: DeskId,
        mailbox: i64,
        no: TicketNo,
        actor: &UserRef,
        actions: &[Action],
        mail: &MailRecord,
        out: &OutFn<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<Changed>>;
}

/// A desk's SLA settings as stored (targets only where they differ from the defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct SlaSettings {
    pub timezone: String,
    pub business_hours: Option<String>,
    pub at_risk_ratio: f64,
    pub targets: Vec<(Priority, chrono::TimeDelta, chrono::TimeDelta)>,
    pub holidays: Vec<chrono::NaiveDate>,
}

/// A ticket's clocks as computed, to store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlaState {
    pub due: crate::core::sla::SlaDue,
    pub first_level: crate::core::sla::Level,
    pub resolution_level: crate::core::sla::Level,
    /// When the watcher must look at the ticket next.
    pub check_at: Option<DateTime<Utc>>,
}

impl SlaState {
    /// The alerts (`target`, `level`) that no longer stand with these clocks
    /// ([`crate::core::sla::Level::withdrawn`]): a store forgets them with the clocks.
    pub fn withdrawn(&self) -> impl Iterator<Item = (&'static str, &'static str)> {
        [
            ("first_response", self.first_level),
            ("resolution", self.resolution_level),
        ]
        .into_iter()
        .flat_map(|(target, level)| level.withdrawn().iter().map(move |l| (target, *l)))
    }
}

/// A warning or breach alert, with what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaAlert {
    /// `first_response` or `resolution`.
    pub target: &'static str,
    /// `at_risk` or `breached`.
    pub level: &'static str,
    pub out: Vec<Outgoing>,
}

/// A scheduled digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestSchedule {
    pub id: i64,
    pub desk: DeskId,
    pub surface: SurfaceRef,
    pub channel: String,
    /// A personal digest of this user's queue, sent as a direct message.
    pub user: Option<UserRef>,
    pub cron: String,
    pub timezone: String,
    /// The scheduled instant last handled.
    pub last_run: DateTime<Utc>,
}

/// SLA settings, clocks and alerts; digests and their schedules.
#[async_trait]
pub trait SlaStore: Send + Sync {
    async fn sla_settings(&self, desk: DeskId) -> Result<SlaSettings>;
    async fn set_sla_target(
        &self,
        desk: DeskId,
        priority: Priority,
        first_response: chrono::TimeDelta,
        resolution: chrono::TimeDelta,
    ) -> Result<()>;
    /// Sets (or with `None` clears) business hours; `timezone` becomes the desk's.
    async fn set_business_hours(
        &self,
        desk: DeskId,
        hours: Option<&str>,
        timezone: Option<&str>,
    ) -> Result<()>;
    async fn add_holiday(&self, desk: DeskId, day: chrono::NaiveDate) -> Result<()>;
    /// Tickets whose clocks may run (open, in progress, waiting).
    async fn active_ticket_ids(&self, desk: DeskId) -> Result<Vec<TicketId>>;
    /// Stores a ticket's clocks in one transaction with: `on_change` queued when a level
    /// changed from the stored one, and each alert not sent before recorded and queued.
    /// Returns the levels of the alerts recorded now.
    /// Nothing is stored when the ticket changed since `as_of` (its `updated_at` when the clocks
    /// were computed): that change brings its own evaluation.
    #[allow(clippy::too_many_arguments)]
    async fn save_sla(
        &self,
        desk: DeskId,
        ticket: TicketId,
        as_of: DateTime<Utc>,
        state: &SlaState,
        on_change: &[Outgoing],
        alerts: &[SlaAlert],
        now: DateTime<Utc>,
    ) -> Result<Vec<&'static str>>;
    /// Tickets the watcher must look at by `now` (across desks), oldest check first.
    async fn sla_due(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<(DeskId, TicketId)>>;
    /// The earliest check ahead.
    async fn sla_next_check(&self) -> Result<Option<DateTime<Utc>>>;
    /// The digest of a desk at `now`, or of one assignee's queue.
    async fn digest(
        &self,
        desk: DeskId,
        assignee: Option<&UserRef>,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<crate::core::digest::Digest>;
    async fn add_digest_schedule(
        &self,
        schedule: &DigestSchedule,
        now: DateTime<Utc>,
    ) -> Result<i64>;
    /// Removes a person's own digest on a desk; how many there were.
    async fn remove_personal_digest(&self, desk: DeskId, user: &UserRef) -> Result<u64>;
    /// Removes a channel's schedules (not personal ones); how many there were.
    async fn remove_digest_schedules(
        &self,
        desk: DeskId,
        surface: &SurfaceRef,
        channel: &str,
    ) -> Result<u64>;
    /// Every schedule, across desks (the scheduler's one cross-desk read).
    async fn digest_schedules(&self) -> Result<Vec<DigestSchedule>>;
    /// Marks `run` handled for a schedule whose last run is earlier, queueing `out` in the same
    /// transaction; false (and nothing queued) when another run got there first.
    async fn run_digest(
        &self,
        schedule: i64,
        run: DateTime<Utc>,
        out: &[Outgoing],
        now: DateTime<Utc>,
    ) -> Result<bool>;
}

/// A Slack workspace installed through OAuth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackInstall {
    pub team_id: String,
    pub team_name: Option<String>,
    pub bot_user_id: Option<String>,
    pub installer: UserRef,
    /// The bot token, sealed by [`crate::secret::Sealer`] for `slack-install:<team_id>`.
    pub bot_token: Vec<u8>,
}

/// An OAuth flow in progress, found again by its `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthState {
    pub state: String,
    pub purpose: String,
    pub desk: Option<DeskId>,
    pub user: Option<UserRef>,
    pub verifier: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// What redeeming a desk link code did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// The surface now serves `desk`; `moved` tickets came along, renumbered from `first_no`.
    Joined {
        desk: DeskId,
        moved: i64,
        first_no: i64,
    },
    /// The surface's desk has `tickets` of its own and no merge was asked for.
    HasTickets(i64),
    /// The surface already serves the code's desk.
    AlreadyJoined,
    /// The code is unknown, used or expired.
    Invalid,
}

/// Installations, OAuth flows in progress and desk link codes.
#[async_trait]
pub trait InstallStore: Send + Sync {
    /// Stores (or replaces) a workspace's install in one transaction: the desk for its team
    /// (created if new), the installer as the desk's admin, and the token usable again.
    async fn save_slack_install(
        &self,
        install: &SlackInstall,
        now: DateTime<Utc>,
    ) -> Result<DeskId>;
    /// The install of a team, when it installed through OAuth.
    async fn slack_install(&self, team_id: &str) -> Result<Option<SlackInstall>>;
    /// Remembers an OAuth flow's state until it expires.
    async fn save_oauth_state(&self, state: &OAuthState, now: DateTime<Utc>) -> Result<()>;
    /// The unexpired state `state` made for `purpose`, left in place.
    async fn peek_oauth_state(
        &self,
        state: &str,
        purpose: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<OAuthState>>;
    /// Takes (deletes and returns) the unexpired state `state` made for `purpose`; a second
    /// take of the same state finds nothing.
    async fn take_oauth_state(
        &self,
        state: &str,
        purpose: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<OAuthState>>;
    /// Stores a one-time desk link code (its hash).
    async fn save_link_code(
        &self,
        desk: DeskId,
        code_hash: &str,
        by: &UserRef,
        expires_at: DateTime<Utc>,
    ) -> Result<()>;
    /// Redeems a link code in one transaction: moves `surface` onto the code's desk and makes
    /// `by` an admin there. When the surface's own desk has tickets, only with `merge`: its
    /// tickets (with their timelines, cards and contacts) move too, renumbered after the
    /// shared desk's. A refused redeem leaves the code usable.
    async fn redeem_link_code(
        &self,
        code_hash: &str,
        surface: &SurfaceRef,
        by: &UserRef,
        merge: bool,
        now: DateTime<Utc>,
    ) -> Result<Redeemed>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refresh(id: i64, note: Option<&str>) -> OutboxItem {
        OutboxItem {
            id,
            desk: DeskId(1),
            destination: "ticket:1:slack:T1".into(),
            idempotency_key: format!("k{id}"),
            message: Outgoing::UpdateCards {
                surface: SurfaceRef::new(crate::core::people::Platform::Slack, "T1"),
                ticket: TicketId(1),
                note: note.map(str::to_owned),
                answered: None,
            },
            attempts: 0,
            created_at: Utc::now(),
            surface_revoked: false,
            merged: Vec::new(),
            progress: None,
            joins: Vec::new(),
        }
    }

    fn queued(id: i64, kind: &str, note: Option<&str>) -> Queued {
        Queued {
            id,
            kind: kind.into(),
            note: note.map(str::to_owned),
            answered: None,
            joined: Vec::new(),
            held: false,
        }
    }

    fn answered(item: &OutboxItem) -> Option<&str> {
        match &item.message {
            Outgoing::UpdateCards { answered, .. } => answered.as_deref(),
            _ => None,
        }
    }

    #[test]
    fn the_answered_card_is_left_alone_only_when_its_change_is_the_last_carried() {
        let mut item = refresh(1, Some("a"));
        if let Outgoing::UpdateCards { answered, .. } = &mut item.message {
            *answered = Some("m1".into());
        }
        let mut alone = item.clone();
        alone.absorb(Vec::new(), Vec::new());
        assert_eq!(answered(&alone), Some("m1"));
        let by_click = |id, message: Option<&str>| Queued {
            answered: message.map(str::to_owned),
            ..queued(id, "update_cards", Some("b"))
        };
        let mut last_clicked = item.clone();
        last_clicked.absorb(Vec::new(), vec![by_click(2, None), by_click(3, Some("m2"))]);
        assert_eq!(answered(&last_clicked), Some("m2"));
        // A change after the click: the clicked card's answer does not show it.
        let mut changed_after = item;
        changed_after.absorb(Vec::new(), vec![by_click(2, Some("m2")), by_click(3, None)]);
        assert_eq!(answered(&changed_after), None);
    }

    fn note(item: &OutboxItem) -> Option<&str> {
        match &item.message {
            Outgoing::UpdateCards { note, .. } => note.as_deref(),
            _ => None,
        }
    }

    #[test]
    fn a_refresh_absorbs_the_refreshes_behind_it_in_order_up_to_a_post() {
        let mut item = refresh(1, None);
        item.absorb(
            Vec::new(),
            vec![
                queued(4, "post_card", None),
                queued(3, "update_cards", Some("second")),
                queued(2, "update_cards", Some("first")),
                queued(5, "update_cards", Some("after the post")),
            ],
        );
        assert_eq!(item.merged, [2, 3]);
        assert_eq!(note(&item), Some("first\nsecond"));
    }

    #[test]
    fn a_refresh_does_not_carry_one_held_to_a_later_time_nor_what_follows_it() {
        let mut item = refresh(1, Some("now"));
        let held = Queued {
            held: true,
            ..queued(3, "update_cards", Some("within the second"))
        };
        item.absorb(
            Vec::new(),
            vec![
                queued(2, "update_cards", Some("due")),
                held,
                queued(4, "update_cards", None),
            ],
        );
        assert_eq!(item.merged, [2]);
        assert_eq!(note(&item), Some("now\ndue"));
    }

    #[test]
    fn the_joined_note_and_the_rows_carried_are_bounded() {
        let long = "x".repeat(MERGED_NOTE_CHARS / 2);
        let mut item = refresh(1, Some(&long));
        item.absorb(
            Vec::new(),
            vec![
                queued(2, "update_cards", None),
                queued(3, "update_cards", Some(&long)),
                queued(4, "update_cards", None),
            ],
        );
        assert_eq!(
            item.merged,
            [2],
            "the second long note would pass the bound"
        );
        assert_eq!(note(&item).map(str::len), Some(MERGED_NOTE_CHARS / 2));

        let mut item = refresh(1, Some("a"));
        item.absorb(
            Vec::new(),
            (2..200)
                .map(|id| queued(id, "update_cards", Some("b")))
                .collect(),
        );
        assert_eq!(item.merged.len(), MERGE_MAX - 1);

        let mut post = refresh(1, None);
        post.message = Outgoing::PostCard {
            surface: SurfaceRef::new(crate::core::people::Platform::Slack, "T1"),
            channel: "C1".into(),
            ticket: TicketId(1),
        };
        post.absorb(Vec::new(), vec![queued(2, "update_cards", Some("b"))]);
        assert!(post.merged.is_empty(), "only a refresh carries others");
    }

    #[test]
    fn a_retry_of_a_part_way_refresh_carries_the_same_rows_and_adds_its_own_copies() {
        let mut first = refresh(1, Some("a"));
        first.absorb(Vec::new(), vec![queued(2, "update_cards", Some("b"))]);
        assert_eq!(first.progress_after(Vec::new()), None, "nothing finished");
        let progress = first.progress_after(vec!["m1".into()]).unwrap();
        assert_eq!(
            progress,
            Progress {
                through: 2,
                done: vec!["m1".into()]
            }
        );
        // Queued meanwhile: row 3. The retry says "a", "b" again, not "c".
        let mut retry = refresh(1, Some("a"));
        retry.progress = Some(progress);
        retry.absorb(
            Vec::new(),
            vec![
                queued(2, "update_cards", Some("b")),
                queued(3, "update_cards", Some("c")),
            ],
        );
        assert_eq!(retry.merged, [2]);
        assert_eq!(note(&retry), Some("a\nb"));
        // Failing again, it keeps what the first finished.
        let again = retry.progress_after(vec!["m2".into()]).unwrap();
        assert_eq!(again.done, ["m1", "m2"]);
        assert_eq!(again.through, 2);
        assert_eq!(retry.progress_after(Vec::new()).unwrap().done, ["m1"]);
    }
}
