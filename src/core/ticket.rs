//! Tickets: their fields, the validated description, and the status machine.
//!
//! Every change to a ticket goes through [`Ticket::apply`], a pure function of the ticket, the
//! action, the actor and `now`. It returns the changed ticket and the timeline events that
//! describe the change, or `None` when the action changes nothing (a double click on "Start").
//! The store persists both in one transaction, so nothing about a ticket changes without an event.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::people::UserRef;

/// A desk's id: every store query is scoped by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeskId(pub i64);

impl fmt::Display for DeskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A ticket's row id (unique across desks; never shown to users).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TicketId(pub i64);

/// A ticket's number within its desk: `#1`, `#2`, … without gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TicketNo(pub i64);

impl TicketNo {
    /// Parses `42` or `#42`; numbers start at 1.
    pub fn parse(s: &str) -> Option<TicketNo> {
        let digits = s.strip_prefix('#').unwrap_or(s);
        if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<i64>().ok().filter(|n| *n > 0).map(TicketNo)
    }
}

impl fmt::Display for TicketNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// How urgent a ticket is; lists sort by it, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Medium,
    High,
    Urgent,
}

impl Priority {
    /// All priorities, most urgent first.
    pub const ALL: [Priority; 4] = [
        Priority::Urgent,
        Priority::High,
        Priority::Medium,
        Priority::Low,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    /// Parses a priority name, case-insensitively.
    pub fn parse(s: &str) -> Option<Priority> {
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
    }

    /// A sort key where the most urgent sorts first.
    pub fn rank(self) -> i64 {
        match self {
            Priority::Urgent => 0,
            Priority::High => 1,
            Priority::Medium => 2,
            Priority::Low => 3,
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a ticket is in its life.
///
/// The allowed moves (anything else is refused with a reason):
///
/// | from \ to   | in_progress | waiting | completed | closed | open (reopen) |
/// |-------------|-------------|---------|-----------|--------|---------------|
/// | open        | yes         | yes     | yes       | yes    | —             |
/// | in_progress | —           | yes     | yes       | yes    | —             |
/// | waiting     | yes         | —       | yes       | yes    | —             |
/// | completed   | no          | no      | —         | yes    | yes           |
/// | closed      | no          | no      | no        | —      | yes           |
///
/// Moving to the status a ticket already has is a no-op, so a double click records nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    InProgress,
    Waiting,
    Completed,
    Closed,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Open,
        Status::InProgress,
        Status::Waiting,
        Status::Completed,
        Status::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::InProgress => "in_progress",
            Status::Waiting => "waiting",
            Status::Completed => "completed",
            Status::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// A human label ("in progress").
    pub fn label(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::InProgress => "in progress",
            Status::Waiting => "waiting",
            Status::Completed => "completed",
            Status::Closed => "closed",
        }
    }

    /// Completed and closed tickets are resolved; the rest are active.
    pub fn is_resolved(self) -> bool {
        matches!(self, Status::Completed | Status::Closed)
    }

    /// Whether the status machine allows `self → to` (see the table on [`Status`]).
    pub fn can_move_to(self, to: Status) -> bool {
        use Status::*;
        match (self, to) {
            (a, b) if a == b => false,
            (Open | Waiting, InProgress) => true,
            (Open | InProgress, Waiting) => true,
            (Open | InProgress | Waiting, Completed) => true,
            (Open | InProgress | Waiting | Completed, Closed) => true,
            (Completed | Closed, Open) => true,
            _ => false,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Where a ticket came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Slack,
    Discord,
    Email,
    Cli,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Slack => "slack",
            Source::Discord => "discord",
            Source::Email => "email",
            Source::Cli => "cli",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        [Source::Slack, Source::Discord, Source::Email, Source::Cli]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// The longest description a ticket may have, in characters.
pub const MAX_DESCRIPTION: usize = 4000;
/// The longest note, close reason or completion note, in characters.
pub const MAX_NOTE: usize = 4000;

/// A ticket description: 1 to 4,000 characters, no control characters but newlines and tabs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description(String);

impl Description {
    /// Validates user text as a description; the error says what to fix.
    pub fn parse(text: &str) -> Result<Description, TextError> {
        validate_text(text, MAX_DESCRIPTION).map(Description)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why user text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("the text is empty")]
    Empty,
    #[error("the text is {len} characters long; the limit is {max}")]
    TooLong { len: usize, max: usize },
    #[error("the text contains a control character (U+{0:04X}); remove it and try again")]
    Control(u32),
}

/// Trims `text` and checks it against `max` characters and control characters.
pub fn validate_text(text: &str, max: usize) -> Result<String, TextError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(TextError::Empty);
    }
    let len = text.chars().count();
    if len > max {
        return Err(TextError::TooLong { len, max });
    }
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() && *c != '\n' && *c != '\t' && *c != '\r')
    {
        return Err(TextError::Control(c as u32));
    }
    Ok(text.to_owned())
}

/// The contact a ticket is linked to, with the label cards show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactLink {
    pub individual: Option<(i64, String)>,
    pub organization: Option<(i64, String)>,
}

impl ContactLink {
    /// "Jane Doe <jane@acme.com> (Acme)", "Acme", …
    pub fn label(&self) -> String {
        match (&self.individual, &self.organization) {
            (Some((_, person)), Some((_, org))) => format!("{person} ({org})"),
            (Some((_, person)), None) => person.clone(),
            (None, Some((_, org))) => org.clone(),
            (None, None) => String::new(),
        }
    }
}

/// A ticket as the core sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: TicketId,
    pub desk: DeskId,
    pub no: TicketNo,
    pub description: String,
    pub priority: Priority,
    pub status: Status,
    pub assignee: Option<UserRef>,
    pub reporter: UserRef,
    /// Linked individual and/or organization; `None` until someone links one.
    pub contact: Option<ContactLink>,
    pub source: Source,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set once, by the first agent action that is not the reporter's own.
    pub first_response_at: Option<DateTime<Utc>>,
    /// Set when the ticket is completed or closed; cleared on reopen.
    pub resolved_at: Option<DateTime<Utc>>,
    /// The SLA clocks as last computed.
    #[serde(default)]
    pub sla: super::sla::SlaDue,
}

