//! Discord messages from the neutral replies: `content` that names `#n`, an embed card, and
//! components (buttons and a priority select) that fit Discord's documented limits.

use serde::Serialize;
use serde_json::{Value, json};

use crate::core::ticket::Priority;
use crate::core::view::{Card, CardAction, Person, counted_text, cut, history_line, row_line};
use crate::desk::Reply;

pub const MAX_CONTENT: usize = 2000;
pub const MAX_EMBED_TITLE: usize = 256;
pub const MAX_EMBED_DESCRIPTION: usize = 4096;
pub const MAX_EMBED_TOTAL: usize = 6000;
pub const MAX_FIELD_VALUE: usize = 1024;
pub const MAX_ROWS: usize = 5;
pub const MAX_ROW_BUTTONS: usize = 5;
pub const MAX_CUSTOM_ID: usize = 100;
pub const MAX_CHOICES: usize = 25;
/// Message flag: only the invoking user sees it.
pub const EPHEMERAL: u64 = 64;

/// A rendered message: the body of a type 4 or 7 response, a followup, or a channel post.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub body: Value,
    pub private: bool,
}

impl Message {
    /// The interaction response of `kind` (4: new message, 7: update the clicked one).
    pub fn response(self, kind: u8) -> Value {
        let mut data = self.body;
        if self.private && kind == 4 {
            data["flags"] = json!(EPHEMERAL);
        }
        json!({ "type": kind, "data": data })
    }
}

fn color(p: Priority) -> u32 {
    match p {
        Priority::Urgent => 0xD7_263D,
        Priority::High => 0xF4_6036,
        Priority::Medium => 0x2E_86AB,
        Priority::Low => 0x8D_99AE,
    }
}

/// How a person shows on Discord: a mention for Discord users, a name for the others (a Slack
/// user on a desk both serve has no Discord id to mention).
fn person(p: &Person) -> String {
    match p.user.platform {
        crate::core::people::Platform::Discord => format!("<@{}>", p.user.id),
        _ => escape(&p.label()),
    }
}

/// Discord markdown: escapes the characters that would format, and defuses `@everyone` and
/// `@here`. Mentions (`<@id>`, `<@!id>`, `<@&id>`, `<#id>`) stay as they are, so they show as
/// names; every message we send also carries `allowed_mentions: {parse: []}`, so none pings.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if let Some(len) = mention_len(rest) {
            out.push_str(&rest[..len]);
            rest = &rest[len..];
            continue;
        }
        if matches!(c, '*' | '_' | '~' | '`' | '|' | '>' | '\\') {
            out.push('\\');
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out.replace("@everyone", "@\u{200B}everyone")
        .replace("@here", "@\u{200B}here")
}

/// The length of the mention `text` starts with, if it does: `<@123>`, `<@!123>`, `<@&123>` or
/// `<#123>` (ids are digits).
fn mention_len(text: &str) -> Option<usize> {
    let inner = text
        .strip_prefix("<@!")
        .or_else(|| text.strip_prefix("<@&"))
        .or_else(|| text.strip_prefix("<@"))
        .or_else(|| text.strip_prefix("<#"))?;
    let digits = inner.bytes().take_while(u8::is_ascii_digit).count();
    (digits > 0 && inner.as_bytes().get(digits) == Some(&b'>'))
        .then(|| text.len() - inner.len() + digits + 1)
}

