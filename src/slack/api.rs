//! A thin Slack Web API client on reqwest, and the outbox sender built on it.
//!
//! Thin on purpose: we call five methods with JSON bodies, every base URL is a setting (tests
//! point it at wiremock over plain HTTP), and rate limits must surface as `Retry-After` for the
//! outbox rather than be slept on inside a client.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::render::{self, card_blocks, card_text};
use crate::core::outgoing::Outgoing;
use crate::outbox::{Delivery, Partial, Pauses, Sender, card_of, refresh_copies};
use crate::secret::Sealer;
use crate::store::{CardMessage, OutboxItem, Store};

/// Why a Web API call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    #[error("rate limited")]
    RateLimited(Option<Duration>),
    #[error("slack answered {0}")]
    Slack(String),
    #[error("http {0}")]
    Status(u16),
    #[error("network: {0}")]
    Network(String),
}

impl crate::outbox::DeliveryError for ApiError {
    fn rate_limited(&self) -> Option<Option<Duration>> {
        match self {
            ApiError::RateLimited(after) => Some(*after),
            _ => None,
        }
    }

    fn transient(&self) -> bool {
        ApiError::transient(self)
    }

    fn this_copy_only(&self) -> bool {
        ApiError::this_copy_only(self)
    }
}

impl ApiError {
    /// Whether the message a call named is not there for us any more (deleted, or one we may
    /// not edit): a card edit that fails so is skipped, and a card posted again.
    pub fn gone(&self) -> bool {
        matches!(self, ApiError::Slack(code) if matches!(
            code.as_str(),
            "message_not_found" | "cant_update_message" | "edit_window_closed"
        ))
    }

    /// Whether the failure is that one channel's (archived, left, gone), not the workspace's:
    /// a card copy there is skipped and the other copies still change, rather than every
    /// later update of the ticket failing on it.
    pub fn this_copy_only(&self) -> bool {
        self.gone()
            || matches!(self, ApiError::Slack(code) if matches!(
                code.as_str(),
                "channel_not_found"
                    | "is_archived"
                    | "not_in_channel"
                    | "thread_locked"
                    | "restricted_action"
                    | "restricted_action_read_only_channel"
                    | "restricted_action_thread_only_channel"
                    | "restricted_action_non_threadable_channel"
            ))
    }

    /// Whether trying again later may work.
    pub fn transient(&self) -> bool {
        match self {
            ApiError::RateLimited(_) | ApiError::Network(_) => true,
            ApiError::Status(s) => *s >= 500,
            ApiError::Slack(code) => matches!(
                code.as_str(),
                "ratelimited"
                    | "internal_error"
                    | "fatal_error"
                    | "service_unavailable"
                    | "request_timeout"
            ),
        }
    }
}

/// The Web API at one base URL.
#[derive(Clone, Debug)]
pub struct WebApi {
    http: reqwest::Client,
    base: String,
}

