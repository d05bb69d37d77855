//! Rendering neutral replies as Block Kit, within Slack's limits: at most 50 blocks a message,
//! 3,000 characters a section text, 2,000 a field or button value, 255 an action id, 75 a
//! button or option label.
//!
//! Messages are typed values ([`Block`], [`Text`], [`Element`]) serialized straight into the
//! request or response body. Built as `serde_json::Value` trees they cost a map, and an
//! allocation per key, for every object, then a walk to serialize and another to drop: a fifth
//! of a worker's time answering `/ticket show` (BENCHMARKS.md). The modals, opened once per
//! form, stay `json!`.

use serde::Serialize;
use serde_json::{Value, json};

use crate::core::people::Platform;
use crate::core::ticket::Priority;
use crate::core::view::{Card, CardAction, Person, counted_text, cut, history_line, row_line};
use crate::desk::Reply;

pub const MAX_BLOCKS: usize = 50;
pub const MAX_SECTION: usize = 3000;
pub const MAX_FIELD: usize = 2000;
pub const MAX_VALUE: usize = 2000;
pub const MAX_ACTION_ID: usize = 255;

/// A layout block (the kinds we send).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Section {
        #[serde(skip_serializing_if = "Option::is_none")]
        block_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<Text>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        fields: Vec<Text>,
        #[serde(skip_serializing_if = "Option::is_none")]
        accessory: Option<Element>,
    },
    Actions {
        block_id: String,
        elements: Vec<Element>,
    },
    Context {
        elements: Vec<Text>,
    },
    Header {
        text: Text,
    },
    Divider,
}

impl Block {
    /// A section of one text.
    fn section(text: Text) -> Block {
        Block::Section {
            block_id: None,
            text: Some(text),
            fields: Vec::new(),
            accessory: None,
        }
    }

    /// A context line.
    fn context(text: Text) -> Block {
        Block::Context {
            elements: vec![text],
        }
    }
}

/// A text object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Text {
    Mrkdwn { text: String },
    PlainText { text: String, emoji: bool },
}

/// An interactive element.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Element {
    Button {
        text: Text,
        action_id: &'static str,
        value: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        style: Option<&'static str>,
    },
    StaticSelect {
        action_id: &'static str,
        placeholder: Text,
        initial_option: Choice,
        options: Vec<Choice>,
    },
    Overflow {
        action_id: &'static str,
        options: Vec<Choice>,
    },
}

/// An option of a select or overflow menu.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Choice {
    pub text: Text,
    pub value: String,
}

/// A message ready for `chat.postMessage`, a slash command response or `response_url`.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The plain text: notifications and screen readers read it; it names the ticket as `#n`.
    pub text: String,
    pub blocks: Vec<Block>,
    /// Only the actor sees it.
    pub private: bool,
}

/// The body of a slash command answer or a `response_url` post.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Response {
    pub response_type: &'static str,
    pub text: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<Block>,
    /// `Some(true)` replaces the message whose button was clicked; `Some(false)` says so
    /// explicitly to leave it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replace_original: Option<bool>,
}

impl Message {
    /// The slash-command / `response_url` JSON body.
    pub fn response(self, replace_original: Option<bool>) -> Response {
        Response {
            response_type: if self.private {
                "ephemeral"
            } else {
                "in_channel"
            },
            text: self.text,
            blocks: self.blocks,
            replace_original,
        }
    }
}

/// Whether `inner` (what is between `<` and `>`) is Slack's own markup: a person (`@U…`,
/// `@W…`, `@B…`), a channel (`#C…`, `#G…`, `#D…`), each with an optional `|label`, or a link
/// (`http://`, `https://`, `mailto:`). Anything else in angle brackets is text, such as a
/// usage line's `<n>` or `<@user|me|none>`, which Slack would otherwise show as a link.
fn slack_token(inner: &str) -> bool {
    if inner.contains('<') {
        return false;
    }
    if ["http://", "https://", "mailto:"]
        .iter()
        .any(|p| inner.starts_with(p))
    {
        return true;
    }
    let (id, label) = inner.split_once('|').unwrap_or((inner, ""));
    let id_of = |sigil: char, kinds: &[char]| {
        id.strip_prefix(sigil).is_some_and(|rest| {
            rest.starts_with(kinds)
                && rest.len() >= 2
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        })
    };
    (id_of('@', &['U', 'W', 'B']) || id_of('#', &['C', 'G', 'D'])) && !label.contains('|')
}

