//! Installing the app into many workspaces with OAuth v2: our own two handlers.
//!
//! `GET /slack/install` makes a random `state`, remembers it in the database (single use,
//! 10 minutes) and in a signed, expiring, `HttpOnly` cookie bound to this browser, and
//! redirects to Slack's authorize page. `GET /slack/oauth/callback` accepts the code only when
//! the query's `state` equals the cookie's and the stored state is taken for the first time,
//! exchanges the code with `oauth.v2.access`, seals the bot token with AES-GCM and stores the
//! install; the installing user becomes the desk's admin. Any failure installs nothing.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::TimeDelta;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;

use super::SlackApp;
use super::api::install_ad;
use super::manifest::BOT_SCOPES;
use crate::core::people::UserRef;
use crate::http::{AppState, cookie, html_page};
use crate::secret::{ct_eq, random_token};
use crate::store::{OAuthState, SlackInstall};

/// The cookie that binds an install to the browser that started it.
pub const STATE_COOKIE: &str = "piraja_slack_state";
/// The `oauth_states` purpose of a Slack install.
const PURPOSE: &str = "slack-install";
/// How long an install may take.
const STATE_TTL: TimeDelta = TimeDelta::minutes(10);

/// The OAuth client of the app (`SLACK_CLIENT_ID`, `SLACK_CLIENT_SECRET`).
#[derive(Debug, Clone)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: secrecy::SecretString,
}

/// Slack's authorize page: the Web API base without its `/api` suffix, then `/oauth/v2/authorize`.
pub fn authorize_url(api_base: &str) -> String {
    let base = api_base.trim_end_matches('/');
    format!(
        "{}/oauth/v2/authorize",
        base.strip_suffix("/api").unwrap_or(base)
    )
}

fn redirect_uri(state: &AppState) -> String {
    format!("{}/slack/oauth/callback", state.settings.public_url)
}

fn off() -> Response {
    html_page(
        StatusCode::NOT_FOUND,
        "Install is off",
        "This server installs into one workspace with SLACK_BOT_TOKEN. Set SLACK_CLIENT_ID and \
         SLACK_CLIENT_SECRET to install into many workspaces.",
    )
}

fn oauth(state: &AppState) -> Option<(Arc<SlackApp>, OAuthClient, crate::secret::Sealer)> {
    let app = state.slack.clone()?;
    let client = app.oauth.clone()?;
    let sealer = app.tokens.sealer.clone()?;
    Some((app, client, sealer))
}

/// `GET /slack/install`: starts an install.
pub async fn install(State(state): State<AppState>) -> Response {
    let Some((app, client, sealer)) = oauth(&state) else {
        return off();
    };
    let now = state.desks.clock.now();
    let value = random_token();
    let expires_at = now + STATE_TTL;
    let flow = OAuthState {
        state: value.clone(),
        purpose: PURPOSE.to_owned(),
        desk: None,
        user: None,
        verifier: None,
        expires_at,
    };
    if let Err(e) = state.desks.store.save_oauth_state(&flow, now).await {
        tracing::error!(error = %e, "An install could not be started.");
        return html_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again",
            "The install could not be started; try again in a minute.",
        );
    }
    let mut url = match url::Url::parse(&authorize_url(app.api.base())) {
        Ok(url) => url,
        Err(_) => return off(),
    };
    url.query_pairs_mut()
        .append_pair("client_id", &client.client_id)
        .append_pair("scope", &BOT_SCOPES.join(","))
        .append_pair("redirect_uri", &redirect_uri(&state))
        .append_pair("state", &value);
    let secure = if state.settings.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{STATE_COOKIE}={}; Max-Age={}; Path=/slack; HttpOnly; SameSite=Lax{secure}",
        sealer.sign(&value, expires_at.timestamp_millis()),
        STATE_TTL.num_seconds()
    );
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, url.to_string()),
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

/// The callback's query, leniently: every field may be missing.
#[derive(Debug, Default, Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

fn refused(reason: &str) -> Response {
    html_page(StatusCode::BAD_REQUEST, "Piraja was not installed", reason)
}

