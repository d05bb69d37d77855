//! The `/ticket` application command: one definition that both registers the command with
//! Discord (`piraja discord register`, `manifests/discord-commands.json`) and turns an
//! invocation's typed options back into the grammar's arguments, so Discord and Slack accept and
//! refuse the same things.

use serde_json::{Value, json};

use super::payload::Opt;
use crate::core::grammar::Part;

/// What an option holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A ticket number: an integer with autocomplete.
    Ticket,
    /// Free text, one argument however many words.
    Text,
    /// A single word of free input (a duration, a date, a code).
    Word,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// A guild member.
    User,
    /// A yes/no that adds this word when true.
    Flag(&'static str),
}

/// One option of a subcommand, in the grammar's argument order.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub description: &'static str,
    pub kind: Kind,
    pub required: bool,
}

/// One subcommand: its path (group, name), the grammar words it stands for, its options.
#[derive(Debug, Clone, Copy)]
pub struct Sub {
    pub group: Option<&'static str>,
    pub name: &'static str,
    pub description: &'static str,
    pub words: &'static [&'static str],
    pub options: &'static [Param],
}

const PRIORITIES: &[&str] = &["low", "medium", "high", "urgent"];
const FILTERS: &[&str] = &[
    "open",
    "mine",
    "unassigned",
    "waiting",
    "all",
    "low",
    "medium",
    "high",
    "urgent",
];

const fn opt(name: &'static str, description: &'static str, kind: Kind, required: bool) -> Param {
    Param {
        name,
        description,
        kind,
        required,
    }
}

const TICKET: Param = opt("ticket", "The ticket's number", Kind::Ticket, true);

const fn sub(
    group: Option<&'static str>,
    name: &'static str,
    description: &'static str,
    words: &'static [&'static str],
    options: &'static [Param],
) -> Sub {
    Sub {
        group,
        name,
        description,
        words,
        options,
    }
}