/// The kinds of timeline event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Created,
    Assigned,
    Status,
    Priority,
    Note,
    Contact,
    Email,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Assigned => "assigned",
            EventKind::Status => "status",
            EventKind::Priority => "priority",
            EventKind::Note => "note",
            EventKind::Contact => "contact",
            EventKind::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        use EventKind::*;
        [Created, Assigned, Status, Priority, Note, Contact, Email]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A timeline event about to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub actor: UserRef,
    pub kind: EventKind,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub note: Option<String>,
}

/// A timeline event as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub actor: UserRef,
    /// The actor's display name when the desk knows it.
    pub actor_name: Option<String>,
    pub kind: EventKind,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub note: Option<String>,
    pub at: DateTime<Utc>,
}

/// What someone does to an existing ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Assign to someone, or unassign with `None`.
    Assign(Option<UserRef>),
    /// Move to a status, with an optional note (completion note, close reason).
    Move(Status, Option<String>),
    SetPriority(Priority),
    Note(String),
    LinkContact(ContactLink),
    /// An email joined the ticket: `summary` says who wrote what; `outgoing` when the support
    /// mailbox sent it (a reply to the customer counts as a response).
    Email {
        summary: String,
        outgoing: bool,
    },
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("{no} is {from} and cannot move to {to}{hint}")]
    BadMove {
        no: TicketNo,
        from: Status,
        to: Status,
        hint: &'static str,
    },
}

/// The result of an action that changed something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub ticket: Ticket,
    pub events: Vec<NewEvent>,
}

