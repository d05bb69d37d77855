//! Gmail's REST API, the calls we need: the profile, history since a cursor, recent messages,
//! a message in RFC 822 form, and a thread.

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use secrecy::SecretString;
use serde_json::Value;

use super::MailError;
use crate::core::mail::{ThreadRef, parse_raw};
use crate::desk::mail::Fetched;

/// How many recent messages a resync reads at most.
const RESYNC_MAX: usize = 200;

async fn get(
    http: &reqwest::Client,
    url: &str,
    token: &SecretString,
    query: &[(&str, &str)],
) -> Result<Value, MailError> {
    super::get_json(http, url, token, query, MailError::CursorExpired).await
}

fn users(base: &str) -> String {
    format!("{}/gmail/v1/users/me", base.trim_end_matches('/'))
}

/// The mailbox's address and its current history id.
pub async fn profile(
    http: &reqwest::Client,
    base: &str,
    token: &SecretString,
) -> Result<(String, Option<String>), MailError> {
    let v = get(http, &format!("{}/profile", users(base)), token, &[]).await?;
    let address = v["emailAddress"]
        .as_str()
        .ok_or_else(|| MailError::Other("no emailAddress".into()))?;
    Ok((address.to_lowercase(), history_id(&v)))
}

fn history_id(v: &Value) -> Option<String> {
    match &v["historyId"] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// New mail since `cursor` (a history id), oldest first, and the cursor to store. Without a
/// cursor, or when Gmail says it is too old (404), the recent mail is read again; mail already
/// taken in is skipped by the desk.
pub async fn poll(
    http: &reqwest::Client,
    base: &str,
    token: &SecretString,
    cursor: Option<&str>,
) -> Result<(Vec<Fetched>, Option<String>), MailError> {
    let mut ids: Vec<String> = Vec::new();
    let next_cursor;
    let history = match cursor {
        Some(start) => history(http, base, token, start).await,
        None => Err(MailError::CursorExpired),
    };
    match history {
        Ok((found, latest)) => {
            ids = found;
            next_cursor = latest.or_else(|| cursor.map(str::to_owned));
        }
        Err(MailError::CursorExpired) => {
            let (_, latest) = profile(http, base, token).await?;
            let mut page: Option<String> = None;
            while ids.len() < RESYNC_MAX {
                let mut q = vec![
                    ("q", "newer_than:2d -in:chats -in:drafts -in:spam"),
                    ("maxResults", "100"),
                ];
                if let Some(p) = page.as_deref() {
                    q.push(("pageToken", p));
                }
                let v = get(http, &format!("{}/messages", users(base)), token, &q).await?;
                for m in v["messages"].as_array().into_iter().flatten() {
                    if let Some(id) = m["id"].as_str() {
                        ids.push(id.to_owned());
                    }
                }
                page = v["nextPageToken"].as_str().map(str::to_owned);
                if page.is_none() {
                    break;
                }
            }
            // messages.list is newest first.
            ids.reverse();
            next_cursor = latest;
        }
        Err(e) => return Err(e),
    }
    let mut out = Vec::new();
    for id in ids {
        if let Some(f) = message(http, base, token, &id).await? {
            out.push(f);
        }
    }
    Ok((out, next_cursor))
}

async fn history(
    http: &reqwest::Client,
    base: &str,
    token: &SecretString,
    start: &str,
) -> Result<(Vec<String>, Option<String>), MailError> {
    let mut ids = Vec::new();
    let mut latest = None;
    let mut highest: Option<u64> = None;
    let mut page: Option<String> = None;
    for _ in 0..50 {
        let mut q = vec![("startHistoryId", start), ("historyTypes", "messageAdded")];
        if let Some(p) = page.as_deref() {
            q.push(("pageToken", p));
        }
        let v = get(http, &format!("{}/history", users(base)), token, &q).await?;
        for h in v["history"].as_array().into_iter().flatten() {
            if let Some(id) = h["id"].as_str().and_then(|i| i.parse::<u64>().ok()) {
                highest = Some(highest.map_or(id, |x| x.max(id)));
            }
            for added in h["messagesAdded"].as_array().into_iter().flatten() {
                // A saved draft is not mail anyone sent, and spam is not a customer's.
                let labels = added["message"]["labelIds"].as_array();
                let skipped = labels
                    .into_iter()
                    .flatten()
                    .any(|l| l == "DRAFT" || l == "SPAM");
                if let Some(id) = added["message"]["id"].as_str()
                    && !skipped
                    && !ids.iter().any(|x| x == id)
                {
                    ids.push(id.to_owned());
                }
            }
        }
        latest = history_id(&v).or(latest);
        page = v["nextPageToken"].as_str().map(str::to_owned);
        if page.is_none() {
            return Ok((ids, latest));
        }
    }
    // More pages than one poll reads: resume after the last record taken in.
    Ok((ids, highest.map(|h| h.to_string()).or(latest)))
}

/// A message rebuilt from Gmail's `full` form (headers, and a MIME tree whose bodies are
/// base64url, decoded from their transfer encoding): its headers and its first text part,
/// plain text before HTML. Hand-built because no crate reads this JSON form of MIME; the result
/// goes through the same parser as a raw message.
fn from_full(v: &Value) -> Option<Vec<u8>> {
    let payload = &v["payload"];
    let mut out = String::new();
    for h in payload["headers"].as_array()? {
        let (Some(name), Some(value)) = (h["name"].as_str(), h["value"].as_str()) else {
            continue;
        };
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("content-") || lower == "mime-version" || name.contains(':') {
            continue;
        }
        // A value is one line here: no header can be slipped in through one.
        let value: String = value.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    let (mime, text) =
        text_part(payload, "text/plain").or_else(|| text_part(payload, "text/html"))?;
    out.push_str(&format!(
        "Content-Type: {mime}; charset=utf-8\r\n\r\n{text}"
    ));
    Some(out.into_bytes())
}

/// The first part of `mime` type in a `full` payload's tree, decoded.
fn text_part(part: &Value, mime: &'static str) -> Option<(&'static str, String)> {
    if part["mimeType"].as_str() == Some(mime)
        && part["filename"].as_str().is_none_or(str::is_empty)
        && let Some(data) = part["body"]["data"].as_str()
    {
        let bytes = URL_SAFE_NO_PAD
            .decode(data.trim_end_matches('='))
            .or_else(|_| URL_SAFE.decode(data))
            .ok()?;
        return Some((mime, String::from_utf8_lossy(&bytes).into_owned()));
    }
    (part["parts"].as_array()?)
        .iter()
        .find_map(|p| text_part(p, mime))
}

/// One message, parsed; `None` (logged and counted) when its content cannot be read.
pub async fn message(
    http: &reqwest::Client,
    base: &str,
    token: &SecretString,
    id: &str,
) -> Result<Option<Fetched>, MailError> {
    let v = match get(
        http,
        &format!("{}/messages/{id}", users(base)),
        token,
        &[("format", "raw")],
    )
    .await
    {
        Ok(v) => v,
        // Deleted between listing and reading.
        Err(MailError::CursorExpired) => return Ok(None),
        Err(e) => return Err(e),
    };
    let raw = v["raw"].as_str().unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD
        .decode(raw.trim_end_matches('='))
        .or_else(|_| URL_SAFE.decode(raw));
    let Ok(bytes) = bytes else {
        skipped("gmail", id, "the raw message is not base64url");
        return Ok(None);
    };
    let parsed = match parse_raw(&bytes) {
        // Too large to read whole (an attachment of a few MB): read again in Gmail's `full`
        // form, whose text parts come decoded and attachments only by reference.
        Err(crate::core::mail::MailError::TooLarge(_)) => {
            let full = get(
                http,
                &format!("{}/messages/{id}", users(base)),
                token,
                &[("format", "full")],
            )
            .await?;
            match from_full(&full) {
                Some(rebuilt) => parse_raw(&rebuilt),
                None => {
                    skipped("gmail", id, "a large message without a text part");
                    return Ok(None);
                }
            }
        }
        other => other,
    };
    let mut mail = match parsed {
        Ok(m) => m,
        Err(e) => {
            skipped("gmail", id, &e.to_string());
            return Ok(None);
        }
    };
    mail.thread_id = v["threadId"].as_str().map(str::to_owned);
    let web_link = mail.message_id.as_ref().map(|m| {
        format!(
            "https://mail.google.com/mail/u/0/#search/rfc822msgid%3A{}",
            urlencode(m)
        )
    });
    Ok(Some(Fetched {
        provider_id: id.to_owned(),
        mail,
        web_link,
    }))
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A message the poller could not read: logged and counted, and the next ones still arrive.
pub fn skipped(provider: &'static str, id: &str, why: &str) {
    tracing::warn!(
        provider,
        message = id,
        reason = why,
        "An email was skipped."
    );
    metrics::counter!("piraja_mail_skipped_total", "provider" => provider).increment(1);
}

/// Every message of a thread, oldest first.
pub async fn thread(
    http: &reqwest::Client,
    base: &str,
    token: &SecretString,
    r: &ThreadRef,
) -> Result<Vec<Fetched>, MailError> {
    let thread_id = match r {
        ThreadRef::GmailThread(id) => id.clone(),
        ThreadRef::MessageId(m) => {
            let q = format!("rfc822msgid:{m}");
            let v = get(
                http,
                &format!("{}/messages", users(base)),
                token,
                &[("q", q.as_str()), ("maxResults", "1")],
            )
            .await?;
            match v["messages"][0]["threadId"].as_str() {
                Some(t) => t.to_owned(),
                None => return Ok(Vec::new()),
            }
        }
        ThreadRef::GmailWebId(_) => {
            return Err(MailError::Other(
                "Gmail's newer web links do not carry the thread id; use \"Show original\" and give the Message-ID".into(),
            ));
        }
        _ => return Err(MailError::Other("that is not a Gmail thread".into())),
    };
    let v = match get(
        http,
        &format!("{}/threads/{thread_id}", users(base)),
        token,
        &[("format", "minimal")],
    )
    .await
    {
        Ok(v) => v,
        Err(MailError::CursorExpired) => {
            return Err(MailError::Other("Gmail has no such thread".into()));
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for m in v["messages"].as_array().into_iter().flatten() {
        if let Some(id) = m["id"].as_str()
            && let Some(f) = message(http, base, token, id).await?
        {
            out.push(f);
        }
    }
    Ok(out)
}