/// Escapes `&`, `<` and `>` for mrkdwn, keeping Slack's own markup for people, channels and
/// links (`<@U1>`, `<#C1>`, `<https://…|label>`, `<mailto:…>`) as it is ([`slack_token`]). Special mentions
/// (`<!here>`, `<!channel>`, `<!subteam^S1|@team>`) become plain `@here`, `@team`: text a
/// person typed must not ping a whole channel each time a card carrying it is posted.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['&', '<', '>']) {
        out.push_str(&rest[..i]);
        let c = rest.as_bytes()[i];
        if c == b'<'
            && let Some(end) = rest[i..].find('>')
        {
            let inner = &rest[i + 1..i + end];
            if let Some(special) = inner.strip_prefix('!')
                && !inner.contains('<')
            {
                let label = match special.split_once('|') {
                    Some((_, label)) => label.to_owned(),
                    None => format!("@{}", special.split('^').next().unwrap_or_default()),
                };
                out.push_str(&escape(&label));
                rest = &rest[i + end + 1..];
                continue;
            }
            if slack_token(inner) {
                out.push_str(&rest[i..=i + end]);
                rest = &rest[i + end + 1..];
                continue;
            }
        }
        out.push_str(match c {
            b'&' => "&amp;",
            b'<' => "&lt;",
            _ => "&gt;",
        });
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    out
}

/// A card's plain text (a message's `text`): its summary, escaped as the blocks are.
pub fn card_text(card: &Card) -> String {
    escape(&card.summary())
}

/// How a person shows in Slack: a mention for Slack users, a name for the others.
fn person(p: &Person) -> String {
    match p.user.platform {
        Platform::Slack => format!("<@{}>", p.user.id),
        _ => escape(&p.label()),
    }
}

fn mrkdwn(text: &str, max: usize) -> Text {
    Text::Mrkdwn {
        text: cut(text, max),
    }
}

fn plain(text: &str, max: usize) -> Text {
    Text::PlainText {
        text: cut(text, max),
        emoji: true,
    }
}

fn priority_option(p: Priority) -> Choice {
    Choice {
        text: plain(p.as_str(), 75),
        value: p.as_str().to_owned(),
    }
}

/// A ticket's card: its text, fields, buttons, priority select and overflow menu.
pub fn card_blocks(card: &Card) -> Vec<Block> {
    let no = card.no.0.to_string();
    let head = format!("*{}* {}", card.no, escape(&card.description));
    let mut fields = vec![
        mrkdwn(&format!("*Priority*\n{}", card.priority), MAX_FIELD),
        mrkdwn(&format!("*Status*\n{}", card.status), MAX_FIELD),
        mrkdwn(
            &format!(
                "*Assignee*\n{}",
                card.assignee
                    .as_ref()
                    .map(person)
                    .unwrap_or_else(|| "nobody".into())
            ),
            MAX_FIELD,
        ),
    ];
    if let Some(contact) = &card.contact {
        fields.push(mrkdwn(
            &format!("*Contact*\n{}", escape(contact)),
            MAX_FIELD,
        ));
    }
    if let Some(sla) = &card.sla {
        fields.push(mrkdwn(&format!("*SLA*\n{}", escape(sla)), MAX_FIELD));
    }
    let mut elements: Vec<Element> = card
        .buttons
        .iter()
        .map(|a| Element::Button {
            text: plain(a.label(), 75),
            action_id: a.id(),
            value: no.clone(),
            style: matches!(a, CardAction::Complete).then_some("primary"),
        })
        .collect();
    elements.push(Element::StaticSelect {
        action_id: CardAction::SetPriority.id(),
        placeholder: plain("Priority", 75),
        initial_option: priority_option(card.priority),
        options: Priority::ALL.iter().map(|p| priority_option(*p)).collect(),
    });
    elements.push(Element::Overflow {
        action_id: "menu",
        options: card
            .menu
            .iter()
            .map(|a| Choice {
                text: plain(a.label(), 75),
                value: format!("{}:{no}", a.id()),
            })
            .collect(),
    });
    vec![
        Block::Section {
            block_id: Some(format!("card:{no}")),
            text: Some(mrkdwn(&head, MAX_SECTION)),
            fields: Vec::new(),
            accessory: None,
        },
        Block::Section {
            block_id: None,
            text: None,
            fields,
            accessory: None,
        },
        Block::Actions {
            block_id: format!("actions:{no}"),
            elements,
        },
    ]
}

