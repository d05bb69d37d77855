//! Microsoft Graph, the calls we need: `/me`, delta queries on the inbox and Sent Items, a
//! message, and the messages of a conversation.

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

/// Where each polled folder's delta resumes, stored as the mailbox's one cursor: JSON
/// `{"inbox": …, "sent": …}`, each a deltaLink or `since:<time>`. A cursor stored before Sent
/// Items was polled (a plain deltaLink or `since:`) is the inbox's; Sent Items then starts
/// at the same `since:`, or from now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    pub inbox: String,
    pub sent: String,
}

impl Cursor {
    pub fn read(stored: Option<&str>, now: chrono::DateTime<chrono::Utc>) -> Option<Cursor> {
        let stored = stored?;
        if let Ok(c) = serde_json::from_str::<Cursor>(stored) {
            return Some(c);
        }
        let sent = if stored.starts_with(SINCE) {
            stored.to_owned()
        } else {
            since(now)
        };
        Some(Cursor {
            inbox: stored.to_owned(),
            sent,
        })
    }
}

fn since(t: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "{SINCE}{}",
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

/// New mail in the inbox and in Sent Items since the stored cursor, oldest first, and the
/// cursor to store. Sent Items holds what the support team sent from the mailbox itself (a
/// reply written in Outlook): it joins its ticket's timeline as outgoing mail, as Gmail's
/// history brings sent mail. `None` for the cursor: keep the stored one.
pub async fn poll(
    http: &reqwest::Client,
    base: &str,
    token: &SecretString,
    cursor: Option<&str>,
) -> Result<(Vec<Fetched>, Option<String>), MailError> {
    let now = chrono::Utc::now();
    let stored = Cursor::read(cursor, now);
    let cursor_of = |f: fn(&Cursor) -> &str| stored.as_ref().map(f);
    let (inbox, sent) = tokio::join!(
        poll_folder(http, base, token, "inbox", cursor_of(|c| &c.inbox)),
        poll_folder(http, base, token, "sentitems", cursor_of(|c| &c.sent)),
    );
    let (inbox, inbox_next) = inbox?;
    // Sent Items only adds agents' replies: its failure does not hold the inbox back (its
    // cursor stays where it was and the next poll tries again), except a revoked token.
    let (sent, sent_next) = match sent {
        Ok(polled) => polled,
        Err(e @ (MailError::Revoked(_) | MailError::Unauthorized)) => return Err(e),
        Err(e) => {
            tracing::warn!(error = %e, "Sent Items could not be read; the inbox was.");
            (Vec::new(), None)
        }
    };
    let mut all = inbox;
    all.extend(sent);
    // Stable: each folder's own order stays where dates tie or are missing.
    all.sort_by_key(|f| f.mail.date);
    let next = match (inbox_next, sent_next, stored) {
        (None, None, _) => None,
        (inbox, sent, stored) => {
            let keep =
                |c: Option<String>, old: Option<String>| c.or(old).unwrap_or_else(|| since(now));
            let next = Cursor {
                inbox: keep(inbox, stored.as_ref().map(|c| c.inbox.clone())),
                sent: keep(sent, stored.map(|c| c.sent)),
            };
            serde_json::to_string(&next).ok()
        }
    };
    Ok((all, next))
}

/// How far back a folder whose delta token expired is read again.
const RESYNC_DAYS: i64 = 2;

/// New mail in one folder since its deltaLink, following `@odata.nextLink`; returns it and the
/// new `@odata.deltaLink`. The first poll (cursor `since:<time>`) asks only for mail received
/// since the mailbox was connected.
async fn poll_folder(
    http: &reqwest::Client,
    base: &str,
    token: &SecretString,
    folder: &str,
    cursor: Option<&str>,
) -> Result<(Vec<Fetched>, Option<String>), MailError> {
    let base = base.trim_end_matches('/');
    let first = format!("{base}/me/mailFolders/{folder}/messages/delta");
    let (mut url, mut query): (String, Vec<(String, String)>) = match cursor {
        Some(c) if !c.starts_with(SINCE) => (c.to_owned(), Vec::new()),
        since => {
            let mut q = vec![("$select".to_owned(), SELECT.to_owned())];
            if let Some(t) = since.and_then(|c| c.strip_prefix(SINCE)) {
                q.push(("$filter".to_owned(), format!("receivedDateTime ge {t}")));
            }
            (first.clone(), q)
        }
    };
    let mut out = Vec::new();
    let mut resynced = false;
    for _ in 0..100 {
        let q: Vec<(&str, &str)> = query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let v = match get(http, base, &url, token, &q).await {
            // The delta token expired (410): a new delta over the last two days, as Gmail's
            // resync reads, so the mail that came meanwhile is not lost (what was seen before
            // is recognised by its ids). Expired again, it starts from now.
            Err(MailError::CursorExpired) if !resynced => {
                resynced = true;
                let from = chrono::Utc::now() - chrono::Duration::days(RESYNC_DAYS);
                let from = from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                url = first.clone();
                query = vec![
                    ("$select".to_owned(), SELECT.to_owned()),
                    ("$filter".to_owned(), format!("receivedDateTime ge {from}")),
                ];
                continue;
            }
            Err(MailError::CursorExpired) => {
                return Ok((out, Some(since(chrono::Utc::now()))));
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
    // A hundred pages in one poll: the next poll goes on from the page after them (a nextLink
    // resumes a delta as its deltaLink would). Keeping the old cursor instead would read the
    // same hundred pages on every poll, and never reach the mail after them.
    Ok((out, Some(url)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_stored_before_sent_items_were_polled_is_the_inboxs() {
        let now = "2026-12-05T10:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap();
        assert_eq!(Cursor::read(None, now), None);
        // Just connected: both folders from the same instant.
        assert_eq!(
            Cursor::read(Some("since:2026-12-01T09:00:00Z"), now),
            Some(Cursor {
                inbox: "since:2026-12-01T09:00:00Z".into(),
                sent: "since:2026-12-01T09:00:00Z".into(),
            })
        );
        // A running inbox delta: Sent Items from now on.
        let link =
            "https://graph.microsoft.com/v1.0/me/mailFolders/inbox/messages/delta?$deltatoken=x";
        assert_eq!(
            Cursor::read(Some(link), now),
            Some(Cursor {
                inbox: link.into(),
                sent: "since:2026-12-05T10:00:00Z".into(),
            })
        );
        let both = Cursor {
            inbox: link.into(),
            sent: "s".into(),
        };
        let stored = serde_json::to_string(&both).unwrap();
        assert_eq!(Cursor::read(Some(&stored), now), Some(both));
    }
}
