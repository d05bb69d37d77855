//! What Slack sends, modelled leniently: every field we do not need is ignored, every field
//! Slack may leave out is optional, so new or missing fields never break a request.

use std::collections::HashMap;

use serde::Deserialize;

/// A slash command (form-encoded).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SlashCommand {
    pub team_id: String,
    pub team_domain: Option<String>,
    pub channel_id: Option<String>,
    pub user_id: String,
    pub user_name: Option<String>,
    pub command: Option<String>,
    pub text: String,
    pub response_url: Option<String>,
    pub trigger_id: Option<String>,
}

/// The `payload` field of an interaction.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Interaction {
    #[serde(rename = "type")]
    pub kind: String,
    pub user: IdName,
    pub team: Option<IdName>,
    pub channel: Option<IdName>,
    pub container: Option<Container>,
    pub message: Option<Message>,
    pub trigger_id: Option<String>,
    pub response_url: Option<String>,
    pub actions: Vec<BlockAction>,
    pub view: Option<View>,
}

impl Interaction {
    /// The workspace: `team.id`, else the user's `team_id`.
    pub fn team_id(&self) -> Option<&str> {
        self.team
            .as_ref()
            .map(|t| t.id.as_str())
            .filter(|id| !id.is_empty())
            .or(self.user.team_id.as_deref())
    }

    pub fn channel_id(&self) -> Option<&str> {
        self.channel.as_ref().map(|c| c.id.as_str()).or_else(|| {
            self.container
                .as_ref()
                .and_then(|c| c.channel_id.as_deref())
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IdName {
    pub id: String,
    pub name: Option<String>,
    pub username: Option<String>,
    pub team_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Container {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub message_ts: Option<String>,
    pub channel_id: Option<String>,
    /// Whether the message is an ephemeral reply (only the clicker sees it) rather than a
    /// message in the channel.
    pub is_ephemeral: Option<bool>,
}

impl Container {
    /// A message in the channel, not an ephemeral reply. The only such messages with a card's
    /// buttons are the cards the outbox posted (replies with buttons are ephemeral), and every
    /// change edits those with `chat.update`.
    pub fn is_posted_message(&self) -> bool {
        self.kind.as_deref() == Some("message")
            && self.message_ts.is_some()
            && self.is_ephemeral == Some(false)
    }

    /// A message container that does not say whether it is ephemeral (Slack always says; a
    /// payload that leaves it out is asked about by its message instead).
    pub fn unsure(&self) -> Option<(&str, &str)> {
        match (
            &self.kind,
            &self.channel_id,
            &self.message_ts,
            self.is_ephemeral,
        ) {
            (Some(kind), Some(channel), Some(ts), None) if kind == "message" => Some((channel, ts)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Message {
    pub ts: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BlockAction {
    pub action_id: String,
    pub block_id: Option<String>,
    pub value: Option<String>,
    pub selected_option: Option<SelectedOption>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SelectedOption {
    pub value: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct View {
    pub id: Option<String>,
    pub callback_id: String,
    pub private_metadata: String,
    pub state: ViewState,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ViewState {
    /// block id → action id → value.
    pub values: HashMap<String, HashMap<String, InputValue>>,
}

impl ViewState {
    /// The value of the first input in `block`, whatever its element type.
    pub fn get(&self, block: &str) -> Option<String> {
        let input = self.values.get(block)?.values().next()?;
        input
            .value
            .clone()
            .or_else(|| input.selected_option.as_ref().map(|o| o.value.clone()))
            .or_else(|| input.selected_user.clone())
            .filter(|v| !v.trim().is_empty())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct InputValue {
    pub value: Option<String>,
    pub selected_option: Option<SelectedOption>,
    pub selected_user: Option<String>,
}

/// An Events API request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EventEnvelope {
    #[serde(rename = "type")]
    pub kind: String,
    pub challenge: Option<String>,
    pub team_id: Option<String>,
    pub event_id: Option<String>,
    pub event: Option<Event>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    pub user: Option<String>,
    pub reaction: Option<String>,
    pub item: Option<EventItem>,
    pub channel: Option<String>,
    pub ts: Option<String>,
    pub thread_ts: Option<String>,
    /// `tokens_revoked`: whose tokens went, by kind.
    pub tokens: Option<RevokedTokens>,
}

/// The tokens a `tokens_revoked` event names: user tokens (`oauth`) and bot tokens (`bot`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RevokedTokens {
    pub oauth: Vec<String>,
    pub bot: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EventItem {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub channel: Option<String>,
    pub ts: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn the_fixtures_parse() {
        let cmd: SlashCommand =
            serde_urlencoded::from_str(&fixture("slack-slash-command-bolt.txt")).unwrap();
        assert_eq!(
            (
                cmd.team_id.as_str(),
                cmd.user_id.as_str(),
                cmd.text.as_str()
            ),
            ("T111", "W111", "Hi")
        );
        let actions: Interaction =
            serde_json::from_str(&fixture("slack-block-actions.json")).unwrap();
        assert_eq!(actions.team_id(), Some("T111"));
        assert_eq!(actions.actions[0].value.as_deref(), Some("click_me_123"));
        let view: Interaction =
            serde_json::from_str(&fixture("slack-view-submission.json")).unwrap();
        assert_eq!(view.kind, "view_submission");
        let mention: EventEnvelope =
            serde_json::from_str(&fixture("slack-event-app-mention.json")).unwrap();
        assert_eq!(mention.event.unwrap().kind, "app_mention");
        let reaction: EventEnvelope =
            serde_json::from_str(&fixture("slack-event-reaction-added.json")).unwrap();
        assert_eq!(
            reaction.event.unwrap().reaction.as_deref(),
            Some("heart_eyes")
        );
    }

    #[test]
    fn minimal_payloads_parse() {
        let i: Interaction =
            serde_json::from_str(r#"{"type":"block_actions","brand_new_field":{"x":1}}"#).unwrap();
        assert!(i.actions.is_empty());
        let e: EventEnvelope = serde_json::from_str(r#"{"type":"event_callback"}"#).unwrap();
        assert!(e.event.is_none());
    }
}
