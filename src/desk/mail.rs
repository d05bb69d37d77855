//! Email on the desk: `/ticket mailbox connect`, `/ticket link`, and intake of polled mail
//! (new tickets, appended messages, reopen on a customer's reply).
//!
//! The desk does not speak Gmail or Graph: the mail adapter implements [`MailPort`] and the
//! desk works with parsed [`Mail`].

use std::sync::Arc;

use async_trait::async_trait;
use chrono::TimeDelta;

use super::{Desks, Invocation, Reply};
use crate::core::command::Provider;
use crate::core::contact::{ContactTarget, Email};
use crate::core::mail::{Mail, ThreadRef, preview};
use crate::core::outgoing::Outgoing;
use crate::core::people::{Actor, Platform, Role, SurfaceRef, UserRef};
use crate::core::ticket::{Action, DeskId, Priority, Status, Ticket, TicketNo};
use crate::store::{Changed, MailRecord, Mailbox, OAuthState, StoreError};

/// How long a connect link works.
pub const CONNECT_TTL: TimeDelta = TimeDelta::minutes(10);

/// One fetched email with what the provider says about it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub provider_id: String,
    pub mail: Mail,
    pub web_link: Option<String>,
}

/// What the desk needs of the mail adapter.
#[async_trait]
pub trait MailPort: Send + Sync {
    /// Whether the provider's OAuth client is configured.
    fn configured(&self, provider: Provider) -> bool;
    /// The link that starts connecting a mailbox for the flow `state`.
    fn connect_link(&self, provider: Provider, state: &str, expires_ms: i64) -> String;
    /// Every message of a thread in `mailbox`; an error says why it cannot be fetched.
    async fn fetch_thread(
        &self,
        mailbox: &Mailbox,
        thread: &ThreadRef,
    ) -> Result<Vec<Fetched>, String>;
}

/// The OAuth purpose of connecting a mailbox of `provider`.
pub fn purpose(provider: Provider) -> String {
    format!("mail:{}", provider.as_str())
}

const LINK_FORMS: &str = "a Gmail thread URL (…#inbox/<hex id>) or thread id, an Outlook web link \
    (…?ItemID=… or …/id/…), an Outlook conversation id, or a Message-ID like <abc@example.com>";

impl Desks {
    pub(super) async fn mailbox_connect(
        &self,
        actor: &Actor,
        provider: Provider,
    ) -> Result<Reply, StoreError> {
        let Some(port) = self.mail.clone().filter(|p| p.configured(provider)) else {
            let vars = match provider {
                Provider::Google => "GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET",
                Provider::Microsoft => "MICROSOFT_CLIENT_ID and MICROSOFT_CLIENT_SECRET",
            };
            return Ok(Reply::Error(format!(
                "{} mailboxes are not set up on this server; its operator sets {vars}.",
                if provider == Provider::Google {
                    "Gmail"
                } else {
                    "Outlook"
                }
            )));
        };
        let now = self.clock.now();
        let (challenge, verifier) = oauth2::PkceCodeChallenge::new_random_sha256();
        let _ = challenge;
        let state = crate::secret::random_token();
        let expires_at = now + CONNECT_TTL;
        self.store
            .save_oauth_state(
                &OAuthState {
                    state: state.clone(),
                    purpose: purpose(provider),
                    desk: Some(actor.desk),
                    user: Some(actor.user.clone()),
                    verifier: Some(verifier.secret().clone()),
                    expires_at,
                },
                now,
            )
            .await?;
        let link = port.connect_link(provider, &state, expires_at.timestamp_millis());
        Ok(Reply::private(format!(
            "Connect the support mailbox here (the link works once, for 10 minutes): {link}"
        )))
    }

