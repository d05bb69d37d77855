//! The `/ticket` grammar: one pure parser from the text after `/ticket` to a [`Command`].
//!
//! Slack sends the text with `should_escape: true`, so users arrive as `<@U123|name>` or
//! `<@U123>`, channels as `<#C123|name>`, links as `<https://…|label>`, emails as
//! `<mailto:a@b.c|a@b.c>`, and the literal characters `&`, `<`, `>` as `&amp;`, `&lt;`, `&gt;`.
//! Words may be quoted with straight or curly double quotes. Errors are typed and render as a
//! one-line usage hint for the subcommand at fault.

use std::time::Duration;

use chrono::NaiveDate;

use super::command::{Command, ListFilter, Provider, Who};
use super::contact::ContactTarget;
use super::people::Role;
use super::sla::BusinessHours;
use super::ticket::{MAX_NOTE, Priority, TicketNo, validate_text};

/// Usage lines, one per subcommand; `help` prints them all.
pub const USAGE: &[(&str, &str)] = &[
    ("new", "new [priority] <description>"),
    ("show", "show <n>"),
    (
        "list",
        "list [open|mine|unassigned|waiting|all|<priority>|@user]",
    ),
    ("assign", "assign <n> <@user|me|none>"),
    ("start", "start <n>"),
    ("wait", "wait <n>"),
    ("complete", "complete <n> [note]"),
    ("close", "close <n> [reason]"),
    ("reopen", "reopen <n>"),
    ("priority", "priority <n> <low|medium|high|urgent>"),
    ("note", "note <n> <text>"),
    ("contact", "contact <n> <email|organization> [name]"),
    ("history", "history <email|organization>"),
    ("link", "link <n> <gmail or outlook thread>"),
    ("mailbox", "mailbox connect <google|microsoft>"),
    ("channel", "channel"),
    (
        "sla",
        "sla [<priority> <first-response> <resolution>] · sla hours <days> <HH:MM-HH:MM> <timezone> · sla hours off · sla holiday <YYYY-MM-DD>",
    ),
    (
        "digest",
        "digest [now | schedule \"<cron>\" [timezone] | off | me \"<cron>\" | me off]",
    ),
    ("desk", "desk link · desk join <code> [merge]"),
    ("role", "role <@user> <admin|agent|member>"),
    ("help", "help [subcommand]"),
];

/// The usage line of a subcommand.
pub fn usage(sub: &str) -> &'static str {
    USAGE
        .iter()
        .find(|(name, _)| *name == sub)
        .map(|(_, u)| *u)
        .unwrap_or("help")
}

/// Why text did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{what}. Usage: /ticket {}", usage(sub))]
    Usage { sub: &'static str, what: String },
    #[error("unknown subcommand {0:?}. Try /ticket help")]
    Unknown(String),
}

impl ParseError {
    fn usage(sub: &'static str, what: impl Into<String>) -> ParseError {
        ParseError::Usage {
            sub,
            what: what.into(),
        }
    }
}

/// The shortest and longest SLA targets.
pub const MIN_TARGET: Duration = Duration::from_secs(30);
pub const MAX_TARGET: Duration = Duration::from_secs(90 * 24 * 3600);

/// One token of command text, with its byte span in the original.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    kind: Kind,
    start: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// A bare word, entities decoded; links and mailto markup reduced to their target.
    Word(String),
    /// A quoted string, quotes removed.
    Quoted(String),
    /// `<@U123>` or `<@U123|name>`.
    User(String),
    /// `<#C123>` or `<#C123|name>`.
    Channel(String),
}

impl Token {
    fn text(&self) -> &str {
        match &self.kind {
            Kind::Word(s) | Kind::Quoted(s) | Kind::User(s) | Kind::Channel(s) => s,
        }
    }
}

