//! Discord's REST API on reqwest: channel posts and edits, direct messages, interaction
//! followups, and command registration; with Discord's rate limits honoured.
//!
//! Thin on purpose, like the Slack client: the base URL is a setting (tests use wiremock over
//! plain HTTP), and a 429 must become a `Retry-After` for the outbox rather than a sleep inside
//! a client. Limits: a 429's `retry_after` (body) or `Retry-After`/`X-RateLimit-Reset-After`
//! (headers); a global 429 pauses every request; a bucket reporting `X-RateLimit-Remaining: 0`
//! pauses that route until its reset, so we wait instead of earning a 429.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::render;
use crate::core::outgoing::Outgoing;
use crate::outbox::{Delivery, Partial, Pauses, Sender, card_of, refresh_copies};
use crate::store::{CardMessage, OutboxItem, Store};

/// Why a REST call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RestError {
    #[error("rate limited")]
    RateLimited(Option<Duration>),
    /// Not sent: the route (or the bot, globally) is paused by a limit Discord announced.
    #[error("waiting out a rate limit")]
    Held(Duration),
    #[error("discord answered {0}: {1}")]
    Status(u16, String),
    #[error("network: {0}")]
    Network(String),
    #[error("DISCORD_BOT_TOKEN is not set")]
    NoToken,
}

impl crate::outbox::DeliveryError for RestError {
    fn rate_limited(&self) -> Option<Option<Duration>> {
        match self {
            RestError::RateLimited(after) => Some(*after),
            _ => None,
        }
    }

    fn transient(&self) -> bool {
        RestError::transient(self)
    }

    fn held(&self) -> Option<Duration> {
        match self {
            RestError::Held(wait) => Some(*wait),
            _ => None,
        }
    }

    fn this_copy_only(&self) -> bool {
        RestError::this_copy_only(self)
    }
}

impl RestError {
    /// Whether the message a call named is not there for us any more (404: deleted, with its
    /// channel or alone; 403: not ours to edit): a card edit that fails so is skipped, and a
    /// card posted again.
    pub fn gone(&self) -> bool {
        matches!(self, RestError::Status(404 | 403, _))
    }

    /// Whether the failure is that one message's or channel's (gone, not ours, an archived
    /// thread: 400): a card copy there is skipped and the other copies still change. A 401 (the
    /// token) is everyone's, and is not.
    pub fn this_copy_only(&self) -> bool {
        self.gone() || matches!(self, RestError::Status(400, _))
    }

    pub fn transient(&self) -> bool {
        match self {
            RestError::RateLimited(_) | RestError::Held(_) | RestError::Network(_) => true,
            RestError::Status(s, _) => *s >= 500,
            RestError::NoToken => false,
        }
    }
}

/// Discord's REST API at one base URL.
pub struct Rest {
    http: reqwest::Client,
    base: String,
    token: Option<SecretString>,
    /// Routes (and `global`) paused until an instant.
    paused: Pauses,
}

impl std::fmt::Debug for Rest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rest")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// The rate-limit key of a path: its major parameter (`channels/123`), and for interaction
/// webhooks the interaction's token too (`webhooks/456/abc`): each interaction's answers have
/// a limit of their own, so one must not hold back every other.
fn route_key(path: &str) -> String {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let major = if parts.first() == Some(&"webhooks") {
        3
    } else {
        2
    };
    parts.into_iter().take(major).collect::<Vec<_>>().join("/")
}

fn seconds(v: Option<&str>) -> Option<Duration> {
    v?.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(3600.0)))
}

impl Rest {
    pub fn new(base: &str, token: Option<SecretString>) -> Rest {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("DiscordBot (https://github.com/piraja-tickets/piraja, 0.1)")
            .build()
            .unwrap_or_default();
        Rest {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
            paused: Pauses::default(),
        }
    }

    fn paused_for(&self, key: &str) -> Option<Duration> {
        // Interaction webhooks (followups, the original response) are not under the bot's
        // global limit.
        if key.starts_with("webhooks/") {
            self.paused.wait(&[key])
        } else {
            self.paused.wait(&["global", key])
        }
    }

    fn pause(&self, key: &str, d: Duration) {
        self.paused.pause(key, d);
    }

