//! `piraja check`: the settings, validated offline, and with `--online` one call to each
//! configured API, each result on one line.

use std::time::Duration;

use secrecy::ExposeSecret;

use crate::config::{MailProviderSettings, Settings};

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub ok: bool,
    pub text: String,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", if self.ok { "ok  " } else { "FAIL" }, self.text)
    }
}

fn line(ok: bool, text: impl Into<String>) -> Line {
    Line {
        ok,
        text: text.into(),
    }
}

/// The offline checks: the settings parsed (they did, or we would not be here), the secret key
/// loads, and which integrations are on.
pub fn offline(settings: &Settings) -> Vec<Line> {
    let mut out = vec![line(true, "Every setting is valid.")];
    out.push(match settings.load_secret_key() {
        Ok(_) => line(
            true,
            "The secret key (PIRAJA_SECRET_KEY or the key file) loads.",
        ),
        Err(e) => line(false, e.to_string()),
    });
    out.extend(settings.integrations().into_iter().map(|t| line(true, t)));
    out
}

/// The online checks: one call to each configured API.
pub async fn online(settings: &Settings) -> Vec<Line> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    let mut out = Vec::new();
    if let Some(slack) = &settings.slack {
        match &slack.bot_token {
            Some(token) => {
                let api = crate::slack::api::WebApi::new(&slack.api_url);
                out.push(
                    match api.call(token, "auth.test", &serde_json::json!({})).await {
                        Ok(v) => line(
                            true,
                            format!(
                                "Slack auth.test: the bot token works in team {}.",
                                v["team"].as_str().unwrap_or("?")
                            ),
                        ),
                        Err(e) => line(false, format!("Slack auth.test: {e}.")),
                    },
                );
            }
            None => out.push(line(
                true,
                "Slack: no bot token to test; each OAuth install brings its own.",
            )),
        }
    }
    if let Some(discord) = &settings.discord {
        let rest = crate::discord::api::Rest::new(&discord.api_url, discord.bot_token.clone());
        if discord.bot_token.is_some() {
            for (path, what) in [
                ("/users/@me", "the bot user"),
                ("/applications/@me", "the application"),
            ] {
                out.push(
                    match rest
                        .call(reqwest::Method::GET, path, None::<&()>, true)
                        .await
                    {
                        Ok(v) => line(
                            true,
                            format!(
                                "Discord GET {path}: {what} is {}.",
                                v["username"].as_str().or(v["name"].as_str()).unwrap_or("?")
                            ),
                        ),
                        Err(e) => line(false, format!("Discord GET {path}: {e}.")),
                    },
                );
            }
        } else {
            out.push(line(true, "Discord: no bot token to test."));
        }
    }
    for (name, provider) in [
        ("Google", &settings.google),
        ("Microsoft", &settings.microsoft),
    ] {
        if let Some(p) = provider {
            out.push(token_endpoint(&http, name, p).await);
        }
    }
    if out.is_empty() {
        out.push(line(
            true,
            "No integration is configured, so there is nothing to reach.",
        ));
    }
    out
}

/// Reaches a token endpoint with the client's credentials and a code that cannot work: an
/// OAuth error answer (`invalid_grant`, `invalid_request`) means the endpoint is there; an
/// `invalid_client` means the credentials are wrong.
async fn token_endpoint(http: &reqwest::Client, name: &str, p: &MailProviderSettings) -> Line {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", "piraja-check"),
        ("redirect_uri", "http://localhost/piraja-check"),
        ("client_id", p.client_id.as_str()),
        ("client_secret", p.client_secret.expose_secret()),
    ];
    match http.post(&p.token_url).form(&form).send().await {
        Err(e) => line(
            false,
            format!("{name} token endpoint: {}.", e.without_url()),
        ),
        Ok(r) => {
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            let error = body["error"].as_str().unwrap_or_default().to_owned();
            if error == "invalid_client" || error == "unauthorized_client" {
                line(
                    false,
                    format!("{name} token endpoint: it refuses the client id or secret ({error})."),
                )
            } else if (400..500).contains(&status) || status == 200 {
                line(
                    true,
                    format!(
                        "{name} token endpoint answers ({status} {error}); the client is known."
                    ),
                )
            } else {
                line(false, format!("{name} token endpoint answered {status}."))
            }
        }
    }
}