/// `GET /slack/oauth/callback`: finishes an install.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<Callback>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some((app, client, sealer)) = oauth(&state) else {
        return off();
    };
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let now = state.desks.clock.now();
    let Some(value) = q.state.as_deref().filter(|s| !s.is_empty()) else {
        return refused("The link has no state. Start again from /slack/install.");
    };
    let bound = cookie(&headers, STATE_COOKIE)
        .and_then(|c| sealer.verify(&c, now.timestamp_millis()))
        .is_some_and(|c| ct_eq(&c, value));
    if !bound {
        tracing::warn!("A Slack install callback came without its browser's state cookie.");
        return refused(
            "This install was not started in this browser, or it took too long. Start again \
             from /slack/install.",
        );
    }
    let taken = match state
        .desks
        .store
        .take_oauth_state(value, PURPOSE, now)
        .await
    {
        Ok(taken) => taken,
        Err(e) => {
            tracing::error!(error = %e, "An install state could not be read.");
            return html_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again",
                "The install could not be finished; start again in a minute.",
            );
        }
    };
    if taken.is_none() {
        return refused(
            "This install link was already used or has expired. Start again from /slack/install.",
        );
    }
    if let Some(error) = q.error {
        return refused(&format!(
            "Slack said {error:?}: the install was cancelled. Nothing was installed."
        ));
    }
    let Some(code) = q.code.filter(|c| !c.is_empty()) else {
        return refused("Slack sent no code. Start again from /slack/install.");
    };
    let redirect = redirect_uri(&state);
    let form = [
        ("client_id", client.client_id.as_str()),
        ("client_secret", client.client_secret.expose_secret()),
        ("code", code.as_str()),
        ("redirect_uri", redirect.as_str()),
    ];
    let answer = match app.api.call_form(None, "oauth.v2.access", &form).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(error = %e, "Slack refused an install's code exchange.");
            return html_page(
                StatusCode::BAD_GATEWAY,
                "Piraja was not installed",
                &format!("Slack refused the install ({e}). Start again from /slack/install."),
            );
        }
    };
    let Some(install) = read_install(&answer, &sealer) else {
        tracing::warn!("oauth.v2.access answered without a bot token, team or user.");
        return html_page(
            StatusCode::BAD_GATEWAY,
            "Piraja was not installed",
            "Slack's answer had no bot token. Start again from /slack/install.",
        );
    };
    let team_name = install
        .team_name
        .clone()
        .unwrap_or_else(|| install.team_id.clone());
    match state.desks.store.save_slack_install(&install, now).await {
        Ok(desk) => {
            state.desks.caches.forget();
            tracing::info!(team = %install.team_id, desk = desk.0, "A Slack workspace installed Piraja.");
            let clear = format!("{STATE_COOKIE}=; Max-Age=0; Path=/slack; HttpOnly; SameSite=Lax");
            let mut page = html_page(
                StatusCode::OK,
                "Piraja Tickets is installed",
                &format!(
                    "Piraja is now in {team_name}, and you are the desk's admin. Type /ticket help \
                     in any channel, and /ticket channel in the one where new tickets should appear."
                ),
            );
            if let Ok(v) = clear.parse() {
                page.headers_mut().insert(header::SET_COOKIE, v);
            }
            page
        }
        Err(e) => {
            tracing::error!(error = %e, "An install could not be stored.");
            html_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again",
                "The install could not be stored; start again in a minute.",
            )
        }
    }
}

/// The install in an `oauth.v2.access` answer, its token sealed for its team.
fn read_install(answer: &Value, sealer: &crate::secret::Sealer) -> Option<SlackInstall> {
    let token = answer["access_token"].as_str().filter(|t| !t.is_empty())?;
    let team_id = answer["team"]["id"].as_str().filter(|t| !t.is_empty())?;
    let user = answer["authed_user"]["id"]
        .as_str()
        .filter(|u| !u.is_empty())?;
    Some(SlackInstall {
        team_id: team_id.to_owned(),
        team_name: answer["team"]["name"].as_str().map(str::to_owned),
        bot_user_id: answer["bot_user_id"].as_str().map(str::to_owned),
        installer: UserRef::slack(user),
        bot_token: sealer.seal(token.as_bytes(), &install_ad(team_id)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorize_page_sits_beside_the_web_api() {
        assert_eq!(
            authorize_url("https://slack.com/api"),
            "https://slack.com/oauth/v2/authorize"
        );
        assert_eq!(
            authorize_url("http://127.0.0.1:9/api/"),
            "http://127.0.0.1:9/oauth/v2/authorize"
        );
        assert_eq!(
            authorize_url("http://127.0.0.1:9"),
            "http://127.0.0.1:9/oauth/v2/authorize"
        );
    }
}
