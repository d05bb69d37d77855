//! Ticket commands: create, show, list, assign, move, prioritise, note; and the outgoing
//! messages each change causes.

use crate::core::command::{ListFilter, Who};
use crate::core::outgoing::Outgoing;
use crate::core::people::{Actor, Surface, SurfaceRef, UserRef};
use crate::core::ticket::{Action, Priority, Source, Status, Ticket, TicketNo};
use crate::core::view::{Card, Detail, ListView, Row, describe_event};
use crate::store::{Changed, ListQuery, NewTicket, StoreError, TicketChange};

use super::{Desks, Invocation, LIST_LIMIT, Reply, mention_text};

/// Where a new ticket's card goes: the channel it was created in and every surface's
/// notification channel, once per channel.
fn new_card_posts(
    ticket: &Ticket,
    origin: Option<(&SurfaceRef, &str)>,
    surfaces: &[Surface],
) -> Vec<Outgoing> {
    let mut out: Vec<Outgoing> = Vec::new();
    let mut push = |surface: &crate::core::people::SurfaceRef, channel: &str| {
        let msg = Outgoing::PostCard {
            surface: surface.clone(),
            channel: channel.to_owned(),
            ticket: ticket.id,
        };
        if !out.contains(&msg) {
            out.push(msg);
        }
    };
    if let Some((surface, channel)) = origin {
        push(surface, channel);
    }
    for s in surfaces {
        if let Some(channel) = &s.notify_channel {
            push(&s.surface, channel);
        }
    }
    out
}

/// What a change says: every surface's cards are refreshed with a note in their threads (but
/// the card the request's answer replaces is left to it), and a newly assigned user gets a
/// direct message on their own platform.
fn change_messages(
    ticket: &Ticket,
    note: &str,
    surfaces: &[Surface],
    newly_assigned: Option<&UserRef>,
    actor: &Actor,
) -> Vec<Outgoing> {
    // The people a note may mention: the actor, by the name their platform gave, and whom the
    // change assigned (no name to hand here: "a Slack user" on the other platform).
    let mut people = vec![(&actor.user, actor.name.as_deref())];
    people.extend(newly_assigned.map(|u| (u, None)));
    let mut out: Vec<Outgoing> = surfaces
        .iter()
        .map(|s| Outgoing::UpdateCards {
            surface: s.surface.clone(),
            ticket: ticket.id,
            note: Some(super::for_platform(note, s.surface.platform, &people)),
            answered: actor
                .answered
                .clone()
                .filter(|_| s.surface == actor.surface),
        })
        .collect();
    out.extend(newly_assigned.and_then(|u| assignment_dm(ticket, u, &actor.user, surfaces)));
    out
}

/// A direct message telling `user` that `actor` assigned them the ticket, on the user's own
/// platform; none when they assigned themselves or the desk has no surface there.
fn assignment_dm(
    ticket: &Ticket,
    user: &UserRef,
    actor: &UserRef,
    surfaces: &[Surface],
) -> Option<Outgoing> {
    if user == actor {
        return None;
    }
    let surface = surfaces
        .iter()
        .find(|s| s.surface.platform == user.platform)?;
    Some(Outgoing::DirectMessage {
        surface: surface.surface.clone(),
        user: user.clone(),
        text: format!(
            "{} assigned {} to you: {}",
            mention_text(actor),
            ticket.no,
            crate::core::view::first_line(&ticket.description, 200)
        ),
        ticket: Some(ticket.id),
    })
}

