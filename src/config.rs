//! Settings: environment variables, optionally a `piraja.toml` with the same keys, spelled as
//! the environment spells them (`SLACK_SIGNING_SECRET = "…"`) or in lower case
//! (`slack_signing_secret`); the environment wins, and a key the file does not know is an error.
//!
//! Every value is validated at start-up; a bad one stops the binary with one line naming the
//! variable (exit code 2). Secrets are [`SecretString`]s, so `Debug` never prints them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use figment::Figment;
use figment::providers::{Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Every variable the binary reads, in the order the README lists them.
pub const VARIABLES: &[&str] = &[
    "PIRAJA_BIND",
    "PIRAJA_PUBLIC_URL",
    "DATABASE_URL",
    "PIRAJA_SECRET_KEY",
    "SLACK_SIGNING_SECRET",
    "SLACK_BOT_TOKEN",
    "SLACK_CLIENT_ID",
    "SLACK_CLIENT_SECRET",
    "SLACK_API_URL",
    "DISCORD_PUBLIC_KEY",
    "DISCORD_APPLICATION_ID",
    "DISCORD_BOT_TOKEN",
    "DISCORD_API_URL",
    "GOOGLE_CLIENT_ID",
    "GOOGLE_CLIENT_SECRET",
    "GOOGLE_AUTH_URL",
    "GOOGLE_TOKEN_URL",
    "GMAIL_API_URL",
    "MICROSOFT_CLIENT_ID",
    "MICROSOFT_CLIENT_SECRET",
    "MICROSOFT_TENANT",
    "MICROSOFT_AUTH_URL",
    "MICROSOFT_TOKEN_URL",
    "GRAPH_API_URL",
    "PIRAJA_MAIL_POLL",
    "PIRAJA_LOG_FORMAT",
    "PIRAJA_RATE_USER",
    "PIRAJA_RATE_CREATE",
    "PIRAJA_RATE_DESK",
    "RUST_LOG",
];

/// A setting that is missing or invalid; its message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid {var}: {reason}")]
pub struct SettingError {
    pub var: &'static str,
    pub reason: String,
}

fn bad(var: &'static str, reason: impl Into<String>) -> SettingError {
    SettingError {
        var,
        reason: reason.into(),
    }
}

/// A setting as text, whether the TOML file wrote it as a string, a number or a boolean.
fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    Ok(Option::<Scalar>::deserialize(d)?.map(|v| match v {
        Scalar::Text(s) => s,
        Scalar::Int(n) => n.to_string(),
        Scalar::Float(f) => f.to_string(),
        Scalar::Bool(b) => b.to_string(),
    }))
}

/// The raw values as read, before validation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default, deserialize_with = "text")]
    piraja_bind: Option<String>,
    #[serde(default, deserialize_with = "text")]
    piraja_public_url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    database_url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    piraja_secret_key: Option<String>,
    #[serde(default, deserialize_with = "text")]
    slack_signing_secret: Option<String>,
    #[serde(default, deserialize_with = "text")]
    slack_bot_token: Option<String>,
    #[serde(default, deserialize_with = "text")]
    slack_client_id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    slack_client_secret: Option<String>,
    #[serde(default, deserialize_with = "text")]
    slack_api_url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    discord_public_key: Option<String>,
    #[serde(default, deserialize_with = "text")]
    discord_application_id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    discord_bot_token: Option<String>,
    #[serde(default, deserialize_with = "text")]
    discord_api_url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    google_client_id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    google_client_secret: Option<String>,
    #[serde(default, deserialize_with = "text")]
    google_auth_url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    google_token_url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    gmail_api_url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    microsoft_client_id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    microsoft_client_secret: Option<String>,
    #[serde(default, deserialize_with = "text")]
    microsoft_tenant: Option<String>,
    #[serde(default, deserialize_with = "text")]
    microsoft_auth_url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    microsoft_token_url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    graph_api_url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    piraja_mail_poll: Option<String>,
    #[serde(default, deserialize_with = "text")]
    piraja_log_format: Option<String>,
    #[serde(default, deserialize_with = "text")]
    piraja_rate_user: Option<String>,
    #[serde(default, deserialize_with = "text")]
    piraja_rate_create: Option<String>,
    #[serde(default, deserialize_with = "text")]
    piraja_rate_desk: Option<String>,
    #[serde(default, deserialize_with = "text")]
    rust_log: Option<String>,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Slack settings; present when `SLACK_SIGNING_SECRET` is set.
