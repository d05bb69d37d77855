//! Running `/ticket` commands: the one place that turns a typed [`Command`] from any platform
//! into store calls, outbox messages and a neutral [`Reply`].
//!
//! Adapters (Slack, Discord) verify and parse a request, build an [`Invocation`], call
//! [`Desks::execute`] and render the reply. Permissions are checked here, once, for every
//! platform.

pub mod cache;
mod contacts;
pub mod housekeeping;
pub mod limits;
pub mod mail;
mod sharing;
pub mod sla;
mod tickets;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::core::command::Command;
use crate::core::grammar::USAGE;
use crate::core::people::{Actor, Need, Platform, SurfaceRef, UserRef};
use crate::core::ticket::{Priority, TicketNo};
use crate::core::view::{Card, Detail, History, ListView};
use crate::store::{Store, StoreError};

/// A clock: the system's in production, a fixed or stepped one in tests.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    pub fn system() -> Clock {
        Clock(Arc::new(Utc::now))
    }

    pub fn fixed(t: DateTime<Utc>) -> Clock {
        Clock(Arc::new(move || t))
    }

    /// A clock that reads `f` (tests step one by hand).
    pub fn from_fn(f: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(f))
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// Who asked, where, and how to recognise a retry of the same request.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub surface: SurfaceRef,
    /// The workspace or guild name, when the platform sends it.
    pub surface_name: Option<String>,
    pub user: UserRef,
    pub user_name: Option<String>,
    pub channel: Option<String>,
    /// A key unique to this request (Slack trigger id, Discord interaction id): a retry with the
    /// same key creates nothing new.
    pub key: Option<String>,
    /// Whether `key` keys the request's change of a ticket too: set where the platform may
    /// deliver the same request twice (an Events API retry, a form submitted again), so that
    /// the change is made once. Elsewhere a change is not keyed (no platform repeats a click
    /// or a command; a double click is two requests).
    pub keyed_changes: bool,
    /// Whether the platform says this user administers the surface (Discord Manage Guild).
    pub surface_admin: bool,
    /// Whether a new ticket's card is posted in `channel` through the outbox. False where the
    /// answer to the request is itself the card in the channel (Discord without a bot token).
    pub post_in_channel: bool,
    /// The card message the answer to this request replaces in place with the changed card (a
    /// Discord button or select on a card: its answer updates the clicked message). The outbox
    /// leaves that message to the answer and only says the change in its thread: a second edit
    /// of it would spend the channel's edit budget on nothing.
    pub answered: Option<String>,
}

/// What the new-ticket form (a Slack modal, a Discord modal) asks for.
#[derive(Debug, Clone)]
pub struct NewTicketForm {
    pub priority: Option<Priority>,
    pub description: String,
    pub contact: Option<crate::core::contact::Email>,
    /// A user id on the form's platform.
    pub assignee: Option<String>,
}

/// Why a form was not accepted: the field to show it on (`description`, `contact`,
/// `assignee`: the forms' own names for them) and what to say (it says nothing was created).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormError {
    pub field: &'static str,
    pub text: String,
}

/// What a command answers, before a platform renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A ticket was created; its card is on its way to the channels.
    Created { card: Card, replayed: bool },
    /// A ticket's card, updated (buttons answer with this to replace the card in place).
    Card { card: Card, note: String },
    /// A ticket with its timeline; private.
    Detail(Detail),
    /// A queue view; private.
    List(ListView),
    /// A contact's history; private.
    History(History),
    /// Open the new-ticket form (Slack modal, Discord modal).
    Form { priority: Option<Priority> },
    /// A message; `private` ones only the actor sees.
    Text { text: String, private: bool },
    /// Something the actor must fix; always private, says what to type.
    Error(String),
    /// A digest of the queue, posted in the channel.
    Digest(Box<crate::core::digest::Digest>),
}

impl Reply {
    fn private(text: impl Into<String>) -> Reply {
        Reply::Text {
            text: text.into(),
            private: true,
        }
    }
}

