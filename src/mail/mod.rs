//! The mail adapter: connecting Gmail and Outlook mailboxes by OAuth (authorization code with
//! PKCE, through the `oauth2` crate), keeping their tokens fresh and sealed, polling them, and
//! fetching threads for `/ticket link`. Gmail and Graph are spoken through thin reqwest clients
//! (`gmail.rs`, `graph.rs`): every base URL is a setting, and we need a handful of calls.

pub mod gmail;
pub mod graph;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, Scope,
    TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::config::{MailProviderSettings, Settings};
use crate::core::command::Provider;
use crate::core::mail::ThreadRef;
use crate::desk::Desks;
use crate::desk::mail::{Fetched, MailPort, purpose};
use crate::http::{AppState, cookie, html_page};
use crate::secret::Sealer;
use crate::secret::ct_eq;
use crate::store::Mailbox;
use axum::http::HeaderMap;

/// The cookie that binds a mailbox sign-in to the browser that started it.
pub const STATE_COOKIE: &str = "piraja_mail_state";

/// Gmail: read-only access, and a refresh token (offline, with consent).
pub const GOOGLE_SCOPE: &str = "https://www.googleapis.com/auth/gmail.readonly";
/// Outlook: a refresh token, the signed-in user's profile (`/me`, for the mailbox's address) and
/// read access to mail.
pub const MICROSOFT_SCOPES: &[&str] = &[
    "offline_access",
    "https://graph.microsoft.com/User.Read",
    "https://graph.microsoft.com/Mail.Read",
];

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// One provider's OAuth client and API base.
pub struct ProviderApp {
    pub provider: Provider,
    pub client: Client,
    pub api_url: String,
}

/// Tokens as sealed in `mailboxes.tokens`.
#[derive(Clone, Serialize, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// Milliseconds since the epoch.
    pub expires_at: i64,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens([REDACTED])")
    }
}

/// Why a mailbox call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MailError {
    /// The grant was revoked or expired: the mailbox must be connected again.
    #[error("the provider revoked access ({0})")]
    Revoked(String),
    /// The API refused the access token (401): refreshed once and tried again before the
    /// mailbox counts as disconnected.
    #[error("the provider refused the access token")]
    Unauthorized,
    /// The stored cursor is too old (Gmail 404): resync recent mail.
    #[error("the history cursor expired")]
    CursorExpired,
    #[error("http {0}")]
    Status(u16),
    #[error("network: {0}")]
    Network(String),
    #[error("{0}")]
    Other(String),
}

/// The mail adapter.
pub struct MailApp {
    pub google: Option<ProviderApp>,
    pub microsoft: Option<ProviderApp>,
    pub sealer: Sealer,
    pub http: reqwest::Client,
    pub public_url: String,
    pub desks: std::sync::OnceLock<Desks>,
}

impl std::fmt::Debug for MailApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailApp")
            .field("google", &self.google.is_some())
            .field("microsoft", &self.microsoft.is_some())
            .finish_non_exhaustive()
    }
}

fn client(s: &MailProviderSettings, redirect: String, body_auth: bool) -> Option<Client> {
    let c = BasicClient::new(ClientId::new(s.client_id.clone()))
        .set_client_secret(ClientSecret::new(
            s.client_secret.expose_secret().to_owned(),
        ))
        .set_auth_uri(AuthUrl::new(s.auth_url.clone()).ok()?)
        .set_token_uri(TokenUrl::new(s.token_url.clone()).ok()?)
        .set_redirect_uri(RedirectUrl::new(redirect).ok()?);
    Some(if body_auth {
        c.set_auth_type(AuthType::RequestBody)
    } else {
        c
    })
}

impl MailApp {
    /// The adapter for `settings`, when a provider is configured.
    pub fn new(settings: &Settings, sealer: Sealer) -> Option<MailApp> {
        if settings.google.is_none() && settings.microsoft.is_none() {
            return None;
        }
        let redirect = |p: &str| format!("{}/mail/{p}/callback", settings.public_url);
        let google = settings.google.as_ref().and_then(|s| {
            Some(ProviderApp {
                provider: Provider::Google,
                client: client(s, redirect("google"), true)?,
                api_url: s.api_url.clone(),
            })
        });
        let microsoft = settings.microsoft.as_ref().and_then(|s| {
            Some(ProviderApp {
                provider: Provider::Microsoft,
                client: client(s, redirect("microsoft"), true)?,
                api_url: s.api_url.clone(),
            })
        });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Some(MailApp {
            google,
            microsoft,
            sealer,
            http,
            public_url: settings.public_url.clone(),
            desks: std::sync::OnceLock::new(),
        })
    }