impl Desks {
    /// Creates a ticket from any surface (commands, forms, email intake).
    pub async fn create(
        &self,
        actor: &Actor,
        inv: &Invocation,
        description: &str,
        priority: Priority,
        assignee: Option<UserRef>,
        individual: Option<i64>,
    ) -> Result<Reply, StoreError> {
        let surfaces = self.surfaces(actor.desk).await?;
        // A customer known only by email (mail intake) makes an email ticket.
        let platform = if actor.user.platform == crate::core::people::Platform::Email {
            crate::core::people::Platform::Email
        } else {
            actor.surface.platform
        };
        let source = match platform {
            crate::core::people::Platform::Slack => Source::Slack,
            crate::core::people::Platform::Discord => Source::Discord,
            crate::core::people::Platform::Email => Source::Email,
            crate::core::people::Platform::Cli => Source::Cli,
        };
        let now = self.clock.now();
        let new = NewTicket {
            description: description.to_owned(),
            priority,
            reporter: actor.user.clone(),
            assignee: assignee.clone(),
            individual,
            source,
            sla: Some(self.new_ticket_sla(actor.desk, priority, now).await?),
        };
        // Where the card goes: owned, as the store may write the create in a batch.
        let origin = actor
            .channel
            .clone()
            .filter(|_| inv.post_in_channel)
            .map(|c| (actor.surface.clone(), c));
        let reporter = actor.user.clone();
        let dm_to = assignee;
        let out = Box::new(move |t: &Ticket| {
            let mut out =
                new_card_posts(t, origin.as_ref().map(|(s, c)| (s, c.as_str())), &surfaces);
            out.extend(
                dm_to
                    .as_ref()
                    .and_then(|a| assignment_dm(t, a, &reporter, &surfaces)),
            );
            out
        });
        let created = self
            .store
            .create_ticket(actor.desk, new, inv.key.clone(), out, now)
            .await?;
        if !created.replayed {
            metrics::counter!("piraja_tickets_created_total", "source" => source.as_str())
                .increment(1);
            tracing::info!(desk.id = %actor.desk, ticket.no = created.ticket.no.0, "A ticket was created.");
        }
        self.outbox_wake.notify_one();
        let name = match &created.ticket.assignee {
            Some(a) => self.store.member_name(actor.desk, a).await?,
            None => None,
        };
        Ok(Reply::Created {
            card: Card::of(&created.ticket, name, self.clock.now()),
            replayed: created.replayed,
        })
    }

    pub(super) async fn show(&self, actor: &Actor, no: TicketNo) -> Result<Reply, StoreError> {
        let (record, events) = self
            .store
            .ticket_with_timeline(actor.desk, no)
            .await?
            .ok_or(StoreError::NoTicket(no))?;
        let timeline = events.iter().map(describe_event).collect();
        Ok(Reply::Detail(Detail {
            card: Card::of(&record.ticket, record.assignee_name, self.clock.now()),
            timeline,
        }))
    }

    pub(super) async fn list(
        &self,
        actor: &Actor,
        filter: ListFilter,
    ) -> Result<Reply, StoreError> {
        let active = ListQuery {
            active_only: true,
            ..ListQuery::default()
        };
        let (query, title) = match &filter {
            ListFilter::Open => (active, "Open tickets".to_owned()),
            ListFilter::Mine => (
                ListQuery {
                    assignee: Some(actor.user.clone()),
                    ..active
                },
                "Your open tickets".to_owned(),
            ),
            ListFilter::Unassigned => (
                ListQuery {
                    unassigned: true,
                    ..active
                },
                "Unassigned open tickets".to_owned(),
            ),
            ListFilter::Waiting => (
                ListQuery {
                    status: Some(Status::Waiting),
                    ..ListQuery::default()
                },
                "Tickets waiting on the customer".to_owned(),
            ),
            ListFilter::All => (ListQuery::default(), "All tickets".to_owned()),
            ListFilter::Priority(p) => (
                ListQuery {
                    priority: Some(*p),
                    ..active
                },
                format!("Open {p} tickets"),
            ),
            ListFilter::User(id) => {
                let user = UserRef::new(actor.surface.platform, id.clone());
                let title = format!("Open tickets of {}", mention_text(&user));
                (
                    ListQuery {
                        assignee: Some(user),
                        ..active
                    },
                    title,
                )
            }
        };
        let (records, total) = self.store.list(actor.desk, &query, LIST_LIMIT).await?;
        Ok(Reply::List(ListView {
            title,
            rows: records
                .iter()
                .map(|r| Row::of(&r.ticket, r.assignee_name.clone()))
                .collect(),
            total,
        }))
    }