/// A card message as typed values, serialized straight into the body of a post or an edit:
/// the outbox renders one for every card it posts or edits, and `json!` trees cost a map and an
/// allocation per key (see `slack/render.rs`). [`card_message`] is its JSON for the replies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CardBody {
    content: String,
    embeds: [Embed; 1],
    components: Vec<Row>,
    allowed_mentions: AllowedMentions,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Embed {
    title: String,
    description: String,
    color: u32,
    fields: Vec<EmbedField>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct EmbedField {
    name: &'static str,
    value: String,
    inline: bool,
}

/// An action row (component type 1).
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Row {
    #[serde(rename = "type")]
    kind: u8,
    components: Vec<Component>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
enum Component {
    /// Type 2.
    Button {
        #[serde(rename = "type")]
        kind: u8,
        style: u8,
        label: &'static str,
        custom_id: String,
    },
    /// Type 3, a string select.
    Select {
        #[serde(rename = "type")]
        kind: u8,
        custom_id: String,
        placeholder: &'static str,
        options: Vec<SelectOption>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct SelectOption {
    label: &'static str,
    value: &'static str,
    default: bool,
}

/// Mentions the message may ping: none.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct AllowedMentions {
    parse: [&'static str; 0],
}

/// The card as an embed.
fn card_embed(card: &Card) -> Embed {
    let field = |name, value| EmbedField {
        name,
        value,
        inline: true,
    };
    let mut fields = vec![
        field("Priority", card.priority.as_str().to_owned()),
        field("Status", card.status.label().to_owned()),
        field(
            "Assignee",
            card.assignee
                .as_ref()
                .map(person)
                .unwrap_or_else(|| "nobody".into()),
        ),
    ];
    if let Some(contact) = &card.contact {
        fields.push(field("Contact", cut(&escape(contact), MAX_FIELD_VALUE)));
    }
    if let Some(sla) = &card.sla {
        fields.push(field("SLA", cut(sla, MAX_FIELD_VALUE)));
    }
    Embed {
        title: cut(
            &format!(
                "{} {}",
                card.no,
                crate::core::view::first_line(&card.description, 200)
            ),
            MAX_EMBED_TITLE,
        ),
        description: cut(&escape(&card.description), MAX_EMBED_DESCRIPTION),
        color: color(card.priority),
        fields,
    }
}

fn button(action: CardAction, no: i64) -> Component {
    // Styles: 1 primary, 2 secondary, 3 success, 4 danger.
    let style = match action {
        CardAction::AssignToMe => 1,
        CardAction::Complete => 3,
        CardAction::Close => 4,
        _ => 2,
    };
    Component::Button {
        kind: 2,
        style,
        label: action.label(),
        custom_id: format!("{}:{no}", action.id()),
    }
}

/// The card's components: its buttons, a priority select, and the note/link/close row.
fn card_components(card: &Card) -> Vec<Row> {
    let no = card.no.0;
    let row = |components| Row {
        kind: 1,
        components,
    };
    let buttons = card
        .buttons
        .iter()
        .take(MAX_ROW_BUTTONS)
        .map(|a| button(*a, no))
        .collect();
    let options = [
        Priority::Urgent,
        Priority::High,
        Priority::Medium,
        Priority::Low,
    ]
    .into_iter()
    .map(|p| SelectOption {
        label: p.as_str(),
        value: p.as_str(),
        default: p == card.priority,
    })
    .collect();
    let select = Component::Select {
        kind: 3,
        custom_id: format!("{}:{no}", CardAction::SetPriority.id()),
        placeholder: "Priority",
        options,
    };
    let menu: Vec<Component> = card
        .menu
        .iter()
        .take(MAX_ROW_BUTTONS)
        .map(|a| button(*a, no))
        .collect();
    let mut rows = vec![row(buttons), row(vec![select])];
    if !menu.is_empty() {
        rows.push(row(menu));
    }
    rows
}

/// A full card message: content naming `#n`, the embed, the components.
pub fn card_body(card: &Card, lead: Option<&str>) -> CardBody {
    let content = match lead {
        Some(lead) => format!("{} · {}", lead, card.summary()),
        None => card.summary(),
    };
    CardBody {
        content: cut(&escape(&content), MAX_CONTENT),
        embeds: [card_embed(card)],
        components: card_components(card),
        allowed_mentions: AllowedMentions { parse: [] },
    }
}

/// [`card_body`] as JSON, for the replies that add to it.
pub fn card_message(card: &Card, lead: Option<&str>) -> Value {
    // Serializing plain structs with string keys cannot fail.
    serde_json::to_value(card_body(card, lead)).unwrap_or_default()
}

/// Lines in one embed description, as many as fit in `room` characters, and a note of how
/// many more there are.
fn lines_embed(title: &str, lines: &[String], total: i64, room: usize) -> (Value, usize) {
    let mut description = String::new();
    let mut used = 0;
    let room = room.min(MAX_EMBED_DESCRIPTION) - 100;
    for line in lines {
        if description.chars().count() + line.chars().count() + 1 > room {
            break;
        }
        description.push_str(line);
        description.push('\n');
        used += 1;
    }
    if lines.is_empty() {
        description.push_str("Nothing here.");
    }
    if (used as i64) < total {
        description.push_str(&format!(
            "\n{used} of {total} shown; narrow the list with a filter."
        ));
    }
    (
        json!({ "title": cut(title, MAX_EMBED_TITLE), "description": description }),
        used,
    )
}

fn text_message(text: &str, private: bool) -> Message {
    Message {
        body: json!({ "content": cut(text, MAX_CONTENT), "allowed_mentions": { "parse": [] } }),
        private,
    }
}

/// Renders any reply.
pub fn message(reply: &Reply) -> Message {
    match reply {
        Reply::Created { card, replayed } => Message {
            body: card_message(
                card,
                Some(if *replayed {
                    "Already created"
                } else {
                    "Created"
                }),
            ),
            private: false,
        },
        Reply::Card { card, note } => Message {
            body: card_message(card, Some(&cut(note, 300))),
            private: false,
        },
        Reply::Detail(detail) => {
            let mut body = card_message(&detail.card, None);
            // The timeline gets what the card leaves of the 6,000 characters all embeds share,
            // newest events first to go in, shown oldest first.
            let room = MAX_EMBED_TOTAL.saturating_sub(embed_chars(&body["embeds"][0]) + 200);
            let mut shown: Vec<String> = Vec::new();
            let mut size = 0;
            for line in detail.timeline.iter().rev().map(|l| escape(l)) {
                size += line.chars().count() + 1;
                if size > room.min(MAX_EMBED_DESCRIPTION - 100) {
                    break;
                }
                shown.push(line);
            }
            let hidden = detail.timeline.len() - shown.len();
            shown.reverse();
            let mut description = shown.join("\n");
            if hidden > 0 {
                description = format!("{hidden} earlier events not shown\n{description}");
            }
            if let Some(embeds) = body["embeds"].as_array_mut() {
                embeds.push(json!({ "title": "Timeline", "description": description }));
            }
            Message {
                body,
                private: true,
            }
        }
        Reply::List(list) => {
            let lines: Vec<String> = list
                .rows
                .iter()
                .map(|r| row_line(r, "**", person, escape))
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
                .map(|l| history_line(l, "**", escape))
                .collect();
            let title = format!("Tickets of {}", h.title);
            counted(&title, h.total, &lines, h.lines.iter().map(|l| l.no))
        }
        Reply::Text { text, private } => text_message(text, *private),
        Reply::Error(text) => text_message(text, true),
        Reply::Form { .. } => text_message("Opening the new ticket form…", true),
        Reply::Digest(d) => Message {
            body: digest_message(d, true),
            private: false,
        },
    }
}

/// A digest: one embed with a field per section, and "Assign #n" buttons for the listed
/// tickets (at most four rows of five).
/// A digest as a message. `buttons`: its "Assign" buttons, for a digest in a server's channel;
/// a personal digest goes by direct message, where a click names no server to assign in.
pub fn digest_message(d: &crate::core::digest::Digest, buttons: bool) -> Value {
    use crate::core::digest::Section;
    let mut fields = Vec::new();
    let open = d.open_lines("**");
    fields.push(
        json!({ "name": format!("{} open tickets", d.open_total()), "value": open.join("\n") }),
    );
    let mut section = |title: &str, s: &Section| {
        let mut lines: Vec<String> = s
            .lines
            .iter()
            .map(|l| {
                let who = l
                    .assignee
                    .as_ref()
                    .map(person)
                    .unwrap_or_else(|| "unassigned".into());
                cut(
                    &format!(
                        "**{}** · {} · {} · {} · {}",
                        l.no,
                        l.priority,
                        l.when(d.at),
                        who,
                        escape(&l.description)
                    ),
                    180,
                )
            })
            .collect();
        if s.total > s.lines.len() as i64 {
            lines.push(format!("and {} more", s.total - s.lines.len() as i64));
        }
        if lines.is_empty() {
            lines.push("none".into());
        }
        fields.push(json!({ "name": format!("{title} ({})", s.total), "value": cut(&lines.join("\n"), MAX_FIELD_VALUE) }));
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
        fields.push(json!({ "name": "Open per assignee", "value": cut(&lines.join("\n"), MAX_FIELD_VALUE) }));
    }
    let footer = d.footer();
    fields.push(json!({ "name": "Flow", "value": cut(&footer, MAX_FIELD_VALUE) }));
    let buttons: Vec<Value> = d
        .listed()
        .into_iter()
        .take(if buttons { 4 * MAX_ROW_BUTTONS } else { 0 })
        .map(|no| json!({ "type": 2, "style": 2, "label": format!("Assign {no}"), "custom_id": format!("digest_assign:{}", no.0) }))
        .collect();
    let rows: Vec<Value> = buttons
        .chunks(MAX_ROW_BUTTONS)
        .map(|c| json!({ "type": 1, "components": c }))
        .collect();
    json!({
        "content": cut(&d.summary(), MAX_CONTENT),
        "embeds": [{ "title": cut(&d.title, MAX_EMBED_TITLE), "fields": fields, "color": 0x2E_86AB }],
        "components": rows,
        "allowed_mentions": { "parse": [] },
    })
}

fn counted(
    title: &str,
    total: i64,
    lines: &[String],
    nos: impl IntoIterator<Item = crate::core::ticket::TicketNo>,
) -> Message {
    let text = counted_text(title, total, nos, MAX_CONTENT);
    let (embed, _) = lines_embed(title, lines, total, MAX_EMBED_DESCRIPTION);
    Message {
        body: json!({
            "content": cut(&text, MAX_CONTENT),
            "embeds": [embed],
            "allowed_mentions": { "parse": [] },
        }),
        private: true,
    }
}

fn text_input(
    id: &str,
    label: &str,
    style: u8,
    required: bool,
    max: usize,
    value: Option<&str>,
) -> Value {
    let mut input = json!({
        "type": 4, "custom_id": id, "label": label, "style": style,
        "required": required, "max_length": max,
    });
    if let Some(v) = value {
        input["value"] = json!(v);
    }
    json!({ "type": 1, "components": [input] })
}

/// The new-ticket modal (response type 9).
/// The new-ticket modal, opened by interaction `opener`: its id rides in the custom_id
/// (`new_ticket:<id>`), so every submission of this one form creates at most one ticket (a
/// second submit after a slow first one is a replay, not a second ticket).
pub fn new_ticket_modal(priority: Option<Priority>, opener: &str) -> Value {
    let custom_id = if opener.is_empty() {
        "new_ticket".to_owned()
    } else {
        format!("new_ticket:{opener}")
    };
    json!({
        "type": 9,
        "data": {
            "custom_id": custom_id,
            "title": "New ticket",
            "components": [
                text_input("description", "Description", 2, true, 4000, None),
                text_input("priority", "Priority: low, medium, high or urgent", 1, false, 10, Some(priority.unwrap_or(Priority::Medium).as_str())),
                text_input("contact", "Contact email", 1, false, 254, None),
            ],
        },
    })
}

/// The note or link-email modal for ticket `no`, opened by interaction `opener`, whose id
/// rides in the custom_id (`note:<n>:<id>`, `link:<n>:<id>`: at most 5 + 20 + 1 + 33 characters) so that a
/// second submit of the same form is a replay.
pub fn text_modal(action: CardAction, no: i64, opener: &str) -> Value {
    let (title, label, max) = match action {
        CardAction::LinkEmail => (
            format!("Link an email thread to #{no}"),
            "Gmail or Outlook thread URL or id",
            1000,
        ),
        _ => (format!("Note on #{no}"), "Note", 4000),
    };
    json!({
        "type": 9,
        "data": {
            "custom_id": if opener.is_empty() {
                format!("{}:{no}", action.id())
            } else {
                format!("{}:{no}:{}", action.id(), cut(opener, 32))
            },
            "title": cut(&title, 45),
            "components": [text_input("text", label, 2, true, max, None)],
        },
    })
}

/// The characters of an embed that count towards the 6,000 all embeds share.
fn embed_chars(e: &Value) -> usize {
    let chars = |v: &Value| v.as_str().map(|s| s.chars().count()).unwrap_or(0);
    chars(&e["title"])
        + chars(&e["description"])
        + e["fields"]
            .as_array()
            .map(|f| {
                f.iter()
                    .map(|f| chars(&f["name"]) + chars(&f["value"]))
                    .sum()
            })
            .unwrap_or(0)
}

/// Discord's limits that a message breaks; empty when it fits.
pub fn limit_violations(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let chars = |v: &Value| v.as_str().map(|s| s.chars().count()).unwrap_or(0);
    if chars(&body["content"]) > MAX_CONTENT {
        out.push(format!("content of {} characters", chars(&body["content"])));
    }
    let embeds = body["embeds"].as_array().cloned().unwrap_or_default();
    if embeds.len() > 10 {
        out.push(format!("{} embeds", embeds.len()));
    }
    let mut total = 0;
    for e in &embeds {
        let title = chars(&e["title"]);
        let description = chars(&e["description"]);
        if title > MAX_EMBED_TITLE {
            out.push(format!("embed title of {title}"));
        }
        if description > MAX_EMBED_DESCRIPTION {
            out.push(format!("embed description of {description}"));
        }
        total += title + description;
        let fields = e["fields"].as_array().cloned().unwrap_or_default();
        if fields.len() > 25 {
            out.push(format!("{} fields", fields.len()));
        }
        for f in &fields {
            if chars(&f["name"]) > 256 || chars(&f["value"]) > MAX_FIELD_VALUE {
                out.push("a field over its limit".into());
            }
            total += chars(&f["name"]) + chars(&f["value"]);
        }
    }
    if total > MAX_EMBED_TOTAL {
        out.push(format!("embeds of {total} characters in all"));
    }
    let rows = body["components"].as_array().cloned().unwrap_or_default();
    if rows.len() > MAX_ROWS {
        out.push(format!("{} rows", rows.len()));
    }
    for row in &rows {
        let items = row["components"].as_array().cloned().unwrap_or_default();
        let selects = items.iter().filter(|c| c["type"] != json!(2)).count();
        if items.len() > MAX_ROW_BUTTONS || (selects > 0 && items.len() > 1) {
            out.push("a row with too many components".into());
        }
        for c in &items {
            if chars(&c["custom_id"]) > MAX_CUSTOM_ID {
                out.push("a custom_id over 100 characters".into());
            }
            if chars(&c["label"]) > 80 {
                out.push("a button label over 80 characters".into());
            }
            if c["options"]
                .as_array()
                .is_some_and(|o| o.len() > MAX_CHOICES)
            {
                out.push("a select with more than 25 options".into());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ticket::{Status, TicketNo};

    fn card() -> Card {
        Card {
            no: TicketNo(42),
            description: "The printer on floor 3 is on *fire* @everyone".into(),
            priority: Priority::High,
            status: Status::InProgress,
            assignee: Some(Person {
                user: crate::core::people::UserRef::discord("80351110224678912"),
                name: Some("Nelly".into()),
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
    fn a_slack_assignee_on_a_shared_desk_shows_by_name() {
        let mut shared = card();
        shared.assignee = Some(Person {
            user: crate::core::people::UserRef::slack("U024BE7LH"),
            name: Some("Ann *A*".into()),
        });
        let body = card_message(&shared, None).to_string();
        assert!(body.contains("Ann \\\\*A\\\\*"), "{body}");
        assert!(!body.contains("U024BE7LH"), "{body}");
    }

    #[test]
    fn a_card_renders_as_this_message() {
        let body = card_message(&card(), Some("Created"));
        assert!(limit_violations(&body).is_empty());
        assert!(body["content"].as_str().unwrap().contains("#42"));
        insta::assert_json_snapshot!("discord_card", body);
    }

    #[test]
    fn modals_render_as_these_responses() {
        insta::assert_json_snapshot!("discord_new_ticket_modal", new_ticket_modal(None, ""));
        assert_eq!(
            new_ticket_modal(None, "1155")["data"]["custom_id"],
            "new_ticket:1155"
        );
        insta::assert_json_snapshot!(
            "discord_note_modal",
            text_modal(CardAction::AddNote, 42, "1155")
        );
    }

    #[test]
    fn mentions_and_markdown_are_defused() {
        assert_eq!(escape("*a* @everyone"), "\\*a\\* @\u{200B}everyone");
        // Mentions stay mentions; anything else with angle brackets is escaped.
        assert_eq!(
            escape("<@53908232506183680> took #5 > <@!1> <#2> <@&3> <@x> a>b"),
            "<@53908232506183680> took #5 \\> <@!1> <#2> <@&3> <@x\\> a\\>b"
        );
    }

    #[test]
    fn a_digest_of_ten_thousand_open_tickets_fits_and_renders_as_this_message() {
        let body = digest_message(&crate::core::digest::sample(), true);
        let personal = digest_message(&crate::core::digest::sample(), false);
        assert_eq!(
            personal["components"],
            json!([]),
            "no buttons in a direct message"
        );
        assert!(
            limit_violations(&body).is_empty(),
            "{:?}",
            limit_violations(&body)
        );
        assert!(body["content"].as_str().unwrap().contains("#100"));
        insta::assert_json_snapshot!("discord_digest", body);
    }
}