#[derive(Debug, Clone)]
pub struct SlackSettings {
    pub signing_secret: SecretString,
    pub bot_token: Option<SecretString>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub api_url: String,
}

/// Discord settings; present when `DISCORD_PUBLIC_KEY` is set.
#[derive(Debug, Clone)]
pub struct DiscordSettings {
    pub public_key: String,
    pub application_id: Option<String>,
    pub bot_token: Option<SecretString>,
    pub api_url: String,
}

/// What calls to Discord's REST API need (command registration, followups, channel posts).
#[derive(Debug, Clone)]
pub struct DiscordApi {
    pub application_id: Option<String>,
    pub bot_token: Option<SecretString>,
    pub api_url: String,
}

/// One OAuth mail provider's settings.
#[derive(Debug, Clone)]
pub struct MailProviderSettings {
    pub client_id: String,
    pub client_secret: SecretString,
    pub auth_url: String,
    pub token_url: String,
    pub api_url: String,
}

/// Every setting, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    pub public_url: String,
    pub database_url: String,
    /// `PIRAJA_SECRET_KEY` when set; otherwise the key file beside the database is used.
    pub secret_key: Option<SecretString>,
    pub slack: Option<SlackSettings>,
    /// `DISCORD_API_URL` (kept even while Discord is off, for `check`).
    pub discord: Option<DiscordSettings>,
    /// The Discord REST settings, set or not with the public key: `piraja discord register`
    /// needs only these.
    pub discord_api: DiscordApi,
    pub google: Option<MailProviderSettings>,
    pub microsoft: Option<MailProviderSettings>,
    pub mail_poll: Duration,
    pub log_format: LogFormat,
    /// `RUST_LOG`: the log filter, checked (`info` when unset).
    pub log_filter: String,
    pub limits: Limits,
}

/// Abuse limits, in requests per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Commands (and clicks) per user on a desk.
    pub per_user: u32,
    /// New tickets per user on a desk.
    pub creates_per_user: u32,
    /// Commands per desk, everyone together.
    pub per_desk: u32,
}

/// Generous for people, bots and integrations that script a desk (ten commands a second each,
/// in bursts of a minute's allowance); a runaway loop is still held to that.
impl Default for Limits {
    fn default() -> Limits {
        Limits {
            per_user: 600,
            creates_per_user: 300,
            per_desk: 6000,
        }
    }
}