/// Decodes the three entities Slack escapes.
pub fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '<'
            && let Some(close) = text[start..].find('>')
        {
            let inner = &text[start + 1..start + close];
            let end = start + close + 1;
            while chars.peek().is_some_and(|&(i, _)| i < end) {
                chars.next();
            }
            let target = inner.split('|').next().unwrap_or_default();
            let kind = if let Some(id) = target.strip_prefix('@') {
                Kind::User(id.trim_start_matches('!').to_owned())
            } else if let Some(id) = target.strip_prefix('#') {
                Kind::Channel(id.to_owned())
            } else if let Some(mail) = target.strip_prefix("mailto:") {
                Kind::Word(unescape(mail))
            } else {
                Kind::Word(unescape(target))
            };
            out.push(Token { kind, start });
            continue;
        }
        if let Some(closing) = closing_quote(c) {
            chars.next();
            let mut s = String::new();
            let mut closed = false;
            for (_, ch) in chars.by_ref() {
                if ch == closing || (closing == '"' && ch == '\u{201D}') {
                    closed = true;
                    break;
                }
                s.push(ch);
            }
            let _ = closed; // An unclosed quote runs to the end of the text, leniently.
            out.push(Token {
                kind: Kind::Quoted(unescape(&s)),
                start,
            });
            continue;
        }
        let mut end = text.len();
        while let Some(&(i, ch)) = chars.peek() {
            if ch.is_whitespace() {
                end = i;
                break;
            }
            chars.next();
        }
        out.push(Token {
            kind: Kind::Word(unescape(&text[start..end])),
            start,
        });
    }
    out
}

fn closing_quote(c: char) -> Option<char> {
    match c {
        '"' => Some('"'),
        '\u{201C}' => Some('\u{201D}'),
        _ => None,
    }
}

/// The parser's view of the text: tokens plus access to the raw remainder.
struct Input<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    sub: &'static str,
    /// The ticket the command named, once read: its errors name it too.
    ticket: std::cell::Cell<Option<TicketNo>>,
}

impl Input<'_> {
    fn word(&self, i: usize) -> Option<&str> {
        self.tokens.get(i).map(Token::text)
    }

    fn len(&self) -> usize {
        self.tokens.len()
    }

    /// The free text from token `i` on: the raw remainder with entities decoded, or a single
    /// quoted string's contents. `None` when there is nothing.
    fn rest(&self, i: usize) -> Option<String> {
        let tok = self.tokens.get(i)?;
        if self.tokens.len() == i + 1
            && let Kind::Quoted(s) = &tok.kind
        {
            return Some(s.clone());
        }
        let raw = self.text[tok.start..].trim();
        Some(unescape(raw))
    }

    /// A contact named from token `i` on: a single token as it reads (an email, Slack's
    /// `<mailto:…|…>` markup reduced to the address; a quoted name), or else the free text from
    /// there (an organization of several words).
    fn contact(&self, i: usize) -> Option<String> {
        match self.tokens.len().checked_sub(i)? {
            1 => self.word(i).map(str::to_owned),
            _ => self.rest(i),
        }
    }

    fn err(&self, what: impl Into<String>) -> ParseError {
        match self.ticket.get() {
            Some(no) => ParseError::usage(self.sub, format!("{no}: {}", what.into())),
            None => ParseError::usage(self.sub, what),
        }
    }

    fn no(&self, i: usize) -> Result<TicketNo, ParseError> {
        match self.word(i) {
            None => Err(self.err("which ticket? Give its number")),
            Some(w) => {
                let no = TicketNo::parse(w)
                    .ok_or_else(|| self.err(format!("{w:?} is not a ticket number")))?;
                self.ticket.set(Some(no));
                Ok(no)
            }
        }
    }

    fn no_more(&self, i: usize) -> Result<(), ParseError> {
        match self.word(i) {
            None => Ok(()),
            Some(w) => Err(self.err(format!("unexpected {w:?}"))),
        }
    }

    fn text_from(&self, i: usize, what: &str) -> Result<Option<String>, ParseError> {
        match self.rest(i) {
            None => Ok(None),
            Some(s) => validate_text(&s, MAX_NOTE)
                .map(Some)
                .map_err(|e| self.err(format!("the {what} is not valid: {e}"))),
        }
    }
}

/// Parses the text after `/ticket`. Never panics.
pub fn parse(text: &str) -> Result<Command, ParseError> {
    parse_tokens(text, tokenize(text))
}

/// One typed argument, as Discord's options deliver them: no markup to decode, and free text
/// that is one argument however many words it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// A word: a subcommand name, a number, a choice.
    Word(String),
    /// A user id.
    User(String),
    /// Free text (a description, a note, an organization name).
    Text(String),
}

