//! Lenient models of Discord interactions: only the fields we read, each defaulted, so payloads
//! with new fields or without optional ones still parse (Discord's own documented examples lack
//! some fields a strict model demands).

use serde::Deserialize;
use serde_json::Value;

/// Interaction types.
pub const PING: u8 = 1;
pub const APPLICATION_COMMAND: u8 = 2;
pub const MESSAGE_COMPONENT: u8 = 3;
pub const AUTOCOMPLETE: u8 = 4;
pub const MODAL_SUBMIT: u8 = 5;

/// Permission bits that make a member a desk admin.
pub const ADMINISTRATOR: u64 = 1 << 3;
pub const MANAGE_GUILD: u64 = 1 << 5;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Interaction {
    pub id: String,
    pub application_id: String,
    #[serde(rename = "type")]
    pub kind: u8,
    pub data: Option<Data>,
    pub guild_id: Option<String>,
    pub channel_id: Option<String>,
    pub channel: Option<Channel>,
    pub member: Option<Member>,
    pub user: Option<User>,
    pub token: String,
    pub message: Option<Message>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Data {
    pub name: String,
    pub options: Vec<Opt>,
    pub custom_id: String,
    pub component_type: Option<u8>,
    pub values: Vec<String>,
    /// A modal's rows or labels, walked by [`Data::fields`].
    pub components: Vec<Value>,
    /// The users (and members) that user options name.
    pub resolved: Resolved,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Resolved {
    pub users: std::collections::HashMap<String, User>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Opt {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: u8,
    pub value: Option<Value>,
    pub options: Vec<Opt>,
    pub focused: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Channel {
    pub id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Message {
    pub id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Member {
    pub user: Option<User>,
    pub nick: Option<String>,
    /// The member's permissions in the channel, a decimal bit set.
    pub permissions: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct User {
    pub id: String,
    pub username: Option<String>,
    pub global_name: Option<String>,
    /// A bot account (an application's), which no ticket can be assigned to.
    pub bot: bool,
}

impl Interaction {
    /// The user who acted, from the guild member or (in DMs) the user.
    pub fn actor(&self) -> Option<&User> {
        self.member
            .as_ref()
            .and_then(|m| m.user.as_ref())
            .or(self.user.as_ref())
            .filter(|u| !u.id.is_empty())
    }

    /// The actor's display name: guild nickname, global name, else username.
    pub fn actor_name(&self) -> Option<String> {
        let nick = self.member.as_ref().and_then(|m| m.nick.clone());
        let user = self.actor()?;
        nick.or_else(|| user.global_name.clone())
            .or_else(|| user.username.clone())
    }

    /// Whether the actor may manage the guild (Manage Guild or Administrator).
    pub fn actor_manages_guild(&self) -> bool {
        self.member
            .as_ref()
            .and_then(|m| m.permissions.as_deref())
            .and_then(|p| p.parse::<u64>().ok())
            .is_some_and(|p| p & (MANAGE_GUILD | ADMINISTRATOR) != 0)
    }

    pub fn channel(&self) -> Option<&str> {
        self.channel_id
            .as_deref()
            .or(self.channel.as_ref().map(|c| c.id.as_str()))
            .filter(|c| !c.is_empty())
    }
}

impl Opt {
    /// The value as text (strings as they are, numbers and booleans printed).
    pub fn text(&self) -> Option<String> {
        match self.value.as_ref()? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

impl Data {
    /// The path of subcommand group and subcommand names, and the leaf options.
    pub fn path(&self) -> (Vec<&str>, &[Opt]) {
        let mut path = Vec::new();
        let mut options = self.options.as_slice();
        // SUB_COMMAND = 1, SUB_COMMAND_GROUP = 2.
        while let [only] = options {
            if only.kind != 1 && only.kind != 2 {
                break;
            }
            path.push(only.name.as_str());
            options = only.options.as_slice();
        }
        (path, options)
    }

    /// A submitted modal's values by `custom_id`, from classic action rows or newer labels.
    pub fn fields(&self) -> Vec<(String, String)> {
        fn walk(v: &Value, out: &mut Vec<(String, String)>) {
            match v {
                Value::Object(map) => {
                    if let Some(Value::String(id)) = map.get("custom_id") {
                        if let Some(Value::String(value)) = map.get("value") {
                            out.push((id.clone(), value.clone()));
                        } else if let Some(Value::Array(values)) = map.get("values") {
                            let first = values.first().and_then(Value::as_str).unwrap_or_default();
                            out.push((id.clone(), first.to_owned()));
                        }
                    }
                    for child in map.values() {
                        if child.is_array() || child.is_object() {
                            walk(child, out);
                        }
                    }
                }
                Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        self.components.iter().for_each(|c| walk(c, &mut out));
        out
    }

    /// One modal field's trimmed value, when filled in.
    pub fn field(&self, id: &str) -> Option<String> {
        self.fields()
            .into_iter()
            .find(|(k, _)| k == id)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let raw = std::fs::read_to_string(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        strip_jsonc(&raw)
    }

    /// The `.jsonc` fixtures are Discord's documented examples: comments, `...` lines and
    /// trailing commas removed, they are JSON.
    pub fn strip_jsonc(raw: &str) -> String {
        let lines: String = raw
            .lines()
            .map(|l| match l.find("//") {
                Some(i) if !l[..i].contains("http") => &l[..i],
                _ => l,
            })
            .filter(|l| !l.trim().starts_with("..."))
            .collect::<Vec<_>>()
            .join("\n");
        let chars: Vec<char> = lines.chars().collect();
        let mut out = String::with_capacity(lines.len());
        for (i, c) in chars.iter().enumerate() {
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            if *c == ',' && matches!(next, Some('}') | Some(']') | None) {
                continue;
            }
            out.push(*c);
        }
        out
    }

    #[test]
    fn discords_documented_examples_parse() {
        let cmd: Interaction =
            serde_json::from_str(&fixture("discord-interaction-application-command.json")).unwrap();
        assert_eq!(cmd.kind, APPLICATION_COMMAND);
        assert_eq!(cmd.actor().unwrap().id, "53908232506183680");
        assert_eq!(cmd.actor_name().as_deref(), Some("Mason"));
        assert!(cmd.actor_manages_guild());
        assert_eq!(cmd.channel(), Some("645027906669510667"));
        let minimal: Interaction = serde_json::from_str(&fixture(
            "discord-interaction-message-component-minimal.json",
        ))
        .unwrap();
        assert_eq!(minimal.data.as_ref().unwrap().custom_id, "test");
        assert!(minimal.actor().is_none());
        let auto: Interaction =
            serde_json::from_str(&fixture("discord-interaction-autocomplete-partial.json"))
                .unwrap();
        let data = auto.data.unwrap();
        assert!(data.options[0].focused);
        let ping: Interaction =
            serde_json::from_str(&fixture("discord-interaction-ping.json")).unwrap();
        assert_eq!(ping.kind, PING);
        let click: Interaction =
            serde_json::from_str(&fixture("discord-interaction-button-click-data.jsonc")).unwrap();
        assert_eq!(click.data.unwrap().custom_id, "click_me");
        let submit: Interaction =
            serde_json::from_str(&fixture("discord-interaction-modal-submit-data.jsonc")).unwrap();
        assert_eq!(
            submit.data.unwrap().field("game_feedback").as_deref(),
            Some(
                "The recent changes to acceleration feel much better, but shadows still need help"
            )
        );
        let select: Interaction =
            serde_json::from_str(&fixture("discord-interaction-string-select-data.jsonc")).unwrap();
        assert!(!select.data.unwrap().values.is_empty());
    }

    #[test]
    fn modal_values_come_from_rows_and_labels() {
        let data: Data = serde_json::from_value(serde_json::json!({
            "custom_id": "new_ticket",
            "components": [
                {"type": 1, "components": [{"type": 4, "custom_id": "description", "value": " VPN down "}]},
                {"type": 18, "component": {"type": 3, "custom_id": "priority", "values": ["high"]}},
                {"type": 1, "components": [{"type": 4, "custom_id": "contact", "value": ""}]}
            ]
        }))
        .unwrap();
        assert_eq!(data.field("description").as_deref(), Some("VPN down"));
        assert_eq!(data.field("priority").as_deref(), Some("high"));
        assert_eq!(data.field("contact"), None);
    }

    #[test]
    fn subcommand_paths_unwrap_groups() {
        let data: Data = serde_json::from_value(serde_json::json!({
            "name": "ticket",
            "options": [{"type": 2, "name": "sla", "options": [
                {"type": 1, "name": "set", "options": [
                    {"type": 3, "name": "priority", "value": "high"},
                    {"type": 3, "name": "first_response", "value": "1h"}
                ]}
            ]}]
        }))
        .unwrap();
        let (path, options) = data.path();
        assert_eq!(path, ["sla", "set"]);
        assert_eq!(options.len(), 2);
    }
}