fn url(var: &'static str, value: Option<String>, default: &str) -> Result<String, SettingError> {
    let value = value.unwrap_or_else(|| default.to_owned());
    let parsed = url::Url::parse(&value).map_err(|e| bad(var, format!("{e} ({value:?})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(var, "must be an http or https URL"));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

fn pair(
    id_var: &'static str,
    id: Option<String>,
    secret_var: &'static str,
    secret: Option<String>,
) -> Result<Option<(String, SecretString)>, SettingError> {
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Some((id, SecretString::from(secret)))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(bad(secret_var, format!("is required when {id_var} is set"))),
        (None, Some(_)) => Err(bad(id_var, format!("is required when {secret_var} is set"))),
    }
}

/// A provider whose keys are folded to lower case: `piraja.toml` may spell a key as the
/// environment does (`PIRAJA_BIND`) or in lower case, and both name the same setting.
struct FoldedKeys<P>(P);

impl<P: figment::Provider> figment::Provider for FoldedKeys<P> {
    fn metadata(&self) -> figment::Metadata {
        self.0.metadata()
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        Ok((self.0.data()?.into_iter())
            .map(|(profile, dict)| {
                let folded = dict.into_iter().map(|(k, v)| (k.to_lowercase(), v));
                (profile, folded.collect())
            })
            .collect())
    }
}

impl Settings {
    /// Reads `piraja.toml` (if present in the working directory) and the environment.
    pub fn load() -> Result<Settings, SettingError> {
        Settings::load_from(Path::new("piraja.toml"))
    }

    /// Reads the given TOML file (if present) and the environment.
    pub fn load_from(toml: &Path) -> Result<Settings, SettingError> {
        let lower: Vec<String> = VARIABLES.iter().map(|v| v.to_lowercase()).collect();
        // Environment values stay text: figment's `Env` would parse `1111` as a number and a
        // Slack client id like `1234.5678` as a float, losing digits.
        let env: std::collections::BTreeMap<String, String> = VARIABLES
            .iter()
            .zip(&lower)
            .filter_map(|(var, key)| Some((key.clone(), std::env::var(var).ok()?)))
            .collect();
        let raw: Raw = Figment::new()
            .merge(FoldedKeys(Toml::file(toml)))
            .merge(figment::providers::Serialized::globals(env))
            .extract()
            .map_err(|e| {
                let var = VARIABLES
                    .iter()
                    .find(|v| e.path.iter().any(|p| p.eq_ignore_ascii_case(v)))
                    .copied()
                    .unwrap_or("piraja.toml");
                bad(var, one_line(&e.to_string()))
            })?;
        Settings::validate(raw)
    }

    fn validate(raw: Raw) -> Result<Settings, SettingError> {
        // An empty variable counts as unset.
        let raw = raw.without_empty();
        let bind = raw
            .piraja_bind
            .as_deref()
            .unwrap_or("127.0.0.1:3000")
            .parse()
            .map_err(|_| bad("PIRAJA_BIND", "expected an address like 127.0.0.1:3000"))?;
        let public_url = url(
            "PIRAJA_PUBLIC_URL",
            raw.piraja_public_url,
            "http://localhost:3000",
        )?;
        let database_url = raw
            .database_url
            .unwrap_or_else(|| "sqlite://piraja.db".into());
        if !database_url.starts_with("sqlite:") {
            return Err(bad("DATABASE_URL", "must be a sqlite:// URL"));
        }
        if let Some(key) = &raw.piraja_secret_key {
            decode_key(key).map_err(|r| bad("PIRAJA_SECRET_KEY", r))?;
        }
        let slack_api_url = url("SLACK_API_URL", raw.slack_api_url, "https://slack.com/api")?;
        let slack_oauth = pair(
            "SLACK_CLIENT_ID",
            raw.slack_client_id,
            "SLACK_CLIENT_SECRET",
            raw.slack_client_secret,
        )?;
        let slack = raw.slack_signing_secret.map(|secret| SlackSettings {
            signing_secret: SecretString::from(secret),
            bot_token: raw.slack_bot_token.map(SecretString::from),
            client_id: slack_oauth.as_ref().map(|(id, _)| id.clone()),
            client_secret: slack_oauth.as_ref().map(|(_, s)| s.clone()),
            api_url: slack_api_url,
        });
        let discord_api_url = url(
            "DISCORD_API_URL",
            raw.discord_api_url,
            "https://discord.com/api/v10",
        )?;
        if let Some(id) = &raw.discord_application_id
            && !id.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad("DISCORD_APPLICATION_ID", "expected a numeric id"));
        }
        let discord_api = DiscordApi {
            application_id: raw.discord_application_id,
            bot_token: raw.discord_bot_token.map(SecretString::from),
            api_url: discord_api_url,
        };
        let discord = match raw.discord_public_key {
            None => None,
            Some(key) => {
                // 64 hex characters that are also a point of the curve, and not a weak one (of
                // small order, under which forged signatures verify): a key that would fail
                // every request, or pass forged ones, is refused here, at start-up.
                if crate::discord::verify::public_key(&key).is_none() {
                    return Err(bad(
                        "DISCORD_PUBLIC_KEY",
                        "expected the application's public key (64 hex characters, a valid Ed25519 key)",
                    ));
                }
                Some(DiscordSettings {
                    public_key: key.to_lowercase(),
                    application_id: discord_api.application_id.clone(),
                    bot_token: discord_api.bot_token.clone(),
                    api_url: discord_api.api_url.clone(),
                })
            }
        };
        let google = pair(
            "GOOGLE_CLIENT_ID",
            raw.google_client_id,
            "GOOGLE_CLIENT_SECRET",
            raw.google_client_secret,
        )?;
        let google_auth = url(
            "GOOGLE_AUTH_URL",
            raw.google_auth_url,
            "https://accounts.google.com/o/oauth2/v2/auth",
        )?;
        let google_token = url(
            "GOOGLE_TOKEN_URL",
            raw.google_token_url,
            "https://oauth2.googleapis.com/token",
        )?;
        let gmail = url(
            "GMAIL_API_URL",
            raw.gmail_api_url,
            "https://gmail.googleapis.com",
        )?;
        let google = google.map(|(client_id, client_secret)| MailProviderSettings {
            client_id,
            client_secret,
            auth_url: google_auth,
            token_url: google_token,
            api_url: gmail,
        });
        let tenant = raw.microsoft_tenant.unwrap_or_else(|| "common".into());
        if !tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(bad("MICROSOFT_TENANT", "expected a tenant id or name"));
        }
        let ms_auth = url(
            "MICROSOFT_AUTH_URL",
            raw.microsoft_auth_url,
            "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
        )?
        .replace("%7Btenant%7D", "{tenant}")
        .replace("{tenant}", &tenant);
        let ms_token = url(
            "MICROSOFT_TOKEN_URL",
            raw.microsoft_token_url,
            "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        )?
        .replace("%7Btenant%7D", "{tenant}")
        .replace("{tenant}", &tenant);
        let graph = url(
            "GRAPH_API_URL",
            raw.graph_api_url,
            "https://graph.microsoft.com/v1.0",
        )?;
        let microsoft = pair(
            "MICROSOFT_CLIENT_ID",
            raw.microsoft_client_id,
            "MICROSOFT_CLIENT_SECRET",
            raw.microsoft_client_secret,
        )?
        .map(|(client_id, client_secret)| MailProviderSettings {
            client_id,
            client_secret,
            auth_url: ms_auth,
            token_url: ms_token,
            api_url: graph,
        });
        let mail_poll = match raw.piraja_mail_poll {
            None => Duration::from_secs(60),
            Some(v) => crate::core::grammar::parse_duration(&v)
                .filter(|d| *d >= Duration::from_secs(1) && *d <= Duration::from_secs(86_400))
                .ok_or_else(|| {
                    bad(
                        "PIRAJA_MAIL_POLL",
                        "expected a duration from 1s to 1d, like 60s",
                    )
                })?,
        };
        let rate = |var: &'static str, value: Option<String>, default: u32| match value {
            None => Ok(default),
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| bad(var, "expected a number of requests per minute, like 60")),
        };
        let default = Limits::default();
        let limits = Limits {
            per_user: rate("PIRAJA_RATE_USER", raw.piraja_rate_user, default.per_user)?,
            creates_per_user: rate(
                "PIRAJA_RATE_CREATE",
                raw.piraja_rate_create,
                default.creates_per_user,
            )?,
            per_desk: rate("PIRAJA_RATE_DESK", raw.piraja_rate_desk, default.per_desk)?,
        };
        let log_format = match raw.piraja_log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(_) => return Err(bad("PIRAJA_LOG_FORMAT", "expected text or json")),
        };
        let log_filter = raw.rust_log.unwrap_or_else(|| "info".into());
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&log_filter) {
            return Err(bad("RUST_LOG", format!("{e} ({log_filter:?})")));
        }
        Ok(Settings {
            bind,
            public_url,
            database_url,
            secret_key: raw.piraja_secret_key.map(SecretString::from),
            slack,
            discord,
            discord_api,
            google,
            microsoft,
            mail_poll,
            log_format,
            log_filter,
            limits,
        })
    }

    /// The database file, for the key file beside it and for backups.
    pub fn database_path(&self) -> Option<PathBuf> {
        let rest = self.database_url.strip_prefix("sqlite:")?;
        let rest = rest.trim_start_matches("//");
        let path = rest.split('?').next()?;
        (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
    }

    /// One line per integration: on, or off and which variable turns it on.
    pub fn integrations(&self) -> Vec<String> {
        let mut lines = Vec::new();
        lines.push(match &self.slack {
            Some(s) if s.bot_token.is_some() => "Slack is on, in single-workspace mode (SLACK_BOT_TOKEN).".to_owned(),
            Some(s) if s.client_id.is_some() => "Slack is on; workspaces install through OAuth.".to_owned(),
            Some(_) => "Slack is on, but cannot post until SLACK_BOT_TOKEN or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are set.".to_owned(),
            None => "Slack is off: set SLACK_SIGNING_SECRET to turn it on.".to_owned(),
        });
        lines.push(match &self.discord {
            Some(d) if d.bot_token.is_some() => "Discord is on, and posts with the bot token.".to_owned(),
            Some(_) => "Discord is on; set DISCORD_BOT_TOKEN and DISCORD_APPLICATION_ID for channel posts and followups.".to_owned(),
            None => "Discord is off: set DISCORD_PUBLIC_KEY to turn it on.".to_owned(),
        });
        lines.push(match &self.google {
            Some(_) => "Gmail mailboxes can be connected.".to_owned(),
            None => "Gmail is off: set GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET to turn it on."
                .to_owned(),
        });
        lines.push(match &self.microsoft {
            Some(_) => "Outlook mailboxes can be connected.".to_owned(),
            None => {
                "Outlook is off: set MICROSOFT_CLIENT_ID and MICROSOFT_CLIENT_SECRET to turn it on."
                    .to_owned()
            }
        });
        lines
    }

    /// The 32-byte key that encrypts stored tokens: `PIRAJA_SECRET_KEY`, or the key file
    /// beside the database (created with mode 0600 on first run).
    pub fn load_secret_key(&self) -> Result<[u8; 32], SettingError> {
        if let Some(key) = &self.secret_key {
            return decode_key(key.expose_secret()).map_err(|r| bad("PIRAJA_SECRET_KEY", r));
        }
        let path = self
            .database_path()
            .map(|p| p.with_extension("key"))
            .unwrap_or_else(|| PathBuf::from("piraja.key"));
        key_file(&path).map_err(|r| bad("PIRAJA_SECRET_KEY", r))
    }
}