/// Every desk, behind one store.
#[derive(Clone)]
pub struct Desks {
    pub store: Arc<dyn Store>,
    pub clock: Clock,
    /// Poked after every write that queues outgoing messages.
    pub outbox_wake: Arc<Notify>,
    /// Poked when a digest schedule is added or removed: the scheduler then plans from it at
    /// once (a schedule of every few seconds runs on time from its first instant).
    pub digest_wake: Arc<Notify>,
    /// Abuse limits per person and per desk.
    pub limits: Arc<limits::Limiter>,
    /// The mail adapter, when a mail provider is configured.
    pub mail: Option<mail::MailHandle>,
    /// Surfaces, members and desks' surfaces, briefly remembered.
    pub caches: Arc<cache::Caches>,
    /// SLA settings per desk, read at most once a minute.
    pub sla_cache: Arc<
        std::sync::Mutex<
            std::collections::HashMap<
                crate::core::ticket::DeskId,
                (sla::SlaContext, std::time::Instant),
            >,
        >,
    >,
}

/// The most rows a list or history returns; renderers summarise the rest.
pub const LIST_LIMIT: i64 = 100;

impl Desks {
    pub fn new(store: Arc<dyn Store>, clock: Clock) -> Desks {
        Desks {
            store,
            clock,
            outbox_wake: Arc::new(Notify::new()),
            digest_wake: Arc::new(Notify::new()),
            limits: Arc::new(limits::Limiter::new(crate::config::Limits::default())),
            mail: None,
            sla_cache: Arc::default(),
            caches: Arc::default(),
        }
    }

    /// The surfaces serving a desk (briefly cached).
    pub async fn surfaces(
        &self,
        desk: crate::core::ticket::DeskId,
    ) -> Result<Vec<crate::core::people::Surface>, StoreError> {
        if let Some(s) = self.caches.surfaces.get(&desk) {
            return Ok(s);
        }
        let epoch = self.caches.epoch();
        let s = self.store.surfaces(desk).await?;
        if self.caches.still(epoch) {
            self.caches.surfaces.put(desk, s.clone());
        }
        Ok(s)
    }

    /// The same desks with a mail adapter.
    pub fn with_mail(mut self, mail: mail::MailHandle) -> Desks {
        self.mail = Some(mail);
        self
    }

    /// The same desks with other abuse limits.
    pub fn with_limits(mut self, limits: crate::config::Limits) -> Desks {
        self.limits = Arc::new(limits::Limiter::new(limits));
        self
    }

    /// Resolves the desk and the actor's standing for an invocation.
    pub async fn actor(&self, inv: &Invocation) -> Result<Actor, StoreError> {
        let now = self.clock.now();
        let epoch = self.caches.epoch();
        let desk = match self.caches.desk_of.get(&inv.surface) {
            Some(desk) => desk,
            None => {
                let desk = self
                    .store
                    .desk_for_surface(&inv.surface, inv.surface_name.as_deref(), now)
                    .await?;
                if self.caches.still(epoch) {
                    self.caches.desk_of.put(inv.surface.clone(), desk);
                }
                desk
            }
        };
        let key = (desk, inv.user.clone());
        let cached = self
            .caches
            .members
            .get(&key)
            .filter(|(_, name)| inv.user_name.is_none() || inv.user_name == *name);
        let mut membership = match cached {
            Some((m, _)) => m,
            None => {
                let m = self
                    .store
                    .see_member(
                        desk,
                        &inv.user,
                        inv.user_name.as_deref(),
                        inv.surface.platform != Platform::Discord,
                        now,
                    )
                    .await?;
                if self.caches.still(epoch) {
                    self.caches.members.put(key, (m, inv.user_name.clone()));
                }
                m
            }
        };
        if inv.surface_admin {
            membership.role = crate::core::people::Role::Admin;
        }
        Ok(Actor {
            desk,
            user: inv.user.clone(),
            name: inv.user_name.clone(),
            role: membership.role,
            small_team: membership.small_team,
            surface: inv.surface.clone(),
            channel: inv.channel.clone(),
            answered: inv.answered.clone(),
            change_key: inv.key.clone().filter(|_| inv.keyed_changes),
        })
    }

    /// Runs one command. Store failures become a private apology and a log line; refusals and
    /// mistakes become a private message that says what to do.
    pub async fn execute(&self, inv: &Invocation, cmd: Command) -> Reply {
        let ticket = cmd.ticket();
        match self.try_execute(inv, cmd).await {
            Ok(reply) => reply,
            Err(e) => {
                tracing::error!(error = %e, surface = %inv.surface, "A command failed in the store.");
                named(
                    Reply::Error("Something went wrong on our side; nothing was changed. Please try again in a moment.".into()),
                    ticket,
                )
            }
        }
    }

