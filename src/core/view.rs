//! Neutral views: what a ticket card, a list and a reply say, before any platform renders them.
//!
//! A card is described once here and rendered twice (Block Kit in `slack/`, components in
//! `discord/`). Views carry people as [`UserRef`]s with names, so each renderer can mention
//! users of its own platform and name the others.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::contact::{HistoryLine, Individual, Organization};
use super::people::UserRef;
use super::ticket::{Event, EventKind, Priority, Status, Ticket, TicketNo};

/// A person as a view shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub user: UserRef,
    pub name: Option<String>,
}

impl Person {
    /// A plain-text label for platforms that cannot mention this user.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.user.id.clone())
    }
}

/// A button or menu entry on a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CardAction {
    AssignToMe,
    Start,
    Complete,
    Reopen,
    AddNote,
    LinkEmail,
    Close,
    SetPriority,
}

impl CardAction {
    /// The stable id carried in action ids and custom ids.
    pub fn id(self) -> &'static str {
        match self {
            CardAction::AssignToMe => "assign_me",
            CardAction::Start => "start",
            CardAction::Complete => "complete",
            CardAction::Reopen => "reopen",
            CardAction::AddNote => "note",
            CardAction::LinkEmail => "link",
            CardAction::Close => "close",
            CardAction::SetPriority => "priority",
        }
    }

    pub fn parse(id: &str) -> Option<CardAction> {
        use CardAction::*;
        [
            AssignToMe,
            Start,
            Complete,
            Reopen,
            AddNote,
            LinkEmail,
            Close,
            SetPriority,
        ]
        .into_iter()
        .find(|a| a.id() == id)
    }

    pub fn label(self) -> &'static str {
        match self {
            CardAction::AssignToMe => "Assign to me",
            CardAction::Start => "Start",
            CardAction::Complete => "Complete",
            CardAction::Reopen => "Reopen",
            CardAction::AddNote => "Add note",
            CardAction::LinkEmail => "Link email",
            CardAction::Close => "Close",
            CardAction::SetPriority => "Priority",
        }
    }
}

/// One ticket's card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    pub no: TicketNo,
    pub description: String,
    pub priority: Priority,
    pub status: Status,
    pub assignee: Option<Person>,
    pub contact: Option<String>,
    /// "first response due in 1h 20m", once the SLA clock runs.
    pub sla: Option<String>,
    /// The buttons that apply in this state, in order.
    pub buttons: Vec<CardAction>,
    /// The overflow menu's entries.
    pub menu: Vec<CardAction>,
}

impl Card {
    /// Describes `ticket` with its assignee's name.
    /// The card of `ticket` as of `now` (which words its SLA line).
    pub fn of(ticket: &Ticket, assignee_name: Option<String>, now: DateTime<Utc>) -> Card {
        let resolved = ticket.status.is_resolved();
        let mut buttons = Vec::new();
        if !resolved {
            buttons.push(CardAction::AssignToMe);
            if matches!(ticket.status, Status::Open | Status::Waiting) {
                buttons.push(CardAction::Start);
            }
            buttons.push(CardAction::Complete);
        } else {
            buttons.push(CardAction::Reopen);
        }
        let mut menu = vec![CardAction::AddNote, CardAction::LinkEmail];
        if ticket.status != Status::Closed {
            menu.push(CardAction::Close);
        }
        Card {
            no: ticket.no,
            description: ticket.description.clone(),
            priority: ticket.priority,
            status: ticket.status,
            assignee: ticket.assignee.clone().map(|user| Person {
                user,
                name: assignee_name,
            }),
            contact: ticket.contact.as_ref().map(|c| c.label()),
            sla: if resolved { None } else { ticket.sla.line(now) },
            buttons,
            menu,
        }
    }

    /// The one-line plain text that names the ticket (`text` / `content`).
    pub fn summary(&self) -> String {
        format!(
            "{} · {} · {} · {}",
            self.no,
            self.priority,
            self.status,
            first_line(&self.description, 120)
        )
    }
}