/// Sections of at most [`MAX_SECTION`] characters holding `lines`, and how many lines fit
/// within `max_blocks` sections.
fn line_sections(lines: &[String], max_blocks: usize) -> (Vec<Block>, usize) {
    let mut blocks = Vec::new();
    let mut current = String::new();
    let mut used = 0;
    for line in lines {
        let line = cut(line, MAX_SECTION - 1);
        if current.chars().count() + line.chars().count() + 1 > MAX_SECTION {
            if blocks.len() + 1 >= max_blocks {
                break;
            }
            blocks.push(Block::section(mrkdwn(&current, MAX_SECTION)));
            current.clear();
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(&line);
        used += 1;
    }
    if !current.is_empty() {
        blocks.push(Block::section(mrkdwn(&current, MAX_SECTION)));
    }
    (blocks, used)
}

/// Renders any reply.
pub fn message(reply: &Reply) -> Message {
    match reply {
        Reply::Created { card, replayed } => Message {
            text: if *replayed {
                escape(&format!(
                    "{} was already created: {}",
                    card.no,
                    card.summary()
                ))
            } else {
                escape(&format!("Created {}", card.summary()))
            },
            blocks: Vec::new(),
            private: true,
        },
        Reply::Card { card, note } => {
            let mut blocks = vec![Block::context(mrkdwn(&escape(note), MAX_SECTION))];
            blocks.extend(card_blocks(card));
            Message {
                text: escape(&format!("{} {}", card.summary(), cut(note, 200))),
                blocks,
                private: true,
            }
        }
        Reply::Detail(detail) => {
            let mut blocks = card_blocks(&detail.card);
            blocks.push(Block::Divider);
            let lines: Vec<String> = detail.timeline.iter().map(|l| escape(l)).collect();
            let room = MAX_BLOCKS - blocks.len() - 1;
            // The newest events are shown, oldest of them first, under a line that says how
            // many earlier ones are not: as many as fit, counted from the newest.
            let reversed: Vec<String> = lines.iter().rev().cloned().collect();
            let (_, mut fit) = line_sections(&reversed, room);
            let (sections, shown) = loop {
                let newest = &lines[lines.len() - fit..];
                let (sections, used) = line_sections(newest, room);
                if used == newest.len() || fit == 0 {
                    break (sections, used);
                }
                fit -= 1;
            };
            if shown < lines.len() {
                blocks.push(Block::context(mrkdwn(
                    &format!("{} earlier events not shown", lines.len() - shown),
                    200,
                )));
            }
            blocks.extend(sections);
            Message {
                text: card_text(&detail.card),
                blocks,
                private: true,
            }
        }
        Reply::List(list) => {
            let lines: Vec<String> = list
                .rows
                .iter()
                .map(|r| row_line(r, "*", person, escape))
                .collect();
            counted(
                &list.title,
                list.total,
                &lines,
                list.rows.iter().map(|r| r.no),
            )
        }
        Reply::History(h) => {
            let lines: Vec<String> = h
                .lines
                .iter()
                .map(|l| history_line(l, "*", escape))
                .collect();
            let title = format!("Tickets of {}", h.title);
            counted(&title, h.total, &lines, h.lines.iter().map(|l| l.no))
        }
        // Our own text: mentions stay mentions, and a usage line's `<n>` is shown as typed.
        Reply::Text { text, private } => Message {
            text: escape(text),
            blocks: Vec::new(),
            private: *private,
        },
        Reply::Error(text) => Message {
            text: escape(text),
            blocks: Vec::new(),
            private: true,
        },
        Reply::Form { .. } => Message {
            text: "Opening the new ticket form…".into(),
            blocks: Vec::new(),
            private: true,
        },
        Reply::Digest(d) => Message {
            text: escape(&d.summary()),
            blocks: digest_blocks(d),
            private: false,
        },
    }
}

/// A digest as Block Kit: sections of at most five tickets each, every listed ticket with an
/// "Assign to me" button; totals say how many more there are, so any queue fits.
pub fn digest_blocks(d: &crate::core::digest::Digest) -> Vec<Block> {
    use crate::core::digest::Section;
    let mut blocks = vec![Block::Header {
        text: plain(&d.title, 150),
    }];
    let open = d.open_lines("*");
    blocks.push(Block::section(mrkdwn(
        &format!("*{} open tickets*\n{}", d.open_total(), open.join("\n")),
        MAX_SECTION,
    )));
    let mut section = |title: &str, s: &Section| {
        blocks.push(Block::section(mrkdwn(
            &format!("*{title}* ({})", s.total),
            200,
        )));
        for l in &s.lines {
            let who = l
                .assignee
                .as_ref()
                .map(person)
                .unwrap_or_else(|| "unassigned".into());
            let text = format!(
                "*{}* · {} · {} · {} · {}",
                l.no,
                l.priority,
                l.when(d.at),
                who,
                escape(&l.description)
            );
            blocks.push(Block::Section {
                block_id: None,
                text: Some(mrkdwn(&text, MAX_SECTION)),
                fields: Vec::new(),
                accessory: Some(Element::Button {
                    text: plain("Assign to me", 75),
                    action_id: "digest_assign",
                    value: l.no.0.to_string(),
                    style: None,
                }),
            });
        }
        if s.total > s.lines.len() as i64 {
            blocks.push(Block::context(mrkdwn(
                &format!(
                    "and {} more; /ticket list shows them",
                    s.total - s.lines.len() as i64
                ),
                200,
            )));
        }
    };
    section("Breached", &d.breached);
    section("At risk", &d.at_risk);
    section("Unassigned", &d.unassigned);
    section("Oldest open", &d.oldest);
    if !d.per_assignee.is_empty() {
        let lines: Vec<String> = d
            .per_assignee
            .iter()
            .map(|(p, n)| format!("{}: {n}", person(p)))
            .collect();
        blocks.push(Block::section(mrkdwn(
            &format!("*Open per assignee*\n{}", lines.join("\n")),
            MAX_SECTION,
        )));
    }
    let footer = d.footer();
    blocks.push(Block::context(mrkdwn(&footer, MAX_SECTION)));
    blocks
}

/// A titled, private list of lines that says how many more there are.
fn counted(
    title: &str,
    total: i64,
    lines: &[String],
    nos: impl IntoIterator<Item = crate::core::ticket::TicketNo>,
) -> Message {
    let text = counted_text(title, total, nos, MAX_SECTION);
    let mut blocks = vec![Block::Header {
        text: plain(title, 150),
    }];
    if lines.is_empty() {
        blocks.push(Block::section(mrkdwn("Nothing here.", 100)));
    }
    let (sections, used) = line_sections(lines, MAX_BLOCKS - 2);
    blocks.extend(sections);
    let shown = used as i64;
    if shown < total {
        blocks.push(Block::context(mrkdwn(
            &format!("{shown} of {total} shown; narrow the list with a filter."),
            200,
        )));
    }
    Message {
        text,
        blocks,
        private: true,
    }
}

/// The new-ticket modal. `channel` returns in `private_metadata` so the card goes there.
pub fn new_ticket_modal(priority: Option<Priority>, channel: &str) -> Value {
    let initial = priority.unwrap_or(Priority::Medium);
    json!({
        "type": "modal",
        "callback_id": "new_ticket",
        "private_metadata": channel,
        "title": plain("New ticket", 24),
        "submit": plain("Create", 24),
        "close": plain("Cancel", 24),
        "blocks": [
            { "type": "input", "block_id": "description", "label": plain("Description", 75),
              "element": { "type": "plain_text_input", "action_id": "value", "multiline": true, "max_length": 3000 } },
            { "type": "input", "block_id": "priority", "label": plain("Priority", 75),
              "element": { "type": "static_select", "action_id": "value",
                           "initial_option": priority_option(initial),
                           "options": Priority::ALL.iter().map(|p| priority_option(*p)).collect::<Vec<_>>() } },
            { "type": "input", "block_id": "contact", "optional": true, "label": plain("Contact email", 75),
              "element": { "type": "email_text_input", "action_id": "value" } },
            { "type": "input", "block_id": "assignee", "optional": true, "label": plain("Assignee", 75),
              "element": { "type": "users_select", "action_id": "value" } }
        ]
    })
}

/// The modal behind a card's "Add note" and "Link email" menu entries.
pub fn text_modal(action: CardAction, no: i64, channel: &str) -> Value {
    let (title, label, callback) = match action {
        CardAction::LinkEmail => (
            "Link email",
            "Gmail or Outlook thread (URL or id)",
            "link_email",
        ),
        _ => ("Add note", "Note", "add_note"),
    };
    json!({
        "type": "modal",
        "callback_id": callback,
        "private_metadata": format!("{no}|{channel}"),
        "title": plain(&format!("{title} #{no}"), 24),
        "submit": plain("Save", 24),
        "close": plain("Cancel", 24),
        "blocks": [
            { "type": "input", "block_id": "text", "label": plain(label, 75),
              "element": { "type": "plain_text_input", "action_id": "value", "multiline": action != CardAction::LinkEmail, "max_length": 3000 } }
        ]
    })
}

/// Every limit violation in a list of blocks (empty when it respects them all): ours, or
/// JSON as a platform stand-in received it.
pub fn limit_violations<B: Serialize>(blocks: &[B]) -> Vec<String> {
    let blocks: Vec<Value> = match blocks.iter().map(serde_json::to_value).collect() {
        Ok(blocks) => blocks,
        Err(e) => return vec![format!("blocks that are not JSON: {e}")],
    };
    let mut errors = Vec::new();
    if blocks.len() > MAX_BLOCKS {
        errors.push(format!("{} blocks", blocks.len()));
    }
    for b in blocks {
        if let Some(t) = b.pointer("/text/text").and_then(Value::as_str)
            && t.chars().count() > MAX_SECTION
        {
            errors.push(format!("section text of {}", t.chars().count()));
        }
        for f in b["fields"].as_array().into_iter().flatten() {
            if f["text"]
                .as_str()
                .is_some_and(|t| t.chars().count() > MAX_FIELD)
            {
                errors.push("field text over 2000".into());
            }
        }
        for e in b["elements"].as_array().into_iter().flatten() {
            if e["action_id"]
                .as_str()
                .is_some_and(|a| a.len() > MAX_ACTION_ID)
            {
                errors.push("action_id over 255".into());
            }
            if e["value"].as_str().is_some_and(|v| v.len() > MAX_VALUE) {
                errors.push("button value over 2000".into());
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ticket::TicketNo;

    /// As JSON: what Slack receives, with keys in order as the snapshots keep them.
    fn json<T: Serialize>(value: &T) -> Value {
        serde_json::to_value(value).unwrap()
    }

    #[test]
    fn escaping_keeps_slack_markup_and_escapes_the_rest() {
        assert_eq!(escape("a & b < c > d"), "a &amp; b &lt; c &gt; d");
        assert_eq!(
            escape("ping <@U123|bob> in <#C1|general>"),
            "ping <@U123|bob> in <#C1|general>"
        );
        assert_eq!(
            escape("<https://x.io|x> <script>"),
            "<https://x.io|x> &lt;script&gt;"
        );
        assert_eq!(escape("1 < 2 <@U1>"), "1 &lt; 2 <@U1>");
        assert_eq!(
            escape("<!here> printer down, <!channel|channel> <!subteam^S1|@ops>"),
            "@here printer down, channel @ops"
        );
    }

    fn sample_card() -> Card {
        Card {
            no: TicketNo(42),
            description: "The printer on floor 3 is on fire <again> & smoking".into(),
            priority: Priority::High,
            status: crate::core::ticket::Status::InProgress,
            assignee: Some(crate::core::view::Person {
                user: crate::core::people::UserRef::slack("U123"),
                name: Some("Egon".into()),
            }),
            contact: Some("Acme Corp".into()),
            sla: Some("resolution due in 3h 10m".into()),
            buttons: vec![CardAction::AssignToMe, CardAction::Complete],
            menu: vec![
                CardAction::AddNote,
                CardAction::LinkEmail,
                CardAction::Close,
            ],
        }
    }

    #[test]
    fn a_long_timeline_shows_its_newest_events_within_the_limits() {
        let detail = crate::core::view::Detail {
            card: sample_card(),
            timeline: (0..1000)
                .map(|i| format!("event {i}: {}", "x".repeat(320)))
                .collect(),
        };
        let m = message(&Reply::Detail(detail));
        assert!(m.blocks.len() <= MAX_BLOCKS);
        assert!(limit_violations(&m.blocks).is_empty());
        let shown = json(&m.blocks).to_string();
        assert!(shown.contains("event 999:"), "the newest event is shown");
        assert!(!shown.contains("event 0:"), "the oldest is not");
        let first = shown.find("earlier events not shown").unwrap();
        assert!(
            first < shown.find("event 999:").unwrap(),
            "the count comes first"
        );
        // In order, oldest shown first.
        assert!(shown.find("event 998:").unwrap() < shown.find("event 999:").unwrap());
    }

    #[test]
    fn our_own_text_keeps_mentions_and_shows_usage_as_typed() {
        let m = message(&Reply::Error(
            "<@U1>: \"x\" is not a ticket number. Usage: /ticket assign <n> <@user|me|none>".into(),
        ));
        assert_eq!(
            m.text,
            "<@U1>: \"x\" is not a ticket number. Usage: /ticket assign &lt;n&gt; &lt;@user|me|none&gt;"
        );
        let help = message(&crate::desk::help(None));
        assert!(
            help.text
                .contains("contact &lt;n&gt; &lt;email|organization&gt; [name]")
        );
        assert!(!help.text.contains("<n>"));
    }

    // Snapshots of what Slack receives: a change to the Block Kit shows up in review as a diff
    // of these files (src/slack/snapshots/).
    #[test]
    fn a_card_renders_as_this_block_kit() {
        let card = sample_card();
        let blocks = card_blocks(&card);
        assert!(limit_violations(&blocks).is_empty());
        insta::assert_json_snapshot!("card", json(&blocks));
    }

    #[test]
    fn a_list_renders_as_this_block_kit() {
        let rows = (1..=3)
            .map(|n| crate::core::view::Row {
                no: TicketNo(n),
                description: format!("Ticket number {n}"),
                priority: [Priority::Urgent, Priority::Medium, Priority::Low][n as usize - 1],
                status: crate::core::ticket::Status::Open,
                assignee: None,
            })
            .collect();
        let reply = Reply::List(crate::core::view::ListView {
            title: "Open tickets".into(),
            rows,
            total: 3,
        });
        let m = message(&reply);
        assert!(limit_violations(&m.blocks).is_empty());
        insta::assert_json_snapshot!("list", json(&m.response(None)));
    }

    #[test]
    fn the_new_ticket_modal_renders_as_this_view() {
        insta::assert_json_snapshot!(
            "new_ticket_modal",
            new_ticket_modal(Some(Priority::Urgent), "C123")
        );
        insta::assert_json_snapshot!(
            "add_note_modal",
            text_modal(CardAction::AddNote, 42, "C123")
        );
    }

    #[test]
    fn a_digest_of_ten_thousand_open_tickets_fits_and_renders_as_this_block_kit() {
        let digest = crate::core::digest::sample();
        let blocks = digest_blocks(&digest);
        assert!(
            limit_violations(&blocks).is_empty(),
            "{:?}",
            limit_violations(&blocks)
        );
        assert!(blocks.len() <= MAX_BLOCKS);
        let blocks = json(&blocks);
        let buttons = blocks
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["accessory"]["action_id"] == "digest_assign")
            .count();
        assert_eq!(
            buttons, 20,
            "every listed ticket has an Assign to me button"
        );
        insta::assert_json_snapshot!("digest", blocks);
    }
}