/// Every subcommand of `/ticket`, mirroring the contract's grammar.
pub const SUBCOMMANDS: &[Sub] = &[
    sub(
        None,
        "new",
        "Create a ticket (without a description, a form opens)",
        &["new"],
        &[
            opt(
                "priority",
                "low, medium, high or urgent",
                Kind::Choice(PRIORITIES),
                false,
            ),
            opt("description", "What the customer needs", Kind::Text, false),
        ],
    ),
    sub(
        None,
        "show",
        "A ticket with its timeline",
        &["show"],
        &[TICKET],
    ),
    sub(
        None,
        "list",
        "A queue view, most urgent first",
        &["list"],
        &[
            opt("filter", "Which tickets", Kind::Choice(FILTERS), false),
            opt("user", "Someone's tickets", Kind::User, false),
        ],
    ),
    sub(
        None,
        "assign",
        "Set the assignee (you, if no user is given)",
        &["assign"],
        &[TICKET, opt("user", "Who works on it", Kind::User, false)],
    ),
    sub(
        None,
        "start",
        "Move a ticket to in progress",
        &["start"],
        &[TICKET],
    ),
    sub(
        None,
        "wait",
        "Wait on the customer (pauses the SLA clock)",
        &["wait"],
        &[TICKET],
    ),
    sub(
        None,
        "complete",
        "Complete a ticket",
        &["complete"],
        &[TICKET, opt("note", "What was done", Kind::Text, false)],
    ),
    sub(
        None,
        "close",
        "Close a ticket",
        &["close"],
        &[TICKET, opt("reason", "Why it is closed", Kind::Text, false)],
    ),
    sub(None, "reopen", "Reopen a ticket", &["reopen"], &[TICKET]),
    sub(
        None,
        "priority",
        "Change a ticket's priority",
        &["priority"],
        &[
            TICKET,
            opt(
                "priority",
                "low, medium, high or urgent",
                Kind::Choice(PRIORITIES),
                true,
            ),
        ],
    ),
    sub(
        None,
        "note",
        "Add an internal note",
        &["note"],
        &[TICKET, opt("text", "The note", Kind::Text, true)],
    ),
    sub(
        None,
        "contact",
        "Link the ticket to a person or organization",
        &["contact"],
        &[
            TICKET,
            opt(
                "contact",
                "An email address or an organization name",
                Kind::Text,
                true,
            ),
            opt("name", "The person's name", Kind::Text, false),
        ],
    ),
    sub(
        None,
        "history",
        "Every ticket of a contact",
        &["history"],
        &[opt(
            "contact",
            "An email address or an organization name",
            Kind::Text,
            true,
        )],
    ),
    sub(
        None,
        "link",
        "Attach an email thread",
        &["link"],
        &[
            TICKET,
            opt(
                "thread",
                "A Gmail or Outlook thread URL or id",
                // Outlook links carry ids of ~150 characters, escaped: longer than a word.
                Kind::Text,
                true,
            ),
        ],
    ),
    sub(
        Some("mailbox"),
        "connect",
        "A private link to connect a mailbox",
        &["mailbox", "connect"],
        &[opt(
            "provider",
            "google or microsoft",
            Kind::Choice(&["google", "microsoft"]),
            true,
        )],
    ),
    sub(
        None,
        "channel",
        "Make this channel the desk's notification channel",
        &["channel"],
        &[],
    ),
    sub(Some("sla"), "show", "The SLA targets", &["sla"], &[]),
    sub(
        Some("sla"),
        "set",
        "Set one priority's targets",
        &["sla"],
        &[
            opt(
                "priority",
                "low, medium, high or urgent",
                Kind::Choice(PRIORITIES),
                true,
            ),
            opt("first_response", "Like 30m, 4h or 1d", Kind::Word, true),
            opt("resolution", "Like 4h, 2d or 1d12h", Kind::Word, true),
        ],
    ),
    sub(
        Some("sla"),
        "hours",
        "Business hours for the SLA clock",
        &["sla", "hours"],
        &[
            opt("days", "Like Mon-Fri", Kind::Word, true),
            opt("hours", "Like 09:00-17:00", Kind::Word, true),
            opt("timezone", "Like Europe/Helsinki", Kind::Word, true),
        ],
    ),
    sub(
        Some("sla"),
        "hours_off",
        "The SLA clock runs around the clock",
        &["sla", "hours", "off"],
        &[],
    ),
    sub(
        Some("sla"),
        "holiday",
        "A day the SLA clock does not count",
        &["sla", "holiday"],
        &[opt("date", "YYYY-MM-DD", Kind::Word, true)],
    ),
    sub(
        Some("digest"),
        "now",
        "Post a digest of the queue here now",
        &["digest", "now"],
        &[],
    ),
    sub(
        Some("digest"),
        "schedule",
        "Schedule a digest for this channel",
        &["digest", "schedule"],
        &[
            opt(
                "cron",
                "5 or 6 cron fields, like 0 9 * * 1-5",
                Kind::Text,
                true,
            ),
            opt(
                "timezone",
                "Like Europe/Helsinki (default: the desk's)",
                Kind::Word,
                false,
            ),
        ],
    ),
    sub(
        Some("digest"),
        "off",
        "Remove this channel's digests",
        &["digest", "off"],
        &[],
    ),
    sub(
        Some("digest"),
        "me",
        "A private digest of your own queue",
        &["digest", "me"],
        &[opt(
            "cron",
            "5 or 6 cron fields, like 30 8 * * 1-5",
            Kind::Text,
            true,
        )],
    ),
    sub(
        Some("desk"),
        "link",
        "A one-time code to share this desk",
        &["desk", "link"],
        &[],
    ),
    sub(
        Some("desk"),
        "join",
        "Join the desk of a code from desk link",
        &["desk", "join"],
        &[
            opt("code", "The code from /ticket desk link", Kind::Word, true),
            opt(
                "merge",
                "Move this server's own tickets into the shared desk",
                Kind::Flag("merge"),
                false,
            ),
        ],
    ),
    sub(
        None,
        "role",
        "Set a member's role",
        &["role"],
        &[
            opt("user", "Whose role", Kind::User, true),
            opt(
                "role",
                "admin, agent or member",
                Kind::Choice(&["admin", "agent", "member"]),
                true,
            ),
        ],
    ),
    sub(
        None,
        "help",
        "What you can type",
        &["help"],
        &[opt("topic", "A subcommand", Kind::Word, false)],
    ),
];