    pub(super) async fn link_thread(
        &self,
        actor: &Actor,
        no: TicketNo,
        thread: &str,
    ) -> Result<Reply, StoreError> {
        let Some(reference) = crate::core::mail::parse_thread_ref(thread) else {
            return Ok(Reply::Error(format!(
                "{no}: {thread:?} is not a thread I can find. Give {LINK_FORMS}."
            )));
        };
        let record = self
            .store
            .ticket(actor.desk, no)
            .await?
            .ok_or(StoreError::NoTicket(no))?;
        let Some(port) = self.mail.clone() else {
            return Ok(Reply::Error(format!(
                "{no}: no mail provider is set up on this server, so no thread can be linked."
            )));
        };
        let mailboxes: Vec<Mailbox> = self
            .store
            .mailboxes_of(actor.desk)
            .await?
            .into_iter()
            .filter(|m| m.connected && fits(m.provider, &reference))
            .collect();
        if mailboxes.is_empty() {
            return Ok(Reply::Error(format!(
                "{no}: this desk has no connected mailbox for that kind of thread. Connect one with /ticket mailbox connect google (or microsoft)"
            )));
        }
        let mut last_error = String::new();
        for mailbox in &mailboxes {
            match port.fetch_thread(mailbox, &reference).await {
                Ok(messages) if !messages.is_empty() => {
                    let mut added = 0;
                    for f in &messages {
                        if self
                            .append(mailbox, &record.ticket, f, false)
                            .await?
                            .is_some()
                        {
                            added += 1;
                        }
                    }
                    if let Some(thread) = messages.iter().find_map(|f| f.mail.thread_id.clone()) {
                        self.store
                            .link_thread(actor.desk, mailbox.id, &thread, record.ticket.id)
                            .await?;
                    }
                    if record.ticket.contact.is_none()
                        && let Some(from) = messages.iter().find_map(|f| customer(mailbox, &f.mail))
                        && let Some(email) = Email::parse(&from)
                    {
                        self.link_contact(actor, no, ContactTarget::Individual(email), None)
                            .await?;
                    }
                    return Ok(Reply::Text {
                        text: format!(
                            "Linked an email thread of {} message(s) to {no} ({added} new); replies will keep arriving.",
                            messages.len()
                        ),
                        private: false,
                    });
                }
                Ok(_) => last_error = "the thread is empty".into(),
                Err(e) => last_error = e,
            }
        }
        Ok(Reply::Error(format!(
            "{no}: that thread could not be fetched ({last_error}). Give {LINK_FORMS}."
        )))
    }

    /// Appends one email to a ticket once; a reply from the support mailbox counts as a
    /// response. `notify`: the email just arrived (polled), so a customer's reopens a resolved
    /// ticket, tells the assignee, and is said in the card's thread. Otherwise (a thread linked
    /// by hand, the email that made the ticket) it is recorded only: an old message of a linked
    /// thread is not a new reply.
    async fn append(
        &self,
        mailbox: &Mailbox,
        ticket: &Ticket,
        f: &Fetched,
        notify: bool,
    ) -> Result<Option<Changed>, StoreError> {
        let from = f
            .mail
            .from
            .as_ref()
            .map(|a| a.email.clone())
            .unwrap_or_default();
        let outgoing = from == mailbox.address;
        let actor = UserRef::email(if from.is_empty() {
            "unknown@invalid"
        } else {
            &from
        });
        let mut actions = Vec::new();
        let reopen = notify && !outgoing && ticket.status.is_resolved();
        if reopen {
            actions.push(Action::Move(
                Status::Open,
                Some("the customer replied by email".into()),
            ));
        }
        actions.push(Action::Email {
            summary: summary(&f.mail, f.web_link.as_deref()),
            outgoing,
        });
        let surfaces = self.surfaces(mailbox.desk).await?;
        let note = if reopen {
            format!("{} replied by email; {} is open again.", from, ticket.no)
        } else {
            format!("New email from {from} on {}.", ticket.no)
        };
        let assignee = ticket.assignee.clone();
        let out = |t: &Ticket| {
            let mut out: Vec<Outgoing> = surfaces
                .iter()
                .map(|s| Outgoing::UpdateCards {
                    surface: s.surface.clone(),
                    ticket: t.id,
                    note: notify.then(|| note.clone()),
                    answered: None,
                })
                .collect();
            if reopen
                && let Some(user) = &assignee
                && let Some(s) = surfaces
                    .iter()
                    .find(|s| s.surface.platform == user.platform)
            {
                out.push(Outgoing::DirectMessage {
                    surface: s.surface.clone(),
                    user: user.clone(),
                    text: note.clone(),
                    ticket: Some(t.id),
                });
            }
            out
        };
        let record = MailRecord {
            provider_id: f.provider_id.clone(),
            message_id: f.mail.message_id.clone(),
            thread_id: f.mail.thread_id.clone(),
            from_email: (!from.is_empty()).then_some(from.clone()),
            subject: f.mail.subject.clone(),
            web_link: f.web_link.clone(),
            sent_at: f.mail.date,
        };
        let changed = self
            .store
            .append_mail(
                mailbox.desk,
                mailbox.id,
                ticket.no,
                &actor,
                &actions,
                &record,
                &out,
                self.clock.now(),
            )
            .await?;
        if let Some(Changed::Yes(t)) = &changed {
            self.outbox_wake.notify_one();
            self.refresh_sla(mailbox.desk, t.clone()).await;
        }
        Ok(changed)
    }