/// Parses typed arguments with the same rules as [`parse`], so both platforms accept and
/// refuse the same things with the same messages.
pub fn parse_parts(parts: &[Part]) -> Result<Command, ParseError> {
    let mut text = String::new();
    let mut tokens = Vec::with_capacity(parts.len());
    for part in parts {
        if !text.is_empty() {
            text.push(' ');
        }
        let start = text.len();
        let kind = match part {
            Part::Word(w) => {
                text.push_str(w);
                Kind::Word(w.clone())
            }
            Part::User(id) => {
                text.push_str(&format!("<@{id}>"));
                Kind::User(id.clone())
            }
            Part::Text(t) => {
                text.push('"');
                text.push_str(t);
                text.push('"');
                Kind::Quoted(t.clone())
            }
        };
        tokens.push(Token { kind, start });
    }
    parse_tokens(&text, tokens)
}

fn parse_tokens(text: &str, tokens: Vec<Token>) -> Result<Command, ParseError> {
    let Some(first) = tokens.first() else {
        return Ok(Command::Help { topic: None });
    };
    let head = first.text().to_lowercase();
    let sub = USAGE
        .iter()
        .map(|(name, _)| *name)
        .find(|name| *name == head)
        .ok_or_else(|| ParseError::Unknown(truncate(first.text(), 40)))?;
    let input = Input {
        text,
        tokens,
        sub,
        ticket: std::cell::Cell::new(None),
    };
    parse_sub(&input)
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn parse_sub(inp: &Input<'_>) -> Result<Command, ParseError> {
    let cmd = match inp.sub {
        "new" => {
            let priority = inp
                .tokens
                .get(1)
                .filter(|t| matches!(t.kind, Kind::Word(_)))
                .and_then(|t| Priority::parse(t.text()));
            let from = if priority.is_some() { 2 } else { 1 };
            let description = match inp.rest(from) {
                None => None,
                Some(s) => Some(
                    super::ticket::Description::parse(&s)
                        .map_err(|e| inp.err(format!("the description is not valid: {e}")))?
                        .as_str()
                        .to_owned(),
                ),
            };
            Command::New {
                priority,
                description,
            }
        }
        "show" => {
            let no = inp.no(1)?;
            inp.no_more(2)?;
            Command::Show { no }
        }
        "list" => {
            let filter = match inp.tokens.get(1) {
                None => ListFilter::Open,
                Some(Token {
                    kind: Kind::User(id),
                    ..
                }) => ListFilter::User(id.clone()),
                Some(t) => ListFilter::parse_word(t.text())
                    .ok_or_else(|| inp.err(format!("{:?} is not a list filter", t.text())))?,
            };
            inp.no_more(2)?;
            Command::List { filter }
        }
        "assign" => {
            let no = inp.no(1)?;
            let who = match inp.tokens.get(2) {
                None => return Err(inp.err("assign to whom? Mention a user or say me")),
                Some(Token {
                    kind: Kind::User(id),
                    ..
                }) => Who::User(id.clone()),
                Some(t) => match t.text().to_lowercase().as_str() {
                    "me" => Who::Me,
                    "none" | "nobody" => Who::Nobody,
                    other if other.starts_with('@') => {
                        return Err(inp.err(format!(
                            "{} is not a mention Slack linked; pick the user from the @ menu",
                            t.text()
                        )));
                    }
                    _ => return Err(inp.err(format!("{:?} is not a user", t.text()))),
                },
            };
            inp.no_more(3)?;
            Command::Assign { no, who }
        }
        "start" | "wait" | "reopen" => {
            let no = inp.no(1)?;
            inp.no_more(2)?;
            match inp.sub {
                "start" => Command::Start { no },
                "wait" => Command::Wait { no },
                _ => Command::Reopen { no },
            }
        }
        "complete" => Command::Complete {
            no: inp.no(1)?,
            note: inp.text_from(2, "note")?,
        },
        "close" => Command::Close {
            no: inp.no(1)?,
            reason: inp.text_from(2, "reason")?,
        },
        "priority" => {
            let no = inp.no(1)?;
            let level = match inp.word(2) {
                None => return Err(inp.err("which priority?")),
                Some(w) => {
                    Priority::parse(w).ok_or_else(|| inp.err(format!("{w:?} is not a priority")))?
                }
            };
            inp.no_more(3)?;
            Command::Priority { no, level }
        }
        "note" => Command::Note {
            no: inp.no(1)?,
            text: inp
                .text_from(2, "note")?
                .ok_or_else(|| inp.err("the note is empty"))?,
        },
        "contact" => {
            let no = inp.no(1)?;
            let Some(first) = inp.word(2) else {
                return Err(inp.err("give an email address or an organization name"));
            };
            if first.contains('@') {
                let target = ContactTarget::parse(first)
                    .ok_or_else(|| inp.err(format!("{first:?} is not an email address")))?;
                let name = inp.text_from(3, "name")?.map(|n| truncate(&n, 200));
                Command::Contact { no, target, name }
            } else {
                let org = inp.contact(2).unwrap_or_default();
                let target = ContactTarget::parse(&org)
                    .ok_or_else(|| inp.err("the organization name is not valid"))?;
                Command::Contact {
                    no,
                    target,
                    name: None,
                }
            }
        }
        "history" => {
            let rest = inp
                .contact(1)
                .ok_or_else(|| inp.err("whose history? Give an email or an organization"))?;
            let target = ContactTarget::parse(&rest)
                .ok_or_else(|| inp.err(format!("{rest:?} is not an email or organization")))?;
            Command::History { target }
        }
        "link" => {
            let no = inp.no(1)?;
            let thread = inp
                .word(2)
                .ok_or_else(|| inp.err("which thread? Paste its URL or id"))?;
            inp.no_more(3)?;
            Command::Link {
                no,
                thread: thread.to_owned(),
            }
        }
        "mailbox" => {
            if !inp
                .word(1)
                .is_some_and(|w| w.eq_ignore_ascii_case("connect"))
            {
                return Err(inp.err("say mailbox connect google or mailbox connect microsoft"));
            }
            let provider = inp
                .word(2)
                .and_then(Provider::parse)
                .ok_or_else(|| inp.err("connect google or microsoft"))?;
            inp.no_more(3)?;
            Command::MailboxConnect { provider }
        }
        "channel" => {
            inp.no_more(1)?;
            Command::Channel
        }
        "sla" => parse_sla(inp)?,
        "digest" => parse_digest(inp)?,
        "desk" => match inp.word(1).map(str::to_lowercase).as_deref() {
            Some("link") => {
                inp.no_more(2)?;
                Command::DeskLink
            }
            Some("join") => {
                let code = inp
                    .word(2)
                    .ok_or_else(|| inp.err("join with which code?"))?;
                let merge = match inp.word(3).map(str::to_lowercase).as_deref() {
                    None => false,
                    Some("merge") => true,
                    Some(other) => return Err(inp.err(format!("unexpected {other:?}"))),
                };
                inp.no_more(4)?;
                Command::DeskJoin {
                    code: truncate(code, 64),
                    merge,
                }
            }
            _ => return Err(inp.err("say desk link or desk join <code>")),
        },
        "role" => {
            let user = match inp.tokens.get(1) {
                Some(Token {
                    kind: Kind::User(id),
                    ..
                }) => id.clone(),
                _ => return Err(inp.err("mention the user whose role to set")),
            };
            let role = inp
                .word(2)
                .and_then(Role::parse)
                .ok_or_else(|| inp.err("the role is admin, agent or member"))?;
            inp.no_more(3)?;
            Command::Role { user, role }
        }
        _ => {
            let topic = inp.word(1).map(|w| truncate(&w.to_lowercase(), 20));
            Command::Help { topic }
        }
    };
    Ok(cmd)
}

fn parse_sla(inp: &Input<'_>) -> Result<Command, ParseError> {
    let Some(first) = inp.word(1).map(str::to_lowercase) else {
        return Ok(Command::SlaShow);
    };
    match first.as_str() {
        "show" => {
            inp.no_more(2)?;
            Ok(Command::SlaShow)
        }
        "hours" => {
            if inp.word(2).is_some_and(|w| w.eq_ignore_ascii_case("off")) {
                inp.no_more(3)?;
                return Ok(Command::SlaHoursOff);
            }
            let (Some(days), Some(hours), Some(tz)) = (inp.word(2), inp.word(3), inp.word(4))
            else {
                return Err(inp.err(
                    "give days, hours and a timezone, like Mon-Fri 09:00-17:00 Europe/Helsinki",
                ));
            };
            inp.no_more(5)?;
            // The SLA calendar's own parser, so what is accepted here is what it counts.
            let hours = BusinessHours::parse(days, hours, tz)
                .map_err(|e| inp.err(format!("{e}, like Mon-Fri 09:00-17:00 Europe/Helsinki")))?;
            Ok(Command::SlaHours(hours))
        }
        "holiday" => {
            let date = inp
                .word(2)
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .ok_or_else(|| inp.err("give the date as YYYY-MM-DD"))?;
            inp.no_more(3)?;
            Ok(Command::SlaHoliday { date })
        }
        _ => {
            let at = if first == "set" { 2 } else { 1 };
            let priority = inp
                .word(at)
                .and_then(Priority::parse)
                .ok_or_else(|| inp.err("start with a priority: low, medium, high or urgent"))?;
            let (Some(f), Some(r)) = (inp.word(at + 1), inp.word(at + 2)) else {
                return Err(inp.err("give a first-response and a resolution target, like 4h 2d"));
            };
            inp.no_more(at + 3)?;
            let first_response = parse_target(f).map_err(|e| inp.err(e))?;
            let resolution = parse_target(r).map_err(|e| inp.err(e))?;
            Ok(Command::SlaSet {
                priority,
                first_response,
                resolution,
            })
        }
    }
}

fn parse_digest(inp: &Input<'_>) -> Result<Command, ParseError> {
    let Some(first) = inp.word(1).map(str::to_lowercase) else {
        return Ok(Command::DigestNow);
    };
    match first.as_str() {
        "now" => {
            inp.no_more(2)?;
            Ok(Command::DigestNow)
        }
        "off" => {
            inp.no_more(2)?;
            Ok(Command::DigestOff)
        }
        "me" if inp.word(2).is_some_and(|w| w.eq_ignore_ascii_case("off")) => {
            inp.no_more(3)?;
            Ok(Command::DigestMeOff)
        }
        "schedule" | "me" => {
            let (cron, next) = cron_arg(inp, 2)?;
            if first == "me" {
                inp.no_more(next)?;
                return Ok(Command::DigestMe { cron });
            }
            let timezone = inp.word(next).map(str::to_owned);
            inp.no_more(next + 1)?;
            Ok(Command::DigestSchedule { cron, timezone })
        }
        other => Err(inp.err(format!("{other:?} is not a digest action"))),
    }
}

/// A cron expression: one quoted token, or 5 or 6 bare words. Returns it and the next index.
fn cron_arg(inp: &Input<'_>, at: usize) -> Result<(String, usize), ParseError> {
    match inp.tokens.get(at) {
        None => Err(inp.err("give a schedule in quotes, like \"0 9 * * 1-5\"")),
        Some(Token {
            kind: Kind::Quoted(s),
            ..
        }) => {
            let fields = s.split_whitespace().count();
            if !(5..=6).contains(&fields) {
                return Err(inp.err(format!(
                    "a cron schedule has 5 or 6 fields, not {fields}, like \"0 9 * * 1-5\""
                )));
            }
            Ok((s.split_whitespace().collect::<Vec<_>>().join(" "), at + 1))
        }
        Some(_) => {
            let words: Vec<&str> = (at..inp.len())
                .filter_map(|i| inp.word(i))
                .take_while(|w| !is_timezone(w))
                .collect();
            if !(5..=6).contains(&words.len()) {
                return Err(inp.err("put the schedule in quotes, like \"0 9 * * 1-5\""));
            }
            Ok((words.join(" "), at + words.len()))
        }
    }
}

fn is_timezone(w: &str) -> bool {
    w.contains('/') && w.chars().next().is_some_and(char::is_alphabetic)
        || matches!(w, "UTC" | "GMT" | "Z")
}

/// Parses a duration like `30s`, `15m`, `4h`, `2d`, `1w` or `1h30m`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim().to_ascii_lowercase();
    if s.is_empty() || s.len() > 32 {
        return None;
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return None,
        };
        let n: u64 = num.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        num.clear();
    }
    if !num.is_empty() {
        return None;
    }
    Some(Duration::from_secs(total))
}