    fn provider(&self, p: Provider) -> Option<&ProviderApp> {
        match p {
            Provider::Google => self.google.as_ref(),
            Provider::Microsoft => self.microsoft.as_ref(),
        }
    }

    fn ad(mailbox: i64) -> String {
        format!("mailbox:{mailbox}")
    }

    /// Seals tokens for a mailbox.
    pub fn seal(&self, mailbox: i64, tokens: &Tokens) -> Vec<u8> {
        let json = serde_json::to_vec(tokens).unwrap_or_default();
        self.sealer.seal(&json, &Self::ad(mailbox))
    }

    fn open(&self, mailbox: &Mailbox) -> Result<Tokens, MailError> {
        let json = self
            .sealer
            .open(&mailbox.tokens, &Self::ad(mailbox.id))
            .ok_or_else(|| {
                MailError::Other("the stored tokens do not open with this secret key".into())
            })?;
        serde_json::from_slice(&json)
            .map_err(|_| MailError::Other("the stored tokens are not readable".into()))
    }

    /// A usable access token: the stored one while it has a minute left (unless `refresh`: the
    /// API just refused it), else a refreshed one (stored again, with Microsoft's rotated
    /// refresh token).
    pub async fn access_token(
        &self,
        desks: &Desks,
        mailbox: &Mailbox,
        refresh: bool,
    ) -> Result<SecretString, MailError> {
        let tokens = self.open(mailbox)?;
        let now = desks.clock.now().timestamp_millis();
        if !refresh && tokens.expires_at - now > 60_000 {
            return Ok(SecretString::from(tokens.access_token));
        }
        let provider = self
            .provider(mailbox.provider)
            .ok_or_else(|| MailError::Other("the provider is no longer configured".into()))?;
        let Some(refresh) = tokens.refresh_token.clone() else {
            return Err(MailError::Revoked("no refresh token".into()));
        };
        let refresh_token = RefreshToken::new(refresh.clone());
        let mut request = provider.client.exchange_refresh_token(&refresh_token);
        // Microsoft asks a refresh to name the scopes again; Google keeps the granted ones.
        if mailbox.provider == Provider::Microsoft {
            request = request.add_scopes(MICROSOFT_SCOPES.iter().map(|s| Scope::new((*s).into())));
        }
        let answer = request
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let fresh = Tokens {
            access_token: answer.access_token().secret().clone(),
            refresh_token: Some(
                answer
                    .refresh_token()
                    .map(|r| r.secret().clone())
                    .unwrap_or(refresh),
            ),
            expires_at: now
                + answer
                    .expires_in()
                    .map_or(3_600_000, |d| d.as_millis() as i64),
        };
        desks
            .store
            .set_mailbox_tokens(mailbox.id, &self.seal(mailbox.id, &fresh))
            .await
            .map_err(|e| MailError::Other(e.to_string()))?;
        Ok(SecretString::from(fresh.access_token))
    }