impl WebApi {
    pub fn new(base: &str) -> WebApi {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        WebApi {
            http,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// The Web API base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Calls `method` with a JSON body; returns the response when `ok` is true.
    pub async fn call<B: serde::Serialize + ?Sized>(
        &self,
        token: &SecretString,
        method: &str,
        body: &B,
    ) -> Result<Value, ApiError> {
        let request = self
            .http
            .post(format!("{}/{method}", self.base))
            .bearer_auth(token.expose_secret())
            .json(body);
        Self::answer(request).await
    }

    /// Calls a read method, which Slack takes form-encoded only (`users.info`, `oauth.v2.access`).
    /// Without a token, the form itself carries the credentials.
    pub async fn call_form(
        &self,
        token: Option<&SecretString>,
        method: &str,
        form: &[(&str, &str)],
    ) -> Result<Value, ApiError> {
        let mut request = self.http.post(format!("{}/{method}", self.base)).form(form);
        if let Some(token) = token {
            request = request.bearer_auth(token.expose_secret());
        }
        Self::answer(request).await
    }

    /// Sends a request and reads Slack's answer: rate limits with their `Retry-After`, HTTP
    /// errors, and `ok: false` with its error code.
    async fn answer(request: reqwest::RequestBuilder) -> Result<Value, ApiError> {
        let response = request
            .send()
            .await
            .map_err(|e| ApiError::Network(e.without_url().to_string()))?;
        let status = response.status();
        if status.as_u16() == 429 {
            let after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                // An absurd value must not overflow a deadline: an hour at most, as Discord's.
                .map(|s| Duration::from_secs(s.min(3600)));
            return Err(ApiError::RateLimited(after));
        }
        if !status.is_success() {
            return Err(ApiError::Status(status.as_u16()));
        }
        let value: Value = response
            .json()
            .await
            .map_err(|e| ApiError::Network(e.without_url().to_string()))?;
        if value["ok"].as_bool() == Some(true) {
            Ok(value)
        } else {
            let code = value["error"]
                .as_str()
                .unwrap_or("unknown_error")
                .to_owned();
            Err(ApiError::Slack(code))
        }
    }

    /// Posts a JSON body to a `response_url` (no token: the URL is the credential).
    pub async fn respond<B: serde::Serialize + ?Sized>(
        &self,
        response_url: &str,
        body: &B,
    ) -> Result<(), ApiError> {
        let response = self
            .http
            .post(response_url)
            .json(body)
            .send()
            .await
            .map_err(|e| ApiError::Network(e.without_url().to_string()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(ApiError::Status(response.status().as_u16()))
        }
    }
}

/// A card as `chat.postMessage` (without `ts`) and `chat.update` take it.
#[derive(serde::Serialize)]
struct CardBody<'a> {
    channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ts: Option<&'a str>,
    text: &'a str,
    blocks: &'a [render::Block],
}

/// Delivers outbox messages to Slack with the workspace's bot token.
pub struct SlackSender {
    pub api: WebApi,
    pub store: Arc<dyn Store>,
    pub tokens: Tokens,
    /// Workspaces whose calls wait out a `Retry-After` Slack gave, until when: every message
    /// to that workspace waits with the one that was refused (its limits are per workspace),
    /// and a message held so is not sent and not counted as an attempt.
    pub paused: Pauses,
}

/// Where a workspace's bot token comes from: `SLACK_BOT_TOKEN` in single-workspace mode,
/// otherwise the workspace's OAuth install, sealed in the database.
#[derive(Clone)]
pub struct Tokens {
    pub single: Option<SecretString>,
    pub sealer: Option<Sealer>,
    pub store: Arc<dyn Store>,
}

impl Tokens {
    /// The bot token for `team`; `Ok(None)` when the workspace has none.
    pub async fn for_team(&self, team: &str) -> Result<Option<SecretString>, String> {
        if let Some(token) = &self.single {
            return Ok(Some(token.clone()));
        }
        let Some(sealer) = &self.sealer else {
            return Ok(None);
        };
        let Some(install) = self
            .store
            .slack_install(team)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let plain = sealer
            .open(&install.bot_token, &install_ad(team))
            .ok_or("the stored token does not open with this secret key")?;
        String::from_utf8(plain)
            .map(|t| Some(SecretString::from(t)))
            .map_err(|_| "the stored token is not text".to_owned())
    }
}

/// The associated data that binds a sealed bot token to its workspace.
pub fn install_ad(team: &str) -> String {
    format!("slack-install:{team}")
}

impl SlackSender {
    async fn send(
        &self,
        token: &SecretString,
        item: &OutboxItem,
    ) -> Result<Option<CardMessage>, Partial<ApiError>> {
        match &item.message {
            Outgoing::PostCard {
                surface,
                channel,
                ticket,
            } => {
                let Some((card, cards)) = card_of(&*self.store, item, *ticket, surface)
                    .await
                    .map_err(ApiError::Network)?
                else {
                    return Ok(None);
                };
                let existing = cards.into_iter().find(|m| &m.channel == channel);
                let (text, blocks) = (card_text(&card), card_blocks(&card));
                let mut body = CardBody {
                    channel,
                    ts: None,
                    text: &text,
                    blocks: &blocks,
                };
                if let Some(m) = &existing {
                    body.ts = Some(&m.message_id);
                    match self.api.call(token, "chat.update", &body).await {
                        Ok(_) => return Ok(None),
                        // Someone deleted the card: it is posted again, and recorded anew.
                        Err(e) if e.gone() => body.ts = None,
                        Err(e) => return Err(e.into()),
                    }
                }
                let posted = self.api.call(token, "chat.postMessage", &body).await?;
                // The card lives where it was posted (a channel id from Slack's own payload,
                // which Slack's answer repeats); without a `ts` there is nothing to edit later.
                let Some(ts) = posted["ts"].as_str().filter(|ts| !ts.is_empty()) else {
                    tracing::warn!(
                        channel,
                        "chat.postMessage answered without a ts; the card cannot be edited later."
                    );
                    return Ok(None);
                };
                Ok(Some(CardMessage {
                    ticket: *ticket,
                    surface: surface.clone(),
                    channel: channel.clone(),
                    message_id: ts.to_owned(),
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
                    .map_err(ApiError::Network)?
                else {
                    return Ok(None);
                };
                let copies = Copies {
                    api: &self.api,
                    token,
                    text: card_text(&card),
                    blocks: card_blocks(&card),
                };
                let (answered, note) = (answered.as_deref(), note.as_deref());
                refresh_copies(item, cards, answered, note, &copies).await?;
                Ok(None)
            }
            // Posting to a user id opens the direct message with them.
            Outgoing::DirectMessage {
                user: crate::core::people::UserRef { id: channel, .. },
                text,
                ..
            }
            | Outgoing::ChannelMessage { channel, text, .. } => {
                let body = json!({ "channel": channel, "text": render::escape(text) });
                self.api.call(token, "chat.postMessage", &body).await?;
                Ok(None)
            }
            Outgoing::Digest {
                channel,
                user,
                digest,
                ..
            } => {
                let to = user.as_ref().map_or(channel, |u| &u.id);
                let body = json!({ "channel": to, "text": render::escape(&digest.summary()), "blocks": render::digest_blocks(digest) });
                self.api.call(token, "chat.postMessage", &body).await?;
                Ok(None)
            }
        }
    }
}

/// A ticket's card, rendered once, and how Slack edits its copies and says notes under them.
struct Copies<'a> {
    api: &'a WebApi,
    token: &'a SecretString,
    text: String,
    blocks: Vec<render::Block>,
}

#[async_trait]
impl crate::outbox::CardCopies for Copies<'_> {
    type Error = ApiError;

    async fn edit(&self, m: &CardMessage) -> Result<(), ApiError> {
        let body = CardBody {
            channel: &m.channel,
            ts: Some(&m.message_id),
            text: &self.text,
            blocks: &self.blocks,
        };
        self.api
            .call(self.token, "chat.update", &body)
            .await
            .map(drop)
    }

    async fn say(&self, m: &CardMessage, note: &str) -> Result<(), ApiError> {
        let reply = json!({ "channel": m.channel, "thread_ts": m.message_id, "text": render::escape(note) });
        (self.api.call(self.token, "chat.postMessage", &reply).await).map(drop)
    }
}

#[async_trait]
impl Sender for SlackSender {
    async fn deliver(&self, item: &OutboxItem) -> Delivery {
        let team = &item.message.surface().external_id;
        if let Some(after) = self.paused.wait(&[team]) {
            return Delivery::Held { after };
        }
        let token = match self
            .tokens
            .for_team(&item.message.surface().external_id)
            .await
        {
            Ok(Some(token)) => token,
            Ok(None) => return Delivery::Failed("no Slack bot token for this workspace".into()),
            // The token could not be read (the database, for now): try again later.
            Err(error) => {
                return Delivery::Retry {
                    after: None,
                    error,
                    done: Vec::new(),
                };
            }
        };
        if item.surface_revoked {
            return Delivery::Failed("the workspace revoked the app's token".into());
        }
        let result = self.send(&token, item).await;
        if let Err(Partial {
            error: ApiError::RateLimited(after),
            ..
        }) = &result
        {
            self.paused
                .pause(team, after.unwrap_or(Duration::from_secs(1)));
        }
        Delivery::of(result)
    }
}
