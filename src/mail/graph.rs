//! Microsoft Graph, the calls we need: `/me`, a delta query on the inbox, a message, and the
//! messages of a conversation.

use secrecy::SecretString;
use serde_json::Value;

use super::MailError;
use super::gmail::skipped;
use crate::core::mail::{ThreadRef, from_graph};
use crate::desk::mail::Fetched;

/// The fields a message is read with.
const SELECT: &str = "subject,from,toRecipients,receivedDateTime,sentDateTime,internetMessageId,conversationId,body,hasAttachments,webLink";

/// The prefix of a cursor that says "the first delta, from this instant on".
pub const SINCE: &str = "since:";

async fn get(
    http: &reqwest::Client,
    base: &str,
    url: &str,
    token: &SecretString,
    query: &[(&str, &str)],
) -> Result<Value, MailError> {
    // Links Graph hands back (nextLink, deltaLink) are followed only on our own base URL, so the
    // token never goes anywhere else.
    if !url.starts_with(base.trim_end_matches('/')) {
        return Err(MailError::Other(
            "Graph returned a link to another host".into(),
        ));
    }
    match super::get_json(http, url, token, query, MailError::CursorExpired).await {
        // Graph answers 404 for a message that is gone and 410 for an expired delta.
        Err(MailError::CursorExpired) if !url.contains("/delta") => Err(MailError::Status(404)),
        other => other,
    }
}

/// The signed-in mailbox's address.
pub async fn me(
    http: &reqwest::Client,
    base: &str,
    token: &SecretString,
) -> Result<String, MailError> {
    let base = base.trim_end_matches('/');
    let v = get(
        http,
        base,
        &format!("{base}/me"),
        token,
        &[("$select", "mail,userPrincipalName")],
    )
    .await?;
    v["mail"]
        .as_str()
        .or(v["userPrincipalName"].as_str())
        .map(str::to_lowercase)
        .ok_or_else(|| MailError::Other("no mail address".into()))
}

fn fetched(v: &Value) -> Option<Fetched> {
    let id = v["id"].as_str()?.to_owned();
    match from_graph(v) {
        Some(mail) => Some(Fetched {
            provider_id: id,
            mail,
            web_link: v["webLink"].as_str().map(str::to_owned),
        }),
        None => {
            skipped("graph", &id, "the message could not be read");
            None
        }
    }
}

/// New inbox mail since the stored deltaLink, following `@odata.nextLink`; returns it and the
/// new `@odata.deltaLink`. The first poll (cursor `since:<time>`) asks only for mail received
/// since the mailbox was connected.
pub async fn poll(
    http: &reqwest::Client,
    base: &str,
    token: &SecretString,
    cursor: Option<&str>,
) -> Result<(Vec<Fetched>, Option<String>), MailError> {
    let base = base.trim_end_matches('/');
    let first = format!("{base}/me/mailFolders/inbox/messages/delta");
    let (mut url, mut query): (String, Vec<(String, String)>) = match cursor {
        Some(c) if !c.starts_with(SINCE) => (c.to_owned(), Vec::new()),
        since => {
            let mut q = vec![("$select".to_owned(), SELECT.to_owned())];
            if let Some(t) = since.and_then(|c| c.strip_prefix(SINCE)) {
                q.push(("$filter".to_owned(), format!("receivedDateTime ge {t}")));
            }
            (first, q)
        }
    };
    let mut out = Vec::new();
    for _ in 0..100 {
        let q: Vec<(&str, &str)> = query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let v = match get(http, base, &url, token, &q).await {
            Err(MailError::CursorExpired) => {
                // The delta token expired: start a new delta from now on.
                let since = format!(
                    "{SINCE}{}",
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
                return Ok((out, Some(since)));
            }
            other => other?,
        };
        for m in v["value"].as_array().into_iter().flatten() {
            if m.get("@removed").is_some() {
                continue;
            }
            let full = if m.get("body").is_some() && m.get("from").is_some() {
                m.clone()
            } else {
                match m["id"].as_str() {
                    Some(id) => match get(
                        http,
                        base,
                        &format!("{base}/me/messages/{id}"),
                        token,
                        &[("$select", SELECT)],
                    )
                    .await
                    {
                        Ok(v) => v,
                        Err(MailError::Status(404)) => continue,
                        Err(e) => return Err(e),
                    },
                    None => continue,
                }
            };
            out.extend(fetched(&full));
        }
        if let Some(next) = v["@odata.nextLink"].as_str() {
            url = next.to_owned();
            query.clear();
            continue;
        }
        return Ok((out, v["@odata.deltaLink"].as_str().map(str::to_owned)));
    }
    Ok((out, None))
}

/// Every message of a conversation, oldest first (sorted here: `$orderby` with a
/// `conversationId` filter fails with InefficientFilter).
pub async fn thread(
    http: &reqwest::Client,
    base: &str,
    token: &SecretString,
    r: &ThreadRef,
) -> Result<Vec<Fetched>, MailError> {
    let base = base.trim_end_matches('/');
    let conversation = match r {
        ThreadRef::Conversation(id) => id.clone(),
        ThreadRef::OutlookItem(id) => {
            let v = match get(
                http,
                base,
                &format!("{base}/me/messages/{id}"),
                token,
                &[("$select", "conversationId")],
            )
            .await
            {
                Ok(v) => v,
                Err(MailError::Status(404)) => {
                    return Err(MailError::Other("Outlook has no such message".into()));
                }
                Err(e) => return Err(e),
            };
            v["conversationId"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| MailError::Other("no conversation".into()))?
        }
        ThreadRef::MessageId(m) => {
            let filter = format!("internetMessageId eq '<{}>'", m.replace('\'', "''"));
            let v = get(
                http,
                base,
                &format!("{base}/me/messages"),
                token,
                &[("$filter", filter.as_str()), ("$select", "conversationId")],
            )
            .await?;
            match v["value"][0]["conversationId"].as_str() {
                Some(c) => c.to_owned(),
                None => return Ok(Vec::new()),
            }
        }
        _ => return Err(MailError::Other("that is not an Outlook thread".into())),
    };
    let filter = format!("conversationId eq '{}'", conversation.replace('\'', "''"));
    let mut url = format!("{base}/me/messages");
    let mut query = vec![
        ("$filter".to_owned(), filter),
        ("$select".to_owned(), SELECT.to_owned()),
        ("$top".to_owned(), "50".to_owned()),
    ];
    let mut all: Vec<Value> = Vec::new();
    for _ in 0..20 {
        let q: Vec<(&str, &str)> = query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let v = get(http, base, &url, token, &q).await?;
        all.extend(v["value"].as_array().cloned().unwrap_or_default());
        match v["@odata.nextLink"].as_str() {
            Some(next) => {
                url = next.to_owned();
                query.clear();
            }
            None => break,
        }
    }
    all.sort_by(|a, b| {
        a["receivedDateTime"]
            .as_str()
            .cmp(&b["receivedDateTime"].as_str())
    });
    Ok(all.iter().filter_map(fetched).collect())
}