    /// Creates the ticket a new-ticket form asks for, with its contact and assignee in the
    /// create's own write: the form makes the whole ticket or nothing. Setting a contact or an
    /// assignee takes an agent, as `/ticket contact` and `/ticket assign` do; a member who
    /// fills them in is told so on that field and nothing is created. A form submitted again
    /// (the same `inv.key`) answers with the ticket the first submission made.
    pub async fn submit_new_ticket(
        &self,
        inv: &Invocation,
        form: NewTicketForm,
    ) -> Result<Reply, FormError> {
        let failed = |e: StoreError| {
            tracing::error!(error = %e, surface = %inv.surface, "A new-ticket form failed in the store.");
            FormError {
                field: "description",
                text: "Something went wrong on our side; nothing was created. Please try again in a moment.".into(),
            }
        };
        let actor = self.actor(inv).await.map_err(failed)?;
        let wants = [
            (
                form.contact.is_some(),
                "contact",
                Command::Contact {
                    no: TicketNo(0),
                    target: crate::core::contact::ContactTarget::Organization(String::new()),
                    name: None,
                },
            ),
            (
                form.assignee.is_some(),
                "assignee",
                Command::Assign {
                    no: TicketNo(0),
                    who: crate::core::command::Who::Me,
                },
            ),
        ];
        let new = Command::New {
            priority: form.priority,
            description: Some(form.description.clone()),
        };
        // What each field takes is what its command takes.
        for (asked, field, cmd) in std::iter::once((true, "description", new)).chain(wants) {
            if asked && !actor.may(cmd.need()) {
                let text = format!("{} Nothing was created.", refused(&actor, &cmd));
                return Err(FormError { field, text });
            }
        }
        if let Some(wait) = self.over_limit(&actor, true) {
            return Err(FormError {
                field: "description",
                text: wait.replace("Nothing was changed.", "Nothing was created."),
            });
        }
        let now = self.clock.now();
        let individual = match &form.contact {
            Some(email) => Some(
                (self
                    .store
                    .upsert_individual(actor.desk, email, None, now)
                    .await)
                    .map_err(failed)?
                    .id,
            ),
            None => None,
        };
        let assignee = match form.assignee {
            Some(id) => {
                let user = UserRef::new(actor.surface.platform, id);
                // Anyone in the workspace can be assigned: they become a member of the desk.
                (self
                    .store
                    .see_member(actor.desk, &user, None, false, now)
                    .await)
                    .map_err(failed)?;
                Some(user)
            }
            None => None,
        };
        let priority = form.priority.unwrap_or(Priority::Medium);
        (self
            .create(
                &actor,
                inv,
                &form.description,
                priority,
                assignee,
                individual,
            )
            .await)
            .map_err(failed)
    }

    /// The abuse limits: what to tell `actor` when they must wait (logged and counted).
    fn over_limit(&self, actor: &Actor, creates: bool) -> Option<String> {
        let wait = self.limits.check(actor.desk, &actor.user, creates).err()?;
        tracing::info!(desk.id = %actor.desk, "A user was rate limited.");
        metrics::counter!("piraja_rate_limited_total").increment(1);
        Some(limits::message(wait))
    }

    /// Runs one command as [`Desks::execute`] does, but hands a failure of the store back: a
    /// caller the platform retries (an Events API delivery) answers so that it is retried.
    pub async fn try_execute(&self, inv: &Invocation, cmd: Command) -> Result<Reply, StoreError> {
        let ticket = cmd.ticket();
        let result = async {
            let actor = self.actor(inv).await?;
            if !actor.may(cmd.need()) {
                return Ok(refusal(&actor, &cmd));
            }
            let creates = matches!(
                cmd,
                Command::New {
                    description: Some(_),
                    ..
                }
            );
            if let Some(wait) = self.over_limit(&actor, creates) {
                return Ok(Reply::Error(wait));
            }
            self.run(&actor, inv, cmd).await
        }
        .await;
        let reply = match result {
            Ok(reply) => reply,
            Err(StoreError::NoTicket(no)) => Reply::Error(format!(
                "There is no ticket {no} on this desk. Try /ticket list all"
            )),
            Err(StoreError::Refused(e)) => Reply::Error(format!("{e}.")),
            Err(e) => return Err(e),
        };
        Ok(named(reply, ticket))
    }