fn parse_target(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s).ok_or_else(|| format!("{s:?} is not a duration like 30m or 4h"))?;
    if d < MIN_TARGET || d > MAX_TARGET {
        return Err(format!("{s} is outside 30s to 90d"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::contact::Email;

    fn no(n: i64) -> TicketNo {
        TicketNo(n)
    }

    #[test]
    fn every_subcommand_parses_from_slack_text() {
        let h = |h, m| chrono::NaiveTime::from_hms_opt(h, m, 0).unwrap();
        let cases: Vec<(&str, Command)> = vec![
            ("", Command::Help { topic: None }),
            ("   ", Command::Help { topic: None }),
            ("help", Command::Help { topic: None }),
            (
                "help sla",
                Command::Help {
                    topic: Some("sla".into()),
                },
            ),
            (
                "new",
                Command::New {
                    priority: None,
                    description: None,
                },
            ),
            (
                "new urgent",
                Command::New {
                    priority: Some(Priority::Urgent),
                    description: None,
                },
            ),
            (
                "new  Printer   on fire ",
                Command::New {
                    priority: None,
                    description: Some("Printer   on fire".into()),
                },
            ),
            (
                "NEW high VPN down for <@U024BE7LH|bob> &amp; team",
                Command::New {
                    priority: Some(Priority::High),
                    description: Some("VPN down for <@U024BE7LH|bob> & team".into()),
                },
            ),
            (
                "new \"low disk\"",
                Command::New {
                    priority: None,
                    description: Some("low disk".into()),
                },
            ),
            (
                "new “smart quotes”",
                Command::New {
                    priority: None,
                    description: Some("smart quotes".into()),
                },
            ),
            ("show 12", Command::Show { no: no(12) }),
            ("show #12", Command::Show { no: no(12) }),
            (
                "list",
                Command::List {
                    filter: ListFilter::Open,
                },
            ),
            (
                "list mine",
                Command::List {
                    filter: ListFilter::Mine,
                },
            ),
            (
                "list unassigned",
                Command::List {
                    filter: ListFilter::Unassigned,
                },
            ),
            (
                "list waiting",
                Command::List {
                    filter: ListFilter::Waiting,
                },
            ),
            (
                "list all",
                Command::List {
                    filter: ListFilter::All,
                },
            ),
            (
                "list Urgent",
                Command::List {
                    filter: ListFilter::Priority(Priority::Urgent),
                },
            ),
            (
                "list <@U123|alice>",
                Command::List {
                    filter: ListFilter::User("U123".into()),
                },
            ),
            (
                "assign 3 <@U123|alice>",
                Command::Assign {
                    no: no(3),
                    who: Who::User("U123".into()),
                },
            ),
            (
                "assign 3 <@W0123>",
                Command::Assign {
                    no: no(3),
                    who: Who::User("W0123".into()),
                },
            ),
            (
                "assign #3 me",
                Command::Assign {
                    no: no(3),
                    who: Who::Me,
                },
            ),
            (
                "assign 3 none",
                Command::Assign {
                    no: no(3),
                    who: Who::Nobody,
                },
            ),
            ("start 4", Command::Start { no: no(4) }),
            ("wait 4", Command::Wait { no: no(4) }),
            ("reopen 4", Command::Reopen { no: no(4) }),
            (
                "complete 4",
                Command::Complete {
                    no: no(4),
                    note: None,
                },
            ),
            (
                "complete 4 replaced the toner",
                Command::Complete {
                    no: no(4),
                    note: Some("replaced the toner".into()),
                },
            ),
            (
                "close 4",
                Command::Close {
                    no: no(4),
                    reason: None,
                },
            ),
            (
                "close 4 duplicate of #2",
                Command::Close {
                    no: no(4),
                    reason: Some("duplicate of #2".into()),
                },
            ),
            (
                "priority 4 HIGH",
                Command::Priority {
                    no: no(4),
                    level: Priority::High,
                },
            ),
            (
                "note 4 called them; <#C111|support> knows",
                Command::Note {
                    no: no(4),
                    text: "called them; <#C111|support> knows".into(),
                },
            ),
            (
                "contact 4 <mailto:Jane@Acme.com|Jane@Acme.com> Jane Doe",
                Command::Contact {
                    no: no(4),
                    target: ContactTarget::Individual(Email::parse("jane@acme.com").unwrap()),
                    name: Some("Jane Doe".into()),
                },
            ),
            (
                "contact 4 jane@acme.com",
                Command::Contact {
                    no: no(4),
                    target: ContactTarget::Individual(Email::parse("jane@acme.com").unwrap()),
                    name: None,
                },
            ),
            (
                "contact 4 Acme Oy",
                Command::Contact {
                    no: no(4),
                    target: ContactTarget::Organization("Acme Oy".into()),
                    name: None,
                },
            ),
            (
                "history jane@acme.com",
                Command::History {
                    target: ContactTarget::Individual(Email::parse("jane@acme.com").unwrap()),
                },
            ),
            (
                "history \"Acme Oy\"",
                Command::History {
                    target: ContactTarget::Organization("Acme Oy".into()),
                },
            ),
            (
                "history <mailto:Jane@Acme.com|Jane@Acme.com>",
                Command::History {
                    target: ContactTarget::Individual(Email::parse("jane@acme.com").unwrap()),
                },
            ),
            (
                "history Acme &amp; Sons",
                Command::History {
                    target: ContactTarget::Organization("Acme & Sons".into()),
                },
            ),
            (
                "contact 4 <mailto:sales@acme.com|sales@acme.com>",
                Command::Contact {
                    no: no(4),
                    target: ContactTarget::Individual(Email::parse("sales@acme.com").unwrap()),
                    name: None,
                },
            ),
            (
                "link 4 <https://mail.google.com/mail/u/0/#inbox/FMfcgz|thread>",
                Command::Link {
                    no: no(4),
                    thread: "https://mail.google.com/mail/u/0/#inbox/FMfcgz".into(),
                },
            ),
            (
                "link 4 18c2f0a9b1d2e3f4",
                Command::Link {
                    no: no(4),
                    thread: "18c2f0a9b1d2e3f4".into(),
                },
            ),
            (
                "mailbox connect google",
                Command::MailboxConnect {
                    provider: Provider::Google,
                },
            ),
            (
                "mailbox connect Microsoft",
                Command::MailboxConnect {
                    provider: Provider::Microsoft,
                },
            ),
            ("channel", Command::Channel),
            ("sla", Command::SlaShow),
            ("sla show", Command::SlaShow),
            (
                "sla urgent 30m 4h",
                Command::SlaSet {
                    priority: Priority::Urgent,
                    first_response: Duration::from_secs(1800),
                    resolution: Duration::from_secs(4 * 3600),
                },
            ),
            (
                "sla set low 1d 1w",
                Command::SlaSet {
                    priority: Priority::Low,
                    first_response: Duration::from_secs(86_400),
                    resolution: Duration::from_secs(7 * 86_400),
                },
            ),
            (
                "sla hours Mon-Fri 09:00-17:00 Europe/Helsinki",
                Command::SlaHours(BusinessHours {
                    days: [true, true, true, true, true, false, false],
                    open: h(9, 0),
                    close: h(17, 0),
                    tz: chrono_tz::Europe::Helsinki,
                }),
            ),
            (
                "sla hours Sun-Tue,Fri 08:30-16:00 America/New_York",
                Command::SlaHours(BusinessHours {
                    days: [true, true, false, false, true, false, true],
                    open: h(8, 30),
                    close: h(16, 0),
                    tz: chrono_tz::America::New_York,
                }),
            ),
            (
                // The whole day, in any case: what the SLA calendar itself accepts.
                "sla hours daily 00:00-24:00 europe/helsinki",
                Command::SlaHours(BusinessHours {
                    days: [true; 7],
                    open: h(0, 0),
                    close: h(0, 0),
                    tz: chrono_tz::Europe::Helsinki,
                }),
            ),
            ("sla hours off", Command::SlaHoursOff),
            (
                "sla holiday 2026-12-24",
                Command::SlaHoliday {
                    date: NaiveDate::from_ymd_opt(2026, 12, 24).unwrap(),
                },
            ),
            ("digest", Command::DigestNow),
            ("digest now", Command::DigestNow),
            ("digest off", Command::DigestOff),
            (
                "digest schedule \"0 9 * * 1-5\"",
                Command::DigestSchedule {
                    cron: "0 9 * * 1-5".into(),
                    timezone: None,
                },
            ),
            (
                "digest schedule “0 0 9 * * MON-FRI” Europe/Helsinki",
                Command::DigestSchedule {
                    cron: "0 0 9 * * MON-FRI".into(),
                    timezone: Some("Europe/Helsinki".into()),
                },
            ),
            (
                "digest schedule 0 9 * * 1-5 UTC",
                Command::DigestSchedule {
                    cron: "0 9 * * 1-5".into(),
                    timezone: Some("UTC".into()),
                },
            ),
            (
                "digest me \"30 8 * * *\"",
                Command::DigestMe {
                    cron: "30 8 * * *".into(),
                },
            ),
            ("digest me off", Command::DigestMeOff),
            ("digest me \"off\"", Command::DigestMeOff),
            ("desk link", Command::DeskLink),
            (
                "desk join ABCD-1234",
                Command::DeskJoin {
                    code: "ABCD-1234".into(),
                    merge: false,
                },
            ),
            (
                "desk join ABCD-1234 merge",
                Command::DeskJoin {
                    code: "ABCD-1234".into(),
                    merge: true,
                },
            ),
            (
                "role <@U9|zed> agent",
                Command::Role {
                    user: "U9".into(),
                    role: Role::Agent,
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn errors_carry_the_subcommands_usage() {
        let cases = [
            (
                "show",
                "which ticket? Give its number. Usage: /ticket show <n>",
            ),
            (
                "show x",
                "\"x\" is not a ticket number. Usage: /ticket show <n>",
            ),
            ("show 1 2", "#1: unexpected \"2\". Usage: /ticket show <n>"),
            (
                "assign 1",
                "#1: assign to whom? Mention a user or say me. Usage: /ticket assign <n> <@user|me|none>",
            ),
            (
                "assign 1 @bob",
                "#1: @bob is not a mention Slack linked; pick the user from the @ menu. Usage: /ticket assign <n> <@user|me|none>",
            ),
            (
                "priority 1 extreme",
                "#1: \"extreme\" is not a priority. Usage: /ticket priority <n> <low|medium|high|urgent>",
            ),
            (
                "note 1",
                "#1: the note is empty. Usage: /ticket note <n> <text>",
            ),
            (
                "list sideways",
                "\"sideways\" is not a list filter. Usage: /ticket list [open|mine|unassigned|waiting|all|<priority>|@user]",
            ),
            (
                "frobnicate 1",
                "unknown subcommand \"frobnicate\". Try /ticket help",
            ),
            (
                "sla urgent 10s 4h",
                "10s is outside 30s to 90d. Usage: /ticket sla [<priority> <first-response> <resolution>] · sla hours <days> <HH:MM-HH:MM> <timezone> · sla hours off · sla holiday <YYYY-MM-DD>",
            ),
            (
                "digest schedule \"0 9 * *\"",
                "a cron schedule has 5 or 6 fields, not 4, like \"0 9 * * 1-5\". Usage: /ticket digest [now | schedule \"<cron>\" [timezone] | off | me \"<cron>\" | me off]",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).unwrap_err().to_string(), want, "{text:?}");
        }
    }

    #[test]
    fn a_description_over_four_thousand_characters_is_refused() {
        let long = format!("new {}", "x".repeat(4001));
        let err = parse(&long).unwrap_err().to_string();
        assert!(
            err.contains("4001 characters long; the limit is 4000"),
            "{err}"
        );
        assert!(parse(&format!("new {}", "ä".repeat(4000))).is_ok());
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2D"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration("99999999999999999999d"), None);
    }

    proptest::proptest! {
        #[test]
        fn the_parser_never_panics(text in "\\PC{0,300}") {
            let _ = parse(&text);
        }

        #[test]
        fn the_parser_never_panics_on_markup_soup(text in "[<>@#|&;\"“” a-z0-9:-]{0,120}") {
            let _ = parse(&text);
            let _ = parse(&format!("new {text}"));
            let _ = parse(&format!("assign 1 {text}"));
            let _ = parse(&format!("digest schedule {text}"));
        }
    }

    #[test]
    fn typed_parts_parse_like_text_and_free_text_stays_one_argument() {
        use Part::*;
        let w = |s: &str| Word(s.to_owned());
        // A description that starts with a priority word is still all description.
        assert_eq!(
            parse_parts(&[w("new"), Text("low battery on the \"spare\" laptop".into())]).unwrap(),
            Command::New {
                priority: None,
                description: Some("low battery on the \"spare\" laptop".into())
            }
        );
        assert_eq!(
            parse_parts(&[w("new"), w("high"), Text("VPN down".into())]).unwrap(),
            Command::New {
                priority: Some(Priority::High),
                description: Some("VPN down".into())
            }
        );
        assert_eq!(
            parse_parts(&[w("assign"), w("4"), User("80351110224678912".into())]).unwrap(),
            Command::Assign {
                no: TicketNo(4),
                who: Who::User("80351110224678912".into())
            }
        );
        assert_eq!(
            parse_parts(&[w("history"), Text("Acme Corp".into())]).unwrap(),
            Command::History {
                target: ContactTarget::parse("Acme Corp").unwrap()
            }
        );
        assert_eq!(
            parse_parts(&[
                w("digest"),
                w("schedule"),
                Text("0 9 * * 1-5".into()),
                w("Europe/Helsinki")
            ])
            .unwrap(),
            Command::DigestSchedule {
                cron: "0 9 * * 1-5".into(),
                timezone: Some("Europe/Helsinki".into())
            }
        );
        assert!(parse_parts(&[w("show"), w("x")]).is_err());
        assert_eq!(parse_parts(&[]).unwrap(), Command::Help { topic: None });
    }
}