impl Raw {
    fn without_empty(self) -> Raw {
        fn f(v: Option<String>) -> Option<String> {
            v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
        }
        Raw {
            piraja_bind: f(self.piraja_bind),
            piraja_public_url: f(self.piraja_public_url),
            database_url: f(self.database_url),
            piraja_secret_key: f(self.piraja_secret_key),
            slack_signing_secret: f(self.slack_signing_secret),
            slack_bot_token: f(self.slack_bot_token),
            slack_client_id: f(self.slack_client_id),
            slack_client_secret: f(self.slack_client_secret),
            slack_api_url: f(self.slack_api_url),
            discord_public_key: f(self.discord_public_key),
            discord_application_id: f(self.discord_application_id),
            discord_bot_token: f(self.discord_bot_token),
            discord_api_url: f(self.discord_api_url),
            google_client_id: f(self.google_client_id),
            google_client_secret: f(self.google_client_secret),
            google_auth_url: f(self.google_auth_url),
            google_token_url: f(self.google_token_url),
            gmail_api_url: f(self.gmail_api_url),
            microsoft_client_id: f(self.microsoft_client_id),
            microsoft_client_secret: f(self.microsoft_client_secret),
            microsoft_tenant: f(self.microsoft_tenant),
            microsoft_auth_url: f(self.microsoft_auth_url),
            microsoft_token_url: f(self.microsoft_token_url),
            graph_api_url: f(self.graph_api_url),
            piraja_mail_poll: f(self.piraja_mail_poll),
            piraja_log_format: f(self.piraja_log_format),
            piraja_rate_user: f(self.piraja_rate_user),
            piraja_rate_create: f(self.piraja_rate_create),
            piraja_rate_desk: f(self.piraja_rate_desk),
            rust_log: f(self.rust_log),
        }
    }
}