    /// Calls `method path` with an optional JSON body; `bot` adds the bot token.
    pub async fn call<B: serde::Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        bot: bool,
    ) -> Result<Value, RestError> {
        let key = route_key(path);
        if let Some(wait) = self.paused_for(&key) {
            return Err(RestError::Held(wait));
        }
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if bot {
            let token = self.token.as_ref().ok_or(RestError::NoToken)?;
            request = request.header("authorization", format!("Bot {}", token.expose_secret()));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| RestError::Network(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let reset_after = seconds(header("x-ratelimit-reset-after").as_deref());
        let retry_after = seconds(header("retry-after").as_deref());
        let global = header("x-ratelimit-global").is_some_and(|g| g == "true");
        if header("x-ratelimit-remaining").as_deref() == Some("0")
            && let Some(reset) = reset_after
        {
            self.pause(&key, reset);
        }
        let text = response
            .text()
            .await
            .map_err(|e| RestError::Network(e.without_url().to_string()))?;
        if status == 429 {
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let after = body["retry_after"]
                .as_f64()
                .and_then(|s| seconds(Some(&s.to_string())))
                .or(retry_after)
                .or(reset_after);
            let global = global || body["global"].as_bool() == Some(true);
            self.pause(
                if global { "global" } else { &key },
                after.unwrap_or(Duration::from_secs(1)),
            );
            return Err(RestError::RateLimited(after));
        }
        if !(200..300).contains(&status) {
            let message: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let reason = message["message"].as_str().unwrap_or("error").to_owned();
            return Err(RestError::Status(status, reason));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| RestError::Network(e.to_string()))
    }

    /// Replaces an interaction's original response (after a deferred answer).
    pub async fn edit_original(
        &self,
        application_id: &str,
        token: &str,
        body: &Value,
    ) -> Result<(), RestError> {
        let path = format!("/webhooks/{application_id}/{token}/messages/@original");
        self.call(Method::PATCH, &path, Some(body), false)
            .await
            .map(|_| ())
    }

    /// Sends a followup message for an interaction (its `flags` decide who sees it).
    pub async fn followup(
        &self,
        application_id: &str,
        token: &str,
        body: &Value,
    ) -> Result<(), RestError> {
        let path = format!("/webhooks/{application_id}/{token}");
        self.call(Method::POST, &path, Some(body), false)
            .await
            .map(|_| ())
    }

    /// Deletes an interaction's original response (a deferred "thinking…" placeholder).
    pub async fn delete_original(
        &self,
        application_id: &str,
        token: &str,
    ) -> Result<(), RestError> {
        let path = format!("/webhooks/{application_id}/{token}/messages/@original");
        self.call::<Value>(Method::DELETE, &path, None, false)
            .await
            .map(|_| ())
    }

    /// Bulk-overwrites the application's commands, globally or in one guild.
    pub async fn register(
        &self,
        application_id: &str,
        guild: Option<&str>,
        commands: &Value,
    ) -> Result<Value, RestError> {
        let path = match guild {
            Some(g) => format!("/applications/{application_id}/guilds/{g}/commands"),
            None => format!("/applications/{application_id}/commands"),
        };
        // A 429 is waited out (its `retry_after`, at most a minute) and the call made again, up
        // to three times: registration is run by hand and should not fail on a busy bucket.
        let mut waited = 0;
        loop {
            match self.call(Method::PUT, &path, Some(commands), true).await {
                Err(e @ (RestError::RateLimited(_) | RestError::Held(_))) if waited < 3 => {
                    waited += 1;
                    let wait = match e {
                        RestError::Held(wait) | RestError::RateLimited(Some(wait)) => wait,
                        _ => Duration::from_secs(1),
                    };
                    tokio::time::sleep(wait.min(Duration::from_secs(60))).await;
                }
                other => return other,
            }
        }
    }
}

/// Delivers outbox messages to Discord with the bot token.
pub struct DiscordSender {
    pub rest: Arc<Rest>,
    pub store: Arc<dyn Store>,
}

impl DiscordSender {
    async fn post<B: serde::Serialize + ?Sized>(
        &self,
        channel: &str,
        body: &B,
    ) -> Result<Value, RestError> {
        self.rest
            .call(
                Method::POST,
                &format!("/channels/{channel}/messages"),
                Some(body),
                true,
            )
            .await
    }

    /// The direct-message channel with a user (Discord returns the existing one).
    async fn dm_channel(&self, user: &str) -> Result<String, RestError> {
        let dm = self
            .rest
            .call(
                Method::POST,
                "/users/@me/channels",
                Some(&json!({ "recipient_id": user })),
                true,
            )
            .await?;
        dm["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| RestError::Status(200, "no DM channel id".into()))
    }

    async fn send(&self, item: &OutboxItem) -> Result<Option<CardMessage>, Partial<RestError>> {
        match &item.message {
            Outgoing::PostCard {
                surface,
                channel,
                ticket,
            } => {
                let Some((card, cards)) = card_of(&*self.store, item, *ticket, surface)
                    .await
                    .map_err(RestError::Network)?
                else {
                    return Ok(None);
                };
                let body = render::card_body(&card, None);
                let existing = cards.into_iter().find(|m| &m.channel == channel);
                if let Some(m) = existing {
                    let path = format!("/channels/{}/messages/{}", m.channel, m.message_id);
                    match self
                        .rest
                        .call(Method::PATCH, &path, Some(&body), true)
                        .await
                    {
                        Ok(_) => return Ok(None),
                        // Someone deleted the card: it is posted again, and recorded anew.
                        Err(e) if e.gone() => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                let posted = self.post(channel, &body).await?;
                Ok(posted["id"].as_str().map(|id| CardMessage {
                    ticket: *ticket,
                    surface: surface.clone(),
                    channel: channel.clone(),
                    message_id: id.to_owned(),
                }))
            }
            Outgoing::UpdateCards {
                surface,
                ticket,
                note,
                answered,
            } => {
                let Some((card, cards)) = card_of(&*self.store, item, *ticket, surface)
                    .await
                    .map_err(RestError::Network)?
                else {
                    return Ok(None);
                };
                let copies = Copies {
                    sender: self,
                    body: render::card_body(&card, None),
                };
                // The clicked card was replaced by the click's own answer.
                let (answered, note) = (answered.as_deref(), note.as_deref());
                refresh_copies(item, cards, answered, note, &copies).await?;
                Ok(None)
            }
            Outgoing::DirectMessage { user, text, .. } => {
                let channel = self.dm_channel(&user.id).await?;
                let body = json!({ "content": crate::core::view::cut(text, render::MAX_CONTENT) });
                self.post(&channel, &body).await?;
                Ok(None)
            }
            Outgoing::Digest {
                channel,
                user,
                digest,
                ..
            } => {
                let to = match user {
                    Some(u) => self.dm_channel(&u.id).await?,
                    None => channel.clone(),
                };
                let body = render::digest_message(digest, user.is_none());
                self.post(&to, &body).await?;
                Ok(None)
            }
            Outgoing::ChannelMessage { channel, text, .. } => {
                let body = json!({ "content": crate::core::view::cut(text, render::MAX_CONTENT), "allowed_mentions": { "parse": ["users"] } });
                self.post(channel, &body).await?;
                Ok(None)
            }
        }
    }
}

/// A ticket's card, rendered once, and how Discord edits its copies and says notes under them
/// (a reply to the card).
struct Copies<'a> {
    sender: &'a DiscordSender,
    body: render::CardBody,
}

#[async_trait]
impl crate::outbox::CardCopies for Copies<'_> {
    type Error = RestError;

    async fn edit(&self, m: &CardMessage) -> Result<(), RestError> {
        let path = format!("/channels/{}/messages/{}", m.channel, m.message_id);
        (self.sender.rest)
            .call(Method::PATCH, &path, Some(&self.body), true)
            .await
            .map(drop)
    }

    async fn say(&self, m: &CardMessage, note: &str) -> Result<(), RestError> {
        let reply = json!({
            "content": crate::core::view::cut(&render::escape(note), render::MAX_CONTENT),
            "message_reference": { "message_id": m.message_id, "fail_if_not_exists": false },
            "allowed_mentions": { "parse": [] },
        });
        self.sender.post(&m.channel, &reply).await.map(drop)
    }
}

#[async_trait]
impl Sender for DiscordSender {
    async fn deliver(&self, item: &OutboxItem) -> Delivery {
        Delivery::of(self.send(item).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_keyed_by_their_major_parameter() {
        assert_eq!(route_key("/channels/1/messages/2"), "channels/1");
        assert_eq!(route_key("/users/@me/channels"), "users/@me");
        // Each interaction's webhook is a route of its own.
        assert_eq!(
            route_key("/webhooks/1/tok-a/messages/@original"),
            "webhooks/1/tok-a"
        );
        assert_ne!(
            route_key("/webhooks/1/tok-a"),
            route_key("/webhooks/1/tok-b")
        );
        assert_eq!(seconds(Some("64.57")), Some(Duration::from_secs_f64(64.57)));
        assert_eq!(seconds(Some("-1")), None);
        assert_eq!(seconds(Some("nan")), None);
    }
}