    /// Takes in one polled email: appended to the ticket it belongs to (its `[#n]` tag, its
    /// thread, its In-Reply-To/References), or a new ticket whose contact is the original sender.
    pub async fn take_in(&self, mailbox: &Mailbox, f: &Fetched) -> Result<(), StoreError> {
        if self.store.mail_seen(mailbox.id, &f.provider_id).await? {
            return Ok(());
        }
        let desk = mailbox.desk;
        // The same email under another provider id: Outlook keeps a message the mailbox sent to
        // itself (or copied itself on) once in Sent Items and once in the inbox.
        if let Some(id) = &f.mail.message_id
            && self
                .store
                .ticket_of_message_ids(desk, std::slice::from_ref(id))
                .await?
                .is_some()
        {
            return Ok(());
        }
        let mut ticket = None;
        if let Some(n) = crate::core::mail::ticket_tag(&f.mail.subject) {
            ticket = self
                .store
                .ticket(desk, TicketNo(n))
                .await?
                .map(|r| r.ticket);
        }
        if ticket.is_none()
            && let Some(thread) = &f.mail.thread_id
            && let Some(id) = self.store.ticket_of_thread(mailbox.id, thread).await?
        {
            ticket = self.store.ticket_by_id(desk, id).await?.map(|r| r.ticket);
        }
        if ticket.is_none() {
            let mut ids = f.mail.references.clone();
            ids.extend(f.mail.in_reply_to.iter().cloned());
            if let Some(id) = self.store.ticket_of_message_ids(desk, &ids).await? {
                ticket = self.store.ticket_by_id(desk, id).await?.map(|r| r.ticket);
            }
        }
        if let Some(t) = ticket {
            self.append(mailbox, &t, f, true).await?;
            return Ok(());
        }
        // Our own mail outside any ticket's thread (sent from the mailbox, a forward of
        // someone else's mail included) makes no ticket: the team writes, it does not ask.
        let ours =
            (f.mail.from.as_ref()).is_some_and(|a| a.email.eq_ignore_ascii_case(&mailbox.address));
        let Some(sender) = customer(mailbox, &f.mail).filter(|_| !ours) else {
            return Ok(());
        };
        let created = self.create_from_mail(mailbox, f, &sender).await?;
        self.append(mailbox, &created, f, false).await?;
        metrics::counter!("piraja_mail_tickets_total").increment(1);
        Ok(())
    }

    async fn create_from_mail(
        &self,
        mailbox: &Mailbox,
        f: &Fetched,
        sender: &str,
    ) -> Result<Ticket, StoreError> {
        let desk = mailbox.desk;
        let surfaces = self.surfaces(desk).await?;
        let surface = surfaces
            .first()
            .map(|s| s.surface.clone())
            .unwrap_or_else(|| SurfaceRef::new(Platform::Email, &mailbox.address));
        let actor = Actor {
            desk,
            user: UserRef::email(sender),
            name: f
                .mail
                .original_from
                .as_ref()
                .or(f.mail.from.as_ref())
                .and_then(|a| a.name.clone()),
            role: Role::Agent,
            small_team: false,
            surface: surface.clone(),
            channel: None,
            answered: None,
            change_key: None,
        };
        let inv = Invocation {
            surface,
            surface_name: None,
            user: actor.user.clone(),
            user_name: actor.name.clone(),
            channel: None,
            key: Some(format!("mail:{}:{}", mailbox.id, f.provider_id)),
            keyed_changes: false,
            surface_admin: false,
            post_in_channel: false,
            answered: None,
        };
        let subject = strip_forward(&f.mail.subject);
        let body = preview(&f.mail.body, 6, 600);
        let mut description = if subject.is_empty() {
            body.clone()
        } else {
            format!("{subject}\n{body}")
        };
        if description.trim().is_empty() {
            description = format!("Email from {sender}");
        }
        // An email's text is the sender's: it may not mention people or disguise links.
        let description: String = crate::core::view::inert(&description)
            .chars()
            .take(3900)
            .collect();
        let reply = self
            .create(
                &actor,
                &inv,
                description.trim(),
                Priority::Medium,
                None,
                None,
            )
            .await?;
        let Reply::Created { card, .. } = reply else {
            return Err(StoreError::Corrupt(
                "a ticket from email was not created".into(),
            ));
        };
        if let Some(email) = Email::parse(sender) {
            self.link_contact(
                &actor,
                card.no,
                ContactTarget::Individual(email),
                actor.name.clone(),
            )
            .await?;
        }
        self.store
            .ticket(desk, card.no)
            .await?
            .map(|r| r.ticket)
            .ok_or(StoreError::NoTicket(card.no))
    }