fn option_json(o: &Param) -> Value {
    let mut v = json!({ "name": o.name, "description": o.description, "required": o.required });
    match o.kind {
        Kind::Ticket => {
            v["type"] = json!(4);
            v["min_value"] = json!(1);
            v["autocomplete"] = json!(true);
        }
        Kind::Text => {
            v["type"] = json!(3);
            v["max_length"] = json!(4000);
        }
        Kind::Word => {
            v["type"] = json!(3);
            v["max_length"] = json!(200);
        }
        Kind::Choice(words) => {
            v["type"] = json!(3);
            v["choices"] = words
                .iter()
                .map(|w| json!({ "name": w, "value": w }))
                .collect();
        }
        Kind::User => v["type"] = json!(6),
        Kind::Flag(_) => v["type"] = json!(5),
    }
    v
}

fn sub_json(s: &Sub) -> Value {
    json!({
        "type": 1,
        "name": s.name,
        "description": s.description,
        "options": s.options.iter().map(option_json).collect::<Vec<_>>(),
    })
}

/// The `/ticket` command as Discord registers it (guild-only, chat input).
pub fn definition() -> Value {
    let mut options: Vec<Value> = Vec::new();
    let mut groups: Vec<&str> = Vec::new();
    for s in SUBCOMMANDS {
        match s.group {
            None => options.push(sub_json(s)),
            Some(g) if !groups.contains(&g) => {
                groups.push(g);
                let subs: Vec<Value> = SUBCOMMANDS
                    .iter()
                    .filter(|x| x.group == Some(g))
                    .map(sub_json)
                    .collect();
                options.push(json!({
                    "type": 2,
                    "name": g,
                    "description": group_description(g),
                    "options": subs,
                }));
            }
            Some(_) => {}
        }
    }
    json!({
        "name": "ticket",
        "type": 1,
        "description": "Create and work support tickets",
        "contexts": [0],
        "integration_types": [0],
        "options": options,
    })
}

fn group_description(group: &str) -> &'static str {
    match group {
        "mailbox" => "Connect a support mailbox",
        "sla" => "SLA targets, business hours and holidays",
        "digest" => "Digests of the queue",
        _ => "Share one desk across Slack and Discord",
    }
}

/// The commands file: a JSON array, as `PUT /applications/{id}/commands` takes it.
pub fn manifest() -> String {
    let mut out = serde_json::to_string_pretty(&json!([definition()])).unwrap_or_default();
    out.push('\n');
    out
}

/// The subcommand at `path` (`["new"]`, `["sla", "set"]`).
pub fn find(path: &[&str]) -> Option<&'static Sub> {
    SUBCOMMANDS.iter().find(|s| match (s.group, path) {
        (None, [name]) => s.name == *name,
        (Some(g), [group, name]) => g == *group && s.name == *name,
        _ => false,
    })
}

/// The grammar's arguments for an invocation of `sub` with `given` options.
pub fn parts(sub: &Sub, given: &[Opt]) -> Vec<Part> {
    let mut out: Vec<Part> = sub
        .words
        .iter()
        .map(|w| Part::Word((*w).to_owned()))
        .collect();
    let value = |name: &str| {
        given
            .iter()
            .find(|o| o.name == name)
            .and_then(Opt::text)
            .filter(|v| !v.trim().is_empty())
    };
    // `list` takes a filter or a user; a user wins.
    if sub.name == "list" && sub.group.is_none() {
        if let Some(user) = value("user") {
            out.push(Part::User(user));
        } else if let Some(filter) = value("filter") {
            out.push(Part::Word(filter));
        }
        return out;
    }
    // An organization takes no person's name.
    let organization = value("contact").is_some_and(|c| !c.contains('@'));
    for o in sub.options {
        let Some(v) = value(o.name) else {
            if sub.name == "assign" && o.name == "user" {
                out.push(Part::Word("me".into()));
            }
            continue;
        };
        if organization && o.name == "name" {
            continue;
        }
        out.push(match o.kind {
            Kind::Text => Part::Text(v),
            Kind::User => Part::User(v),
            Kind::Flag(word) if v == "true" => Part::Word(word.to_owned()),
            Kind::Flag(_) => continue,
            Kind::Ticket | Kind::Word | Kind::Choice(_) => Part::Word(v),
        });
    }
    out
}