    async fn run(
        &self,
        actor: &Actor,
        inv: &Invocation,
        cmd: Command,
    ) -> Result<Reply, StoreError> {
        use Command::*;
        match cmd {
            New {
                priority,
                description: None,
            } => Ok(Reply::Form { priority }),
            New {
                priority,
                description: Some(text),
            } => {
                self.create(
                    actor,
                    inv,
                    &text,
                    priority.unwrap_or(crate::core::ticket::Priority::Medium),
                    None,
                    None,
                )
                .await
            }
            Show { no } => self.show(actor, no).await,
            List { filter } => self.list(actor, filter).await,
            Assign { no, who } => self.assign(actor, no, who).await,
            Start { no } => {
                self.move_to(actor, no, crate::core::ticket::Status::InProgress, None)
                    .await
            }
            Wait { no } => {
                self.move_to(actor, no, crate::core::ticket::Status::Waiting, None)
                    .await
            }
            Complete { no, note } => {
                self.move_to(actor, no, crate::core::ticket::Status::Completed, note)
                    .await
            }
            Close { no, reason } => {
                self.move_to(actor, no, crate::core::ticket::Status::Closed, reason)
                    .await
            }
            Reopen { no } => {
                self.move_to(actor, no, crate::core::ticket::Status::Open, None)
                    .await
            }
            Priority { no, level } => self.set_priority(actor, no, level).await,
            Note { no, text } => self.note(actor, no, text).await,
            Contact { no, target, name } => self.link_contact(actor, no, target, name).await,
            History { target } => self.history(actor, target).await,
            Channel => self.set_channel(actor).await,
            Role { user, role } => self.set_role(actor, user, role).await,
            DeskLink => self.desk_link(actor).await,
            DeskJoin { code, merge } => self.desk_join(actor, &code, merge).await,
            Help { topic } => Ok(help(topic.as_deref())),
            SlaShow => self.sla_show(actor).await,
            SlaSet {
                priority,
                first_response,
                resolution,
            } => {
                self.sla_set(actor, priority, first_response, resolution)
                    .await
            }
            SlaHours(hours) => self.sla_hours(actor, Some(hours)).await,
            SlaHoursOff => self.sla_hours(actor, None).await,
            SlaHoliday { date } => self.sla_holiday(actor, date).await,
            DigestNow => self.digest_now(actor).await,
            DigestSchedule { cron, timezone } => {
                self.digest_schedule(actor, &cron, timezone.as_deref(), false)
                    .await
            }
            DigestOff => self.digest_off(actor).await,
            DigestMe { cron } => self.digest_schedule(actor, &cron, None, true).await,
            DigestMeOff => self.digest_me_off(actor).await,
            Link { no, thread } => self.link_thread(actor, no, &thread).await,
            MailboxConnect { provider } => self.mailbox_connect(actor, provider).await,
        }
    }

    async fn set_channel(&self, actor: &Actor) -> Result<Reply, StoreError> {
        let Some(channel) = &actor.channel else {
            return Ok(Reply::Error(
                "Run /ticket channel in the channel that should get new tickets.".into(),
            ));
        };
        self.store
            .set_notify_channel(actor.desk, &actor.surface, channel)
            .await?;
        self.caches.forget();
        Ok(Reply::Text {
            text: "New tickets of this desk will be posted in this channel.".into(),
            private: false,
        })
    }

    async fn set_role(
        &self,
        actor: &Actor,
        user: String,
        role: crate::core::people::Role,
    ) -> Result<Reply, StoreError> {
        let target = UserRef::new(actor.surface.platform, user);
        if target == actor.user && role != crate::core::people::Role::Admin {
            return Ok(Reply::Error(
                "You cannot lower your own role; ask another admin.".into(),
            ));
        }
        self.store
            .set_role(actor.desk, &target, role, self.clock.now())
            .await?;
        self.caches.forget();
        let article = if role == crate::core::people::Role::Member {
            "a"
        } else {
            "an"
        };
        Ok(Reply::private(format!(
            "{} is now {article} {role} of this desk.",
            mention_text(&target)
        )))
    }
}

/// How a user is written in neutral text; renderers turn `<@id>` into a mention on the
/// user's own platform.
pub fn mention_text(user: &UserRef) -> String {
    match user.platform {
        Platform::Slack | Platform::Discord => format!("<@{}>", user.id),
        _ => user.id.clone(),
    }
}