impl Ticket {
    /// Applies `action` by `actor` at `now`. `Ok(None)` means nothing changed.
    pub fn apply(
        &self,
        action: &Action,
        actor: &UserRef,
        now: DateTime<Utc>,
    ) -> Result<Option<Applied>, TicketError> {
        let mut next = self.clone();
        let event =
            |kind, old: Option<String>, new: Option<String>, note: Option<String>| NewEvent {
                actor: actor.clone(),
                kind,
                old_value: old,
                new_value: new,
                note,
            };
        let ev = match action {
            Action::Assign(who) => {
                if &self.assignee == who {
                    return Ok(None);
                }
                next.assignee = who.clone();
                event(
                    EventKind::Assigned,
                    self.assignee.as_ref().map(UserRef::to_string),
                    who.as_ref().map(UserRef::to_string),
                    None,
                )
            }
            Action::Move(to, note) => {
                if self.status == *to {
                    return Ok(None);
                }
                if !self.status.can_move_to(*to) {
                    let hint = if self.status.is_resolved() && !to.is_resolved() {
                        "; reopen it first"
                    } else if *to == Status::Open {
                        "; it is not resolved"
                    } else {
                        ""
                    };
                    return Err(TicketError::BadMove {
                        no: self.no,
                        from: self.status,
                        to: *to,
                        hint,
                    });
                }
                next.status = *to;
                // Resolved when it first became so: completed and then closed is one
                // resolution (counted once by digests), not two.
                next.resolved_at = match (self.status.is_resolved(), to.is_resolved()) {
                    (true, true) => self.resolved_at.or(Some(now)),
                    (false, true) => Some(now),
                    (_, false) => None,
                };
                event(
                    EventKind::Status,
                    Some(self.status.as_str().into()),
                    Some(to.as_str().into()),
                    note.clone(),
                )
            }
            Action::SetPriority(p) => {
                if self.priority == *p {
                    return Ok(None);
                }
                next.priority = *p;
                event(
                    EventKind::Priority,
                    Some(self.priority.as_str().into()),
                    Some(p.as_str().into()),
                    None,
                )
            }
            Action::Note(text) => event(EventKind::Note, None, None, Some(text.clone())),
            Action::Email { summary, .. } => {
                event(EventKind::Email, None, None, Some(summary.clone()))
            }
            Action::LinkContact(link) => {
                if self.contact.as_ref() == Some(link) {
                    return Ok(None);
                }
                next.contact = Some(link.clone());
                event(
                    EventKind::Contact,
                    self.contact.as_ref().map(ContactLink::label),
                    Some(link.label()),
                    None,
                )
            }
        };
        if next.first_response_at.is_none() && counts_as_response(self, action, actor) {
            next.first_response_at = Some(now);
        }
        next.updated_at = now;
        Ok(Some(Applied {
            ticket: next,
            events: vec![ev],
        }))
    }
}