/// Discord's limits on a command definition, as violations (empty when it fits).
pub fn definition_violations(def: &Value) -> Vec<String> {
    fn name_ok(n: &str) -> bool {
        (1..=32).contains(&n.chars().count())
            && n.chars()
                .all(|c| c == '-' || c == '_' || c.is_lowercase() || c.is_numeric())
    }
    fn check(v: &Value, path: &str, out: &mut Vec<String>) {
        let name = v["name"].as_str().unwrap_or_default();
        if !name_ok(name) {
            out.push(format!("{path}: bad name {name:?}"));
        }
        let d = v["description"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .count();
        if !(1..=100).contains(&d) {
            out.push(format!("{path}.{name}: description of {d} characters"));
        }
        let options = v["options"].as_array().cloned().unwrap_or_default();
        if options.len() > 25 {
            out.push(format!("{path}.{name}: {} options", options.len()));
        }
        let mut seen_optional = false;
        for o in &options {
            if o["required"].as_bool() == Some(true) && seen_optional {
                out.push(format!(
                    "{path}.{name}: a required option after an optional one"
                ));
            }
            if o["required"].as_bool() != Some(true) && o["type"].as_u64().unwrap_or(0) > 2 {
                seen_optional = true;
            }
            if o["choices"].as_array().is_some_and(|c| c.len() > 25) {
                out.push(format!("{path}.{name}: more than 25 choices"));
            }
            check(o, &format!("{path}.{name}"), out);
        }
    }
    let mut out = Vec::new();
    check(def, "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::command::{Command, Who};
    use crate::core::grammar::{self, parse_parts};
    use crate::core::ticket::{Priority, TicketNo};

    fn given(pairs: &[(&str, Value)]) -> Vec<Opt> {
        pairs
            .iter()
            .map(|(n, v)| Opt {
                name: (*n).to_owned(),
                value: Some(v.clone()),
                ..Opt::default()
            })
            .collect()
    }

    #[test]
    fn the_definition_fits_discords_limits_and_covers_every_subcommand() {
        let def = definition();
        assert_eq!(definition_violations(&def), Vec::<String>::new());
        assert!(def["options"].as_array().unwrap().len() <= 25);
        // Every grammar subcommand has a Discord counterpart.
        for (name, _) in grammar::USAGE {
            assert!(
                SUBCOMMANDS.iter().any(|s| s.words[0] == *name),
                "{name} has no Discord subcommand"
            );
        }
    }

    #[test]
    fn the_committed_commands_file_is_the_definition() {
        let committed = include_str!("../../manifests/discord-commands.json");
        assert_eq!(
            committed,
            manifest(),
            "run: cargo run -- discord register --print > manifests/discord-commands.json"
        );
    }

    #[test]
    fn typed_options_become_the_same_commands_as_text() {
        let cases: Vec<(&[&str], Vec<Opt>, Command)> = vec![
            (
                &["new"],
                given(&[
                    ("description", json!("low battery")),
                    ("priority", json!("high")),
                ]),
                Command::New {
                    priority: Some(Priority::High),
                    description: Some("low battery".into()),
                },
            ),
            (
                &["assign"],
                given(&[("ticket", json!(7))]),
                Command::Assign {
                    no: TicketNo(7),
                    who: Who::Me,
                },
            ),
            (
                &["assign"],
                given(&[("ticket", json!(7)), ("user", json!("80351110224678912"))]),
                Command::Assign {
                    no: TicketNo(7),
                    who: Who::User("80351110224678912".into()),
                },
            ),
            (&["sla", "hours_off"], vec![], Command::SlaHoursOff),
            (&["digest", "now"], vec![], Command::DigestNow),
            (
                &["desk", "join"],
                given(&[("code", json!("ABCD-EFGH")), ("merge", json!(true))]),
                Command::DeskJoin {
                    code: "ABCD-EFGH".into(),
                    merge: true,
                },
            ),
        ];
        for (path, opts, want) in cases {
            let sub = find(path).unwrap();
            assert_eq!(parse_parts(&parts(sub, &opts)).unwrap(), want, "{path:?}");
        }
        assert!(find(&["nope"]).is_none());
        assert!(find(&["sla", "nope"]).is_none());
    }
}