    /// Applies one action and answers with the updated card. A request the platform may
    /// deliver twice (`actor.change_key`) changes the ticket once: its second delivery changes
    /// nothing and gets the same answer.
    pub(super) async fn change(
        &self,
        actor: &Actor,
        no: TicketNo,
        action: Action,
        note: String,
    ) -> Result<Reply, StoreError> {
        let surfaces = self.surfaces(actor.desk).await?;
        let newly_assigned = match &action {
            Action::Assign(Some(u)) => Some(u.clone()),
            _ => None,
        };
        let now = self.clock.now();
        let sla = Some(self.sla_plan(actor.desk, surfaces.clone(), now).await?);
        let (said, by) = (note.clone(), actor.clone());
        let out = Box::new(move |t: &Ticket| {
            change_messages(t, &said, &surfaces, newly_assigned.as_ref(), &by)
        });
        let outcome = self
            .store
            .change_ticket(TicketChange {
                desk: actor.desk,
                no,
                actor: actor.user.clone(),
                action,
                out,
                sla,
                now,
                key: actor.change_key.clone(),
            })
            .await?;
        let (ticket, note) = match outcome.changed {
            Changed::No(t) if outcome.replayed => (t, note),
            Changed::Yes(t) => {
                self.outbox_wake.notify_one();
                let t = match outcome.sla {
                    // The clocks were stored with the change.
                    Some(queued) => {
                        super::sla::alerts_queued(actor.desk, &t, &queued);
                        t
                    }
                    None => self.refresh_sla(actor.desk, t).await,
                };
                (t, note)
            }
            Changed::No(t) => (t, format!("Nothing to change: {no} is already so.")),
        };
        let name = match (&ticket.assignee, outcome.assignee_name) {
            (Some(_), Some(name)) => Some(name),
            (Some(a), None) => self.store.member_name(actor.desk, a).await?,
            (None, _) => None,
        };
        Ok(Reply::Card {
            card: Card::of(&ticket, name, self.clock.now()),
            note,
        })
    }

    pub(super) async fn assign(
        &self,
        actor: &Actor,
        no: TicketNo,
        who: Who,
    ) -> Result<Reply, StoreError> {
        let (user, note) = match who {
            Who::Me => (
                Some(actor.user.clone()),
                format!("{} took {no}.", mention_text(&actor.user)),
            ),
            Who::User(id) => {
                let user = UserRef::new(actor.surface.platform, id);
                let note = format!(
                    "{} assigned {no} to {}.",
                    mention_text(&actor.user),
                    mention_text(&user)
                );
                // Anyone in the workspace can be assigned: they become a member of the desk.
                self.store
                    .see_member(actor.desk, &user, None, false, self.clock.now())
                    .await?;
                (Some(user), note)
            }
            Who::Nobody => (
                None,
                format!("{} unassigned {no}.", mention_text(&actor.user)),
            ),
        };
        self.change(actor, no, Action::Assign(user), note).await
    }

    pub(super) async fn move_to(
        &self,
        actor: &Actor,
        no: TicketNo,
        to: Status,
        note: Option<String>,
    ) -> Result<Reply, StoreError> {
        let verb = match to {
            Status::Open => "reopened",
            Status::InProgress => "started",
            Status::Waiting => "set to waiting on the customer",
            Status::Completed => "completed",
            Status::Closed => "closed",
        };
        let mut text = format!("{} {verb} {no}.", mention_text(&actor.user));
        if let Some(n) = &note {
            text.push(' ');
            text.push_str(&crate::core::view::cut(n, 300));
        }
        self.change(actor, no, Action::Move(to, note), text).await
    }

    pub(super) async fn set_priority(
        &self,
        actor: &Actor,
        no: TicketNo,
        level: Priority,
    ) -> Result<Reply, StoreError> {
        let note = format!("{} set {no} to {level}.", mention_text(&actor.user));
        self.change(actor, no, Action::SetPriority(level), note)
            .await
    }

    pub(super) async fn note(
        &self,
        actor: &Actor,
        no: TicketNo,
        text: String,
    ) -> Result<Reply, StoreError> {
        let note = format!(
            "{} noted on {no}: {}",
            mention_text(&actor.user),
            crate::core::view::cut(&text, 300)
        );
        self.change(actor, no, Action::Note(text), note).await
    }
}
