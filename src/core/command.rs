//! The typed `/ticket` command: what the Slack grammar parses text into and what the Discord
//! adapter builds from typed options. Both platforms then run the same code.

use chrono::NaiveDate;

use super::contact::ContactTarget;
use super::people::{Need, Role};
use super::sla::BusinessHours;
use super::ticket::{Priority, TicketNo};

/// A user named in a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// The person running the command.
    Me,
    /// A platform user id (Slack `U…`/`W…`, Discord snowflake).
    User(String),
    /// Nobody (unassign).
    Nobody,
}

/// The queue views of `list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListFilter {
    Open,
    Mine,
    Unassigned,
    Waiting,
    All,
    Priority(Priority),
    User(String),
}

impl ListFilter {
    /// The plain name of a filter with no argument (Discord choice values).
    pub fn parse_word(s: &str) -> Option<ListFilter> {
        Some(match s.to_ascii_lowercase().as_str() {
            "open" => ListFilter::Open,
            "mine" => ListFilter::Mine,
            "unassigned" => ListFilter::Unassigned,
            "waiting" => ListFilter::Waiting,
            "all" => ListFilter::All,
            other => ListFilter::Priority(Priority::parse(other)?),
        })
    }
}

/// Mail providers a mailbox can be connected from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Google,
    Microsoft,
}

impl Provider {
    pub fn parse(s: &str) -> Option<Provider> {
        match s.to_ascii_lowercase().as_str() {
            "google" | "gmail" => Some(Provider::Google),
            "microsoft" | "outlook" => Some(Provider::Microsoft),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Google => "google",
            Provider::Microsoft => "microsoft",
        }
    }
}

/// One `/ticket` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    New {
        priority: Option<Priority>,
        description: Option<String>,
    },
    Show {
        no: TicketNo,
    },
    List {
        filter: ListFilter,
    },
    Assign {
        no: TicketNo,
        who: Who,
    },
    Start {
        no: TicketNo,
    },
    Wait {
        no: TicketNo,
    },
    Complete {
        no: TicketNo,
        note: Option<String>,
    },
    Close {
        no: TicketNo,
        reason: Option<String>,
    },
    Reopen {
        no: TicketNo,
    },
    Priority {
        no: TicketNo,
        level: Priority,
    },
    Note {
        no: TicketNo,
        text: String,
    },
    Contact {
        no: TicketNo,
        target: ContactTarget,
        name: Option<String>,
    },
    History {
        target: ContactTarget,
    },
    Link {
        no: TicketNo,
        thread: String,
    },
    MailboxConnect {
        provider: Provider,
    },
    Channel,
    SlaShow,
    SlaSet {
        priority: Priority,
        first_response: std::time::Duration,
        resolution: std::time::Duration,
    },
    SlaHours(BusinessHours),
    SlaHoursOff,
    SlaHoliday {
        date: NaiveDate,
    },
    DigestNow,
    DigestSchedule {
        cron: String,
        timezone: Option<String>,
    },
    DigestOff,
    DigestMe {
        cron: String,
    },
    /// Stops the caller's own digest.
    DigestMeOff,
    DeskLink,
    DeskJoin {
        code: String,
        /// The joining surface's own tickets move into the shared desk, renumbered.
        merge: bool,
    },
    Role {
        user: String,
        role: Role,
    },
    Help {
        topic: Option<String>,
    },
}

impl Command {
    /// The ticket the command is about, if it names one.
    pub fn ticket(&self) -> Option<TicketNo> {
        use Command::*;
        match self {
            Show { no }
            | Assign { no, .. }
            | Start { no }
            | Wait { no }
            | Complete { no, .. }
            | Close { no, .. }
            | Reopen { no }
            | Priority { no, .. }
            | Note { no, .. }
            | Contact { no, .. }
            | Link { no, .. } => Some(*no),
            _ => None,
        }
    }

    /// Whether the command's answer, when it works, is for the whole channel (a card, a
    /// digest, a settings change) rather than for its author alone (a view, a link, help). A
    /// platform that must answer before the work is done (Discord's deferral) picks who sees
    /// the answer by this.
    pub fn answers_publicly(&self) -> bool {
        use Command::*;
        match self {
            New { .. }
            | Assign { .. }
            | Start { .. }
            | Wait { .. }
            | Complete { .. }
            | Close { .. }
            | Reopen { .. }
            | Priority { .. }
            | Note { .. }
            | Contact { .. }
            | Link { .. }
            | Channel
            | SlaSet { .. }
            | SlaHours(_)
            | SlaHoursOff
            | SlaHoliday { .. }
            | DigestNow
            | DigestSchedule { .. }
            | DigestOff
            | DeskJoin { .. } => true,
            Show { .. }
            | List { .. }
            | History { .. }
            | MailboxConnect { .. }
            | SlaShow
            | DigestMe { .. }
            | DigestMeOff
            | DeskLink
            | Role { .. }
            | Help { .. } => false,
        }
    }

    /// What the command needs of its actor.
    pub fn need(&self) -> Need {
        use Command::*;
        match self {
            New { .. }
            | Show { .. }
            | List { .. }
            | History { .. }
            | Help { .. }
            | SlaShow
            | DigestNow => Need::Member,
            Assign { .. }
            | Start { .. }
            | Wait { .. }
            | Complete { .. }
            | Close { .. }
            | Reopen { .. }
            | Priority { .. }
            | Note { .. }
            | Contact { .. }
            | Link { .. }
            | MailboxConnect { .. }
            | DigestMe { .. }
            | DigestMeOff => Need::Agent,
            Channel
            | SlaSet { .. }
            | SlaHours(_)
            | SlaHoursOff
            | SlaHoliday { .. }
            | DigestSchedule { .. }
            | DigestOff
            | DeskLink
            | DeskJoin { .. }
            | Role { .. } => Need::Admin,
        }
    }

    /// The subcommand's name, as in usage lines.
    pub fn name(&self) -> &'static str {
        use Command::*;
        match self {
            New { .. } => "new",
            Show { .. } => "show",
            List { .. } => "list",
            Assign { .. } => "assign",
            Start { .. } => "start",
            Wait { .. } => "wait",
            Complete { .. } => "complete",
            Close { .. } => "close",
            Reopen { .. } => "reopen",
            Priority { .. } => "priority",
            Note { .. } => "note",
            Contact { .. } => "contact",
            History { .. } => "history",
            Link { .. } => "link",
            MailboxConnect { .. } => "mailbox",
            Channel => "channel",
            SlaShow | SlaSet { .. } | SlaHours(_) | SlaHoursOff | SlaHoliday { .. } => "sla",
            DigestNow | DigestSchedule { .. } | DigestOff | DigestMe { .. } | DigestMeOff => {
                "digest"
            }
            DeskLink | DeskJoin { .. } => "desk",
            Role { .. } => "role",
            Help { .. } => "help",
        }
    }
}