/// First response is met by the first action of someone other than the reporter that moves the
/// ticket out of `open` or adds a note.
fn counts_as_response(before: &Ticket, action: &Action, actor: &UserRef) -> bool {
    if actor == &before.reporter {
        return false;
    }
    match action {
        Action::Move(to, _) => before.status == Status::Open && *to != Status::Open,
        Action::Note(_) => true,
        Action::Email { outgoing, .. } => *outgoing,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ticket(status: Status) -> Ticket {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        Ticket {
            id: TicketId(1),
            desk: DeskId(1),
            no: TicketNo(7),
            description: "printer on fire".into(),
            priority: Priority::Medium,
            status,
            assignee: None,
            reporter: UserRef::slack("UREPORTER"),
            contact: None,
            source: Source::Slack,
            created_at: t0,
            updated_at: t0,
            first_response_at: None,
            sla: Default::default(),
            resolved_at: None,
        }
    }

    #[test]
    fn the_status_table_allows_exactly_the_documented_moves() {
        use Status::*;
        let allowed = [
            (Open, InProgress),
            (Open, Waiting),
            (Open, Completed),
            (Open, Closed),
            (InProgress, Waiting),
            (InProgress, Completed),
            (InProgress, Closed),
            (Waiting, InProgress),
            (Waiting, Completed),
            (Waiting, Closed),
            (Completed, Closed),
            (Completed, Open),
            (Closed, Open),
        ];
        for from in Status::ALL {
            for to in Status::ALL {
                assert_eq!(
                    from.can_move_to(to),
                    allowed.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    #[test]
    fn starting_a_started_ticket_records_nothing() {
        let t = ticket(Status::InProgress);
        let now = t.created_at;
        let out = t
            .apply(
                &Action::Move(Status::InProgress, None),
                &UserRef::slack("U1"),
                now,
            )
            .unwrap();
        assert!(out.is_none());
    }

    #[test]
    fn a_closed_ticket_must_be_reopened_before_it_is_started() {
        let t = ticket(Status::Closed);
        let err = t
            .apply(
                &Action::Move(Status::InProgress, None),
                &UserRef::slack("U1"),
                t.created_at,
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "#7 is closed and cannot move to in progress; reopen it first"
        );
    }

    #[test]
    fn reopening_clears_the_resolution_time() {
        let mut t = ticket(Status::Completed);
        t.resolved_at = Some(t.created_at);
        let applied = t
            .apply(
                &Action::Move(Status::Open, None),
                &UserRef::slack("U1"),
                t.created_at,
            )
            .unwrap()
            .unwrap();
        assert_eq!(applied.ticket.status, Status::Open);
        assert_eq!(applied.ticket.resolved_at, None);
    }

    #[test]
    fn closing_a_completed_ticket_keeps_its_resolution_time() {
        let mut t = ticket(Status::Completed);
        t.resolved_at = Some(t.created_at);
        let later = t.created_at + chrono::Duration::days(2);
        let applied = t
            .apply(
                &Action::Move(Status::Closed, None),
                &UserRef::slack("U1"),
                later,
            )
            .unwrap()
            .unwrap();
        assert_eq!(applied.ticket.status, Status::Closed);
        assert_eq!(applied.ticket.resolved_at, Some(t.created_at));
        // Completing an open ticket resolves it then.
        let open = ticket(Status::InProgress)
            .apply(
                &Action::Move(Status::Completed, None),
                &UserRef::slack("U1"),
                later,
            )
            .unwrap()
            .unwrap();
        assert_eq!(open.ticket.resolved_at, Some(later));
    }

    #[test]
    fn first_response_is_the_first_non_reporter_action_out_of_open() {
        let t = ticket(Status::Open);
        let later = t.created_at + chrono::Duration::minutes(5);
        let by_reporter = t
            .apply(
                &Action::Note("more info".into()),
                &t.reporter.clone(),
                later,
            )
            .unwrap()
            .unwrap();
        assert_eq!(by_reporter.ticket.first_response_at, None);
        let by_agent = t
            .apply(
                &Action::Move(Status::InProgress, None),
                &UserRef::slack("UAGENT"),
                later,
            )
            .unwrap()
            .unwrap();
        assert_eq!(by_agent.ticket.first_response_at, Some(later));
        let assigned = t
            .apply(
                &Action::Assign(Some(UserRef::slack("UAGENT"))),
                &UserRef::slack("UAGENT"),
                later,
            )
            .unwrap()
            .unwrap();
        assert_eq!(assigned.ticket.first_response_at, None);
    }

    #[test]
    fn descriptions_are_bounded_and_free_of_control_characters() {
        assert_eq!(Description::parse("  "), Err(TextError::Empty));
        assert!(Description::parse(&"é".repeat(4000)).is_ok());
        assert_eq!(
            Description::parse(&"é".repeat(4001)),
            Err(TextError::TooLong {
                len: 4001,
                max: 4000
            })
        );
        assert_eq!(Description::parse("a\u{0}b"), Err(TextError::Control(0)));
        assert!(Description::parse("line one\nline two; DROP TABLE tickets;--").is_ok());
    }

    #[test]
    fn ticket_numbers_parse_with_or_without_hash() {
        assert_eq!(TicketNo::parse("#42"), Some(TicketNo(42)));
        assert_eq!(TicketNo::parse("42"), Some(TicketNo(42)));
        assert_eq!(TicketNo::parse("0"), None);
        assert_eq!(TicketNo::parse("-1"), None);
        assert_eq!(TicketNo::parse("99999999999999999999"), None);
        assert_eq!(TicketNo::parse("4a"), None);
    }
}