/// `text` with chat markup made inert, for text that comes from outside chat (an email) or is
/// quoted where it must not act (an alert's excerpt): a `<` that would open a mention
/// (`<@U1>`, `<#C1>`, `<!here>`) or a labelled link (`<https://evil|Your invoice>`) in Slack
/// or Discord becomes `‹`, so the text shows as written and pings nobody.
pub fn inert(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        let rest = &text[i + c.len_utf8()..];
        let opens = c == '<'
            && (rest.starts_with(['@', '#', '!'])
                || rest
                    .split('>')
                    .next()
                    .is_some_and(|inner| inner.contains('|') && inner.contains(':')));
        out.push(if opens { '‹' } else { c });
    }
    out
}

/// The first line of `text`, cut to `max` characters with an ellipsis.
pub fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    cut(line, max)
}

/// `text` cut to at most `max` characters, ending in `…` when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// One row of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub no: TicketNo,
    pub description: String,
    pub priority: Priority,
    pub status: Status,
    pub assignee: Option<Person>,
}

impl Row {
    pub fn of(ticket: &Ticket, assignee_name: Option<String>) -> Row {
        Row {
            no: ticket.no,
            description: first_line(&ticket.description, 80),
            priority: ticket.priority,
            status: ticket.status,
            assignee: ticket.assignee.clone().map(|user| Person {
                user,
                name: assignee_name,
            }),
        }
    }
}

/// A queue view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListView {
    pub title: String,
    pub rows: Vec<Row>,
    /// How many tickets matched in all (rows may be fewer).
    pub total: i64,
}

/// A queue line: "`*`#12`*` · urgent · in progress · @ann · Printer on fire", with the
/// platform's `bold` markup, its way of naming a person, and its escaping.
pub fn row_line(
    r: &Row,
    bold: &str,
    person: impl Fn(&Person) -> String,
    escape: impl Fn(&str) -> String,
) -> String {
    let who = r
        .assignee
        .as_ref()
        .map(person)
        .unwrap_or_else(|| "unassigned".into());
    format!(
        "{bold}{}{bold} · {} · {} · {who} · {}",
        r.no,
        r.priority,
        r.status,
        escape(&r.description)
    )
}

/// A contact-history line: number, status, priority, date and the description's start.
pub fn history_line(l: &HistoryLine, bold: &str, escape: impl Fn(&str) -> String) -> String {
    format!(
        "{bold}{}{bold} · {} · {} · {} · {}",
        l.no,
        l.status,
        l.priority,
        l.created_at.format("%Y-%m-%d"),
        escape(&cut(&l.description, 100))
    )
}

/// One line of a timeline, in words.
pub fn describe_event(e: &Event) -> String {
    let who = e.actor_name.clone().unwrap_or_else(|| e.actor.id.clone());
    let change = |what: &str| {
        format!(
            "{what} {} → {}",
            e.old_value.as_deref().map(label_value).unwrap_or("none"),
            e.new_value.as_deref().map(label_value).unwrap_or("none")
        )
    };
    let mut line = match e.kind {
        EventKind::Created => format!("created ({})", e.new_value.as_deref().unwrap_or("medium")),
        EventKind::Assigned => match &e.new_value {
            Some(_) => "assigned".to_owned(),
            None => "unassigned".to_owned(),
        },
        EventKind::Status => change("status"),
        EventKind::Priority => change("priority"),
        EventKind::Note => "note".to_owned(),
        EventKind::Contact => format!("contact → {}", e.new_value.as_deref().unwrap_or("none")),
        EventKind::Email => "email".to_owned(),
    };
    if let Some(note) = &e.note {
        line.push_str(": ");
        line.push_str(&cut(note, 300));
    }
    format!("{} · {} · {}", e.at.format("%Y-%m-%d %H:%M UTC"), who, line)
}

fn label_value(v: &str) -> &str {
    Status::parse(v).map(Status::label).unwrap_or(v)
}

/// A ticket with its timeline (`show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail {
    pub card: Card,
    /// Timeline lines, oldest first; the assignee of `assigned` events is resolved here.
    pub timeline: Vec<String>,
}

/// A contact's tickets (`history`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub title: String,
    pub lines: Vec<HistoryLine>,
    pub total: i64,
}

impl History {
    pub fn of_individual(i: &Individual, lines: Vec<HistoryLine>, total: i64) -> History {
        History {
            title: i.label(),
            lines,
            total,
        }
    }