/// `text` as said on `platform`: a mention (`<@id>`, [`mention_text`]) of someone of another
/// platform (a desk Slack and Discord share) is written as their name, or "a Slack user", since
/// that platform cannot mention them and would show the raw id.
pub fn for_platform(text: &str, platform: Platform, people: &[(&UserRef, Option<&str>)]) -> String {
    let mut out = text.to_owned();
    for (user, name) in people {
        let chat = matches!(user.platform, Platform::Slack | Platform::Discord);
        if !chat || user.platform == platform || !out.contains("<@") {
            continue;
        }
        // A name is text its owner chose on another platform: made inert, it neither
        // mentions anyone nor hides a link here.
        let shown = match name {
            Some(name) => crate::core::view::inert(name),
            None => format!("a {} user", user.platform.title()),
        };
        out = out.replace(&mention_text(user), &shown);
    }
    out
}

/// Every reply names its ticket, errors too (a refusal, a rate limit, a failure).
fn named(reply: Reply, ticket: Option<TicketNo>) -> Reply {
    match (reply, ticket) {
        (Reply::Error(text), Some(no)) if !names(&text, no) => {
            Reply::Error(format!("{no}: {text}"))
        }
        (reply, _) => reply,
    }
}

/// Whether `text` names ticket `no` as `#n` (not as the start of `#n0`).
fn names(text: &str, no: TicketNo) -> bool {
    let tag = no.to_string();
    text.match_indices(&tag).any(|(i, _)| {
        !text[i + tag.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

fn refusal(actor: &Actor, cmd: &Command) -> Reply {
    Reply::Error(refused(actor, cmd))
}

/// Why `actor` may not run `cmd`.
fn refused(actor: &Actor, cmd: &Command) -> String {
    let who = match cmd.need() {
        Need::Admin => "desk admins",
        Need::Agent => "agents",
        Need::Member => "members",
    };
    format!(
        "Only {who} can use /ticket {}; you are a {} of this desk. An admin can change that with /ticket role.",
        cmd.name(),
        actor.role
    )
}

/// The help text: every usage line, or one subcommand's.
pub fn help(topic: Option<&str>) -> Reply {
    let lines: Vec<String> = USAGE
        .iter()
        .filter(|(name, _)| topic.is_none_or(|t| t == *name))
        .map(|(_, usage)| format!("/ticket {usage}"))
        .collect();
    if lines.is_empty() {
        return Reply::Error(format!(
            "There is no subcommand {:?}. Try /ticket help",
            topic.unwrap_or_default()
        ));
    }
    Reply::private(format!(
        "Piraja tickets: what you can type\n{}",
        lines.join("\n")
    ))
}

/// The number a reply is about, for logs.
pub fn reply_ticket(reply: &Reply) -> Option<TicketNo> {
    match reply {
        Reply::Created { card, .. } | Reply::Card { card, .. } => Some(card.no),
        Reply::Detail(d) => Some(d.card.no),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mention_is_a_name_on_the_other_platform_of_a_shared_desk() {
        let (ann, bob) = (UserRef::slack("U1"), UserRef::discord("80351110224678912"));
        let email = UserRef::email("jane@acme.test");
        let text = "<@U1> assigned #5 to <@80351110224678912>. jane@acme.test wrote.";
        let people = [(&ann, Some("Ann")), (&bob, None), (&email, Some("Jane"))];
        // A name chosen elsewhere mentions no one.
        let sly = [(&ann, Some("<@W999>"))];
        assert_eq!(
            for_platform("<@U1> started #5.", Platform::Discord, &sly),
            "‹@W999> started #5."
        );
        assert_eq!(
            for_platform(text, Platform::Slack, &people),
            "<@U1> assigned #5 to a Discord user. jane@acme.test wrote."
        );
        assert_eq!(
            for_platform(text, Platform::Discord, &people),
            "Ann assigned #5 to <@80351110224678912>. jane@acme.test wrote."
        );
    }

    #[test]
    fn an_error_names_its_ticket_as_a_whole_number() {
        let one = TicketNo(1);
        assert!(names("#1: Only agents can use /ticket start", one));
        assert!(names("There is no ticket #1 on this desk.", one));
        assert!(!names("#10 is closed", one));
        assert!(!names("Something went wrong", one));
    }
}