    /// Polls every connected mailbox once through `poll`, which returns new mail per mailbox.
    pub async fn notify_disconnected(
        &self,
        mailbox: &Mailbox,
        reason: &str,
    ) -> Result<(), StoreError> {
        if !self.store.disconnect_mailbox(mailbox.id, reason).await? {
            return Ok(());
        }
        let provider = mailbox.provider.as_str();
        let text = format!(
            "The mailbox {} was disconnected ({reason}). An agent can connect it again with /ticket mailbox connect {provider}",
            mailbox.address
        );
        let key = format!("mailbox-off:{}", mailbox.id);
        self.notice(mailbox.desk, &key, &text).await
    }

    /// Tells a desk's channels that a mailbox is connected.
    pub async fn announce_mailbox(
        &self,
        desk: DeskId,
        mailbox: i64,
        address: &str,
    ) -> Result<(), StoreError> {
        let text = format!(
            "The mailbox {address} is connected: email forwarded to it becomes tickets, and replies in linked threads join them."
        );
        self.notice(desk, &format!("mailbox-on:{mailbox}"), &text)
            .await
    }

    /// Says `text` in every notification channel of a desk; `key` (with the time) makes the
    /// outbox rows' idempotency keys.
    async fn notice(&self, desk: DeskId, key: &str, text: &str) -> Result<(), StoreError> {
        let out: Vec<Outgoing> = self
            .store
            .surfaces(desk)
            .await?
            .into_iter()
            .filter_map(|s| {
                Some(Outgoing::ChannelMessage {
                    surface: s.surface,
                    channel: s.notify_channel?,
                    text: text.to_owned(),
                })
            })
            .collect();
        let now = self.clock.now();
        let key = format!("{key}:{}", now.timestamp_millis());
        self.store.enqueue(desk, &key, &out, now).await?;
        self.outbox_wake.notify_one();
        Ok(())
    }
}

/// Whether a mailbox of `provider` can resolve `r`.
fn fits(provider: Provider, r: &ThreadRef) -> bool {
    match r {
        ThreadRef::GmailThread(_) | ThreadRef::GmailWebId(_) => provider == Provider::Google,
        ThreadRef::OutlookItem(_) | ThreadRef::Conversation(_) => provider == Provider::Microsoft,
        ThreadRef::MessageId(_) => true,
    }
}

/// The customer an email is from: the original sender of a forward, else the sender, unless
/// that is the support mailbox itself.
fn customer(mailbox: &Mailbox, mail: &Mail) -> Option<String> {
    let address = mail
        .original_from
        .as_ref()
        .or(mail.from.as_ref())
        .map(|a| a.email.to_lowercase())?;
    (address != mailbox.address && !address.is_empty()).then_some(address)
}

fn strip_forward(subject: &str) -> String {
    let mut s = subject.trim();
    loop {
        let lower = s.to_lowercase();
        let cut = ["fwd:", "fw:", "re:"]
            .iter()
            .find(|p| lower.starts_with(**p));
        match cut {
            Some(p) => s = s[p.len()..].trim_start(),
            None => return s.to_owned(),
        }
    }
}

/// The timeline line of an email: who, subject, the first lines, and the web link when the
/// body was longer.
fn summary(mail: &Mail, web_link: Option<&str>) -> String {
    let from = mail
        .from
        .as_ref()
        .map(|a| match &a.name {
            Some(n) => format!("{n} <{}>", a.email),
            None => a.email.clone(),
        })
        .unwrap_or_else(|| "unknown sender".into());
    let first = preview(&mail.body, 4, 240);
    let mut s = crate::core::view::inert(&format!("{from} · {} · {first}", mail.subject));
    if first.chars().count() < mail.body.trim().chars().count()
        && let Some(link) = web_link
    {
        s.push_str(&format!(" (whole message: {link})"));
    }
    s
}

/// A shared handle to the mail adapter.
pub type MailHandle = Arc<dyn MailPort>;