    pub fn of_organization(o: &Organization, lines: Vec<HistoryLine>, total: i64) -> History {
        History {
            title: o.name.clone(),
            lines,
            total,
        }
    }
}

/// The plain text of a list of tickets (Slack `text`, Discord `content`), which names every
/// ticket it can as `#n`: "Open tickets: 12 — #5, #2, #1 and 9 more", within `max` characters.
pub fn counted_text(
    title: &str,
    total: i64,
    nos: impl IntoIterator<Item = TicketNo>,
    max: usize,
) -> String {
    let mut text = format!("{title}: {total}");
    let mut named = 0_i64;
    for no in nos {
        let part = format!("{}{no}", if named == 0 { " — " } else { ", " });
        // Room for " and 1234567 more" after it.
        if text.chars().count() + part.chars().count() + 17 > max {
            break;
        }
        text.push_str(&part);
        named += 1;
    }
    if named > 0 && named < total {
        text.push_str(&format!(" and {} more", total - named));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ticket::{DeskId, Source, TicketId};
    use chrono::Utc;

    #[test]
    fn outside_text_keeps_its_words_but_loses_its_markup() {
        assert_eq!(
            inert("Refund <https://evil.example|Open your invoice> <@U0ADMIN> <!channel> <#C1>"),
            "Refund ‹https://evil.example|Open your invoice> ‹@U0ADMIN> ‹!channel> ‹#C1>"
        );
        // Addresses, plain links and comparisons are left as written.
        let plain = "Jane <jane@acme.example> see <https://acme.example/x> if a < b";
        assert_eq!(inert(plain), plain);
    }

    fn ticket(status: Status) -> Ticket {
        Ticket {
            id: TicketId(1),
            desk: DeskId(1),
            no: TicketNo(3),
            description: "one\ntwo".into(),
            priority: Priority::High,
            status,
            assignee: None,
            reporter: UserRef::slack("U1"),
            contact: None,
            source: Source::Slack,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            first_response_at: None,
            sla: Default::default(),
            resolved_at: None,
        }
    }

    #[test]
    fn buttons_follow_the_status() {
        use CardAction::*;
        let b = |s| Card::of(&ticket(s), None, Utc::now()).buttons;
        assert_eq!(b(Status::Open), vec![AssignToMe, Start, Complete]);
        assert_eq!(b(Status::InProgress), vec![AssignToMe, Complete]);
        assert_eq!(b(Status::Waiting), vec![AssignToMe, Start, Complete]);
        assert_eq!(b(Status::Completed), vec![Reopen]);
        assert_eq!(b(Status::Closed), vec![Reopen]);
        assert!(
            !Card::of(&ticket(Status::Closed), None, Utc::now())
                .menu
                .contains(&Close)
        );
    }

    #[test]
    fn the_summary_names_the_ticket() {
        assert_eq!(
            Card::of(&ticket(Status::InProgress), None, Utc::now()).summary(),
            "#3 · high · in progress · one"
        );
    }

    #[test]
    fn cut_counts_characters_not_bytes() {
        assert_eq!(cut("äääää", 3), "ää…");
        assert_eq!(cut("abc", 3), "abc");
    }

    #[test]
    fn a_list_names_its_tickets_in_plain_text_within_the_limit() {
        let nos = |n: i64| (1..=n).rev().map(TicketNo);
        assert_eq!(
            counted_text("Open tickets", 0, nos(0), 100),
            "Open tickets: 0"
        );
        assert_eq!(
            counted_text("Open tickets", 3, nos(3), 100),
            "Open tickets: 3 — #3, #2, #1"
        );
        // Ten shown of twelve.
        assert_eq!(
            counted_text("Mine", 12, (3..=12).rev().map(TicketNo), 100),
            "Mine: 12 — #12, #11, #10, #9, #8, #7, #6, #5, #4, #3 and 2 more"
        );
        let long = counted_text("All tickets", 5000, nos(5000), 2000);
        assert!(long.chars().count() <= 2000, "{}", long.len());
        assert!(long.starts_with("All tickets: 5000 — #5000, #4999,"));
        assert!(long.ends_with(" more"));
    }
}