    /// Polls every connected mailbox once; returns how many messages were taken in.
    pub async fn poll_all(&self, desks: &Desks) -> usize {
        let mailboxes = match desks.store.connected_mailboxes().await {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "Connected mailboxes could not be read.");
                return 0;
            }
        };
        let mut taken = 0;
        for mailbox in mailboxes {
            metrics::counter!("piraja_mail_polls_total", "provider" => mailbox.provider.as_str())
                .increment(1);
            // A refused access token is refreshed once before the mailbox counts as revoked.
            let polled = match self.poll(desks, &mailbox, false).await {
                Err(MailError::Unauthorized) => self.poll(desks, &mailbox, true).await,
                polled => polled,
            };
            match polled {
                Ok(n) => taken += n,
                Err(e @ (MailError::Revoked(_) | MailError::Unauthorized)) => {
                    let reason = match e {
                        MailError::Revoked(reason) => reason,
                        _ => "unauthorized".into(),
                    };
                    tracing::warn!(
                        mailbox = mailbox.id,
                        "A mailbox's access was revoked; the desk is told."
                    );
                    if let Err(e) = desks.notify_disconnected(&mailbox, &reason).await {
                        tracing::error!(error = %e, "A disconnected mailbox could not be recorded.");
                    }
                }
                Err(e) => {
                    metrics::counter!("piraja_mail_errors_total", "provider" => mailbox.provider.as_str()).increment(1);
                    tracing::warn!(mailbox = mailbox.id, error = %e, "A mailbox poll failed; the next poll tries again.");
                }
            }
        }
        taken
    }

    async fn poll(
        &self,
        desks: &Desks,
        mailbox: &Mailbox,
        refresh: bool,
    ) -> Result<usize, MailError> {
        let token = self.access_token(desks, mailbox, refresh).await?;
        let provider = self
            .provider(mailbox.provider)
            .ok_or_else(|| MailError::Other("the provider is no longer configured".into()))?;
        let (fetched, cursor) = match mailbox.provider {
            Provider::Google => {
                gmail::poll(
                    &self.http,
                    &provider.api_url,
                    &token,
                    mailbox.cursor.as_deref(),
                )
                .await?
            }
            Provider::Microsoft => {
                graph::poll(
                    &self.http,
                    &provider.api_url,
                    &token,
                    mailbox.cursor.as_deref(),
                )
                .await?
            }
        };
        let mut taken = 0;
        for f in &fetched {
            match desks.take_in(mailbox, f).await {
                Ok(()) => taken += 1,
                Err(e) => {
                    // A message that cannot be stored must be seen again: keep the old cursor.
                    tracing::error!(mailbox = mailbox.id, error = %e, "An email could not be taken in.");
                    return Err(MailError::Other(e.to_string()));
                }
            }
        }
        if let Some(cursor) = cursor {
            desks
                .store
                .set_mailbox_cursor(mailbox.id, &cursor, desks.clock.now())
                .await
                .map_err(|e| MailError::Other(e.to_string()))?;
        }
        Ok(taken)
    }
}

fn token_error<RE: std::error::Error + 'static>(
    e: oauth2::RequestTokenError<RE, oauth2::basic::BasicErrorResponse>,
) -> MailError {
    match e {
        oauth2::RequestTokenError::ServerResponse(r) => {
            let code = r.error().as_ref().to_owned();
            if code == "invalid_grant" || code == "unauthorized_client" {
                MailError::Revoked(code)
            } else {
                MailError::Other(format!("the token endpoint said {code}"))
            }
        }
        oauth2::RequestTokenError::Request(e) => MailError::Network(e.to_string()),
        other => MailError::Other(other.to_string()),
    }
}

#[async_trait]
impl MailPort for MailApp {
    fn configured(&self, provider: Provider) -> bool {
        self.provider(provider).is_some()
    }

    fn connect_link(&self, provider: Provider, state: &str, expires_ms: i64) -> String {
        format!(
            "{}/mail/{}/connect?state={}",
            self.public_url,
            provider.as_str(),
            self.sealer.sign(state, expires_ms)
        )
    }

    async fn fetch_thread(
        &self,
        mailbox: &Mailbox,
        thread: &ThreadRef,
    ) -> Result<Vec<Fetched>, String> {
        let desks = self.desks.get().ok_or("the server is starting")?;
        let provider = self
            .provider(mailbox.provider)
            .ok_or("the provider is not configured")?;
        let mut refresh = false;
        loop {
            let token =
                (self.access_token(desks, mailbox, refresh).await).map_err(|e| e.to_string())?;
            let result = match mailbox.provider {
                Provider::Google => {
                    gmail::thread(&self.http, &provider.api_url, &token, thread).await
                }
                Provider::Microsoft => {
                    graph::thread(&self.http, &provider.api_url, &token, thread).await
                }
            };
            match result {
                // A refused access token is refreshed once.
                Err(MailError::Unauthorized) if !refresh => refresh = true,
                other => return other.map_err(|e| e.to_string()),
            }
        }
    }
}

/// The mail routes.
pub fn routes() -> Router<AppState> {
    type Q = Result<Query<Params>, axum::extract::rejection::QueryRejection>;
    Router::new()
        .route(
            "/mail/google/connect",
            get(|s: State<AppState>, q: Q| connect(s, "google", q)),
        )
        .route(
            "/mail/google/callback",
            get(|s: State<AppState>, h: HeaderMap, q: Q| callback(s, h, "google", q)),
        )
        .route(
            "/mail/microsoft/connect",
            get(|s: State<AppState>, q: Q| connect(s, "microsoft", q)),
        )
        .route(
            "/mail/microsoft/callback",
            get(|s: State<AppState>, h: HeaderMap, q: Q| callback(s, h, "microsoft", q)),
        )
}