/// A TOML error in one line and without the file's text: the parser quotes the offending line
/// (`1 | SLACK_SIGNING_SECRET = "…`) under a `|` gutter, which could show a secret. Kept: the
/// position, then the message.
fn one_line(error: &str) -> String {
    let kept: Vec<&str> = (error.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.starts_with('^'))
        .filter(|l| {
            // A quoted line: its number, then the gutter.
            let digits = l.trim_start_matches(|c: char| c.is_ascii_digit());
            digits.len() == l.len() || !digits.trim_start().starts_with('|')
        })
        .collect();
    kept.join(": ")
}

fn decode_key(b64: &str) -> Result<[u8; 32], String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| "expected 32 bytes in base64".to_owned())?;
    bytes
        .try_into()
        .map_err(|_| "expected 32 bytes in base64".to_owned())
}

fn key_file(path: &Path) -> Result<[u8; 32], String> {
    match std::fs::read_to_string(path) {
        Ok(text) => decode_key(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 32] = rand::random();
            let text = base64::engine::general_purpose::STANDARD.encode(key);
            write_private(path, &text)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            tracing::info!(path = %path.display(), "A new secret key was created beside the database.");
            Ok(key)
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> Raw {
        let json: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .map(|(k, v)| (k.to_lowercase(), serde_json::Value::String((*v).into())))
            .collect();
        serde_json::from_value(serde_json::Value::Object(json)).unwrap()
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = Settings::validate(Raw::default()).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:3000");
        assert_eq!(s.public_url, "http://localhost:3000");
        assert_eq!(s.database_url, "sqlite://piraja.db");
        assert_eq!(s.database_path(), Some(PathBuf::from("piraja.db")));
        assert_eq!(s.mail_poll, Duration::from_secs(60));
        assert!(s.slack.is_none() && s.discord.is_none());
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let cases = [
            ("PIRAJA_BIND", "nowhere"),
            ("PIRAJA_PUBLIC_URL", "ftp://x"),
            ("DATABASE_URL", "postgres://x"),
            ("PIRAJA_SECRET_KEY", "c2hvcnQ="),
            ("DISCORD_PUBLIC_KEY", "xyz"),
            // Hex of the right length, but not a point of the curve (y = 2).
            (
                "DISCORD_PUBLIC_KEY",
                "0200000000000000000000000000000000000000000000000000000000000000",
            ),
            ("PIRAJA_MAIL_POLL", "often"),
            ("PIRAJA_LOG_FORMAT", "xml"),
            ("SLACK_API_URL", "not a url"),
            ("RUST_LOG", "piraja=loud"),
        ];
        for (var, value) in cases {
            let err = Settings::validate(raw(&[(var, value)])).unwrap_err();
            assert_eq!(err.var, var, "{value}");
            assert!(err.to_string().starts_with(&format!("invalid {var}: ")));
        }
        let err = Settings::validate(raw(&[("GOOGLE_CLIENT_ID", "id")])).unwrap_err();
        assert_eq!(err.var, "GOOGLE_CLIENT_SECRET");
    }

    #[test]
    fn the_microsoft_tenant_fills_the_default_urls() {
        let s = Settings::validate(raw(&[
            ("MICROSOFT_CLIENT_ID", "id"),
            ("MICROSOFT_CLIENT_SECRET", "s"),
            ("MICROSOFT_TENANT", "contoso.onmicrosoft.com"),
        ]))
        .unwrap();
        assert_eq!(
            s.microsoft.unwrap().token_url,
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
    }

    #[test]
    fn debug_output_hides_secrets() {
        let s = Settings::validate(raw(&[
            ("SLACK_SIGNING_SECRET", "8f742231b10e8888abcd99yyyzzz85a5"),
            ("SLACK_BOT_TOKEN", "xoxb-very-secret"),
        ]))
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("8f742231b10e8888abcd99yyyzzz85a5"));
        assert!(!shown.contains("xoxb-very-secret"));
    }

    #[test]
    fn the_key_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("piraja.key");
        let a = key_file(&path).unwrap();
        let b = key_file(&path).unwrap();
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn the_log_filter_is_a_setting_like_the_others() {
        assert_eq!(
            Settings::validate(Raw::default()).unwrap().log_filter,
            "info"
        );
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("piraja.toml");
        std::fs::write(&toml, "RUST_LOG = \"piraja=debug,info\"\n").unwrap();
        let s = Settings::load_from(&toml).unwrap();
        // The environment wins where it sets the variable (the test runner may set it).
        if std::env::var_os("RUST_LOG").is_none() {
            assert_eq!(s.log_filter, "piraja=debug,info");
        }
    }

    #[test]
    fn a_broken_file_is_one_line_that_quotes_none_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("piraja.toml");
        std::fs::write(
            &toml,
            "PIRAJA_BIND = \"127.0.0.1:3000\"\nSLACK_SIGNING_SECRET = \"8f742231b10e8888abcd\n",
        )
        .unwrap();
        let err = Settings::load_from(&toml).unwrap_err().to_string();
        assert!(err.starts_with("invalid piraja.toml: "), "{err}");
        assert!(!err.contains('\n'), "{err}");
        assert!(!err.contains("8f742231"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn numeric_ids_stay_exactly_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("piraja.toml");
        std::fs::write(
            &toml,
            "discord_public_key = \"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a\"\n\
             discord_application_id = 1111\nslack_signing_secret = \"s\"\n\
             slack_client_id = \"1234567890123.4567890123456\"\nslack_client_secret = \"x\"\n",
        )
        .unwrap();
        let s = Settings::load_from(&toml).unwrap();
        assert_eq!(s.discord.unwrap().application_id.as_deref(), Some("1111"));
        assert_eq!(
            s.slack.unwrap().client_id.as_deref(),
            Some("1234567890123.4567890123456")
        );
    }

    #[test]
    fn the_file_takes_the_environments_spelling_and_refuses_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("piraja.toml");
        std::fs::write(
            &toml,
            "PIRAJA_PUBLIC_URL = \"https://desk.example.com\"\nPIRAJA_MAIL_POLL = \"90s\"\n",
        )
        .unwrap();
        let s = Settings::load_from(&toml).unwrap();
        assert_eq!(s.public_url, "https://desk.example.com");
        assert_eq!(s.mail_poll, Duration::from_secs(90));
        std::fs::write(&toml, "PIRAJA_MAIL_POLL = \"1s\"\n").unwrap();
        let s = Settings::load_from(&toml).unwrap();
        assert_eq!(s.mail_poll, Duration::from_secs(1));
        std::fs::write(&toml, "PIRAJA_PUBLIK_URL = \"https://x\"\n").unwrap();
        let err = Settings::load_from(&toml).unwrap_err();
        assert_eq!(err.var, "piraja.toml");
        assert!(err.to_string().contains("piraja_publik_url"), "{err}");
    }
}