#[derive(Debug, Default, Deserialize)]
pub struct Params {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

fn refused(reason: &str) -> Response {
    html_page(
        StatusCode::BAD_REQUEST,
        "The mailbox was not connected",
        reason,
    )
}

/// A stored OAuth flow, or the page that says why there is none: `gone` when it was used or
/// expired, "try again" (after logging `failed`) when the store could not be read.
fn flow_or_page(
    found: crate::store::Result<Option<crate::store::OAuthState>>,
    gone: &str,
    failed: &'static str,
) -> Result<crate::store::OAuthState, Box<Response>> {
    match found {
        Ok(Some(flow)) => Ok(flow),
        Ok(None) => Err(Box::new(refused(gone))),
        Err(e) => {
            tracing::error!(error = %e, "{failed}");
            Err(Box::new(html_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again",
                "Try again in a minute.",
            )))
        }
    }
}

fn app_for(state: &AppState, provider: &str) -> Result<(Arc<MailApp>, Provider), Box<Response>> {
    let Some(p) = Provider::parse(provider) else {
        return Err(Box::new(html_page(
            StatusCode::NOT_FOUND,
            "Unknown provider",
            "Mailboxes come from google or microsoft.",
        )));
    };
    match state.mail.clone() {
        Some(app) if app.configured(p) => Ok((app, p)),
        _ => Err(Box::new(html_page(
            StatusCode::NOT_FOUND,
            "Not set up",
            "This server has no OAuth client for that provider.",
        ))),
    }
}

/// `GET /mail/{provider}/connect`: checks the signed link and redirects to the provider.
async fn connect(
    State(state): State<AppState>,
    provider: &'static str,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (app, p) = match app_for(&state, provider) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let now = state.desks.clock.now();
    let Some(value) = q
        .state
        .and_then(|s| app.sealer.verify(&s, now.timestamp_millis()))
    else {
        return refused(
            "This link is not valid or has expired. Ask for a new one with /ticket mailbox connect.",
        );
    };
    let looked = state
        .desks
        .store
        .peek_oauth_state(&value, &purpose(p), now)
        .await;
    let flow = match flow_or_page(
        looked,
        "This link was already used or has expired. Ask for a new one with /ticket mailbox connect.",
        "A mailbox connect could not read its state.",
    ) {
        Ok(flow) => flow,
        Err(page) => return *page,
    };
    let Some(provider) = app.provider(p) else {
        return refused("The provider is not configured.");
    };
    let verifier = PkceCodeVerifier::new(flow.verifier.clone().unwrap_or_default());
    let mut request = provider
        .client
        .authorize_url(|| CsrfToken::new(value.clone()))
        .set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&verifier));
    request = match p {
        Provider::Google => request
            .add_scope(Scope::new(GOOGLE_SCOPE.into()))
            .add_extra_param("access_type", "offline")
            .add_extra_param("prompt", "consent"),
        Provider::Microsoft => {
            request.add_scopes(MICROSOFT_SCOPES.iter().map(|s| Scope::new((*s).into())))
        }
    };
    let (url, _) = request.url();
    // The sign-in must come back to the browser that started it: the callback checks this.
    let secure = if state.settings.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{STATE_COOKIE}={}; Max-Age=600; Path=/mail; HttpOnly; SameSite=Lax{secure}",
        app.sealer.sign(&value, flow.expires_at.timestamp_millis())
    );
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, url.to_string()),
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, "no-store".into()),
        ],
    )
        .into_response()
}

/// `GET /mail/{provider}/callback`: exchanges the code, learns the address, stores the mailbox.
async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    provider: &'static str,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (app, p) = match app_for(&state, provider) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let now = state.desks.clock.now();
    let Some(value) = q.state.filter(|s| !s.is_empty()) else {
        return refused("The answer has no state. Start again with /ticket mailbox connect.");
    };
    let bound = cookie(&headers, STATE_COOKIE)
        .and_then(|c| app.sealer.verify(&c, now.timestamp_millis()))
        .is_some_and(|c| ct_eq(&c, &value));
    if !bound {
        return refused(
            "This sign-in was not started in this browser, or took too long. Start again with /ticket mailbox connect.",
        );
    }
    let taken = state
        .desks
        .store
        .take_oauth_state(&value, &purpose(p), now)
        .await;
    let flow = match flow_or_page(
        taken,
        "This sign-in was already used, has expired, or was not started here. Start again with /ticket mailbox connect.",
        "A mailbox callback could not read its state.",
    ) {
        Ok(flow) => flow,
        Err(page) => return *page,
    };
    if let Some(error) = q.error {
        return refused(&format!(
            "The provider said {error:?}; nothing was connected."
        ));
    }
    let (Some(code), Some(desk), Some(user), Some(verifier)) =
        (q.code, flow.desk, flow.user, flow.verifier)
    else {
        return refused("The answer has no code. Start again with /ticket mailbox connect.");
    };
    let Some(provider) = app.provider(p) else {
        return refused("The provider is not configured.");
    };
    let answer = match provider
        .client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier))
        .request_async(&app.http)
        .await
    {
        Ok(a) => a,
        Err(e) => {
            let e = token_error(e);
            tracing::warn!(error = %e, "A mailbox code exchange was refused.");
            return html_page(
                StatusCode::BAD_GATEWAY,
                "The mailbox was not connected",
                &format!(
                    "The provider refused the sign-in ({e}). Start again with /ticket mailbox connect."
                ),
            );
        }
    };
    let tokens = Tokens {
        access_token: answer.access_token().secret().clone(),
        refresh_token: answer.refresh_token().map(|r| r.secret().clone()),
        expires_at: now.timestamp_millis()
            + answer
                .expires_in()
                .map_or(3_600_000, |d| d.as_millis() as i64),
    };
    let token = SecretString::from(tokens.access_token.clone());
    let who = match p {
        Provider::Google => gmail::profile(&app.http, &provider.api_url, &token).await,
        Provider::Microsoft => graph::me(&app.http, &provider.api_url, &token)
            .await
            .map(|a| {
                let since = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                (a, Some(format!("{}{since}", graph::SINCE)))
            }),
    };
    let (address, cursor) = match who {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(error = %e, "A mailbox's address could not be read.");
            return html_page(
                StatusCode::BAD_GATEWAY,
                "The mailbox was not connected",
                "The mailbox's address could not be read; start again with /ticket mailbox connect.",
            );
        }
    };
    let seal = |id: i64| app.seal(id, &tokens);
    let saved = state
        .desks
        .store
        .save_mailbox(desk, p, &address, &user, &seal, cursor.as_deref(), now)
        .await;
    match saved {
        Ok(id) => {
            tracing::info!(desk.id = %desk, mailbox = id, "A mailbox was connected.");
            if let Err(e) = state.desks.announce_mailbox(desk, id, &address).await {
                tracing::warn!(error = %e, "A connected mailbox could not be announced.");
            }
            html_page(
                StatusCode::OK,
                "Mailbox connected",
                &format!(
                    "{address} is connected to your desk. Forward customer email to it, or link threads with /ticket link."
                ),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "A mailbox could not be stored.");
            html_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again",
                "The mailbox could not be stored; start again in a minute.",
            )
        }
    }
}

/// GETs JSON with the mailbox's token: 401 means access was revoked; `missing` is what a 404
/// (or Graph's 410 for an expired delta) means to the caller.
pub async fn get_json(
    http: &reqwest::Client,
    url: &str,
    token: &SecretString,
    query: &[(&str, &str)],
    missing: MailError,
) -> Result<serde_json::Value, MailError> {
    let response = http
        .get(url)
        .bearer_auth(token.expose_secret())
        .query(query)
        .send()
        .await
        .map_err(|e| MailError::Network(e.without_url().to_string()))?;
    match response.status().as_u16() {
        200..=299 => response
            .json()
            .await
            .map_err(|e| MailError::Network(e.without_url().to_string())),
        401 => Err(MailError::Unauthorized),
        404 | 410 => Err(missing),
        s => Err(MailError::Status(s)),
    }
}

/// When the next poll is due.
pub fn next_poll(now: DateTime<Utc>, every: Duration) -> DateTime<Utc> {
    now + chrono::TimeDelta::from_std(every).unwrap_or(chrono::TimeDelta::minutes(1))
}
