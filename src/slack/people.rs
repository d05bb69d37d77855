//! Names and emails of the people who use the desk, from `users.info`, with a bounded cache.
//!
//! Slash commands carry a `user_name`, but buttons, reactions and `@user` mentions often carry
//! only an id. After a request is acknowledged, each user not seen in the last hour is looked
//! up once (`users.info`, scopes `users:read` and `users:read.email`) and their name and email
//! stored on the desk, so cards and lists show names. The cache holds at most
//! [`CAPACITY`] people; a lookup that fails is not retried until the entry expires.
//!
//! Workspace admins and owners (`is_admin`, `is_owner`) are desk admins, as Discord members
//! with Manage Server are: a command only admins may run asks [`workspace_admin`], which reads
//! the same `users.info` (at most [`ADMIN_LOOKUP`], remembered for the hour).

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;
use serde_json::Value;

use super::SlackApp;
use crate::core::people::{Platform, SurfaceRef, UserRef};
use crate::store::Store;

/// The most people remembered at once.
pub const CAPACITY: usize = 10_000;
/// How long a looked-up profile is trusted.
const FRESH: Duration = Duration::from_secs(3600);
/// How long a command waits for `users.info` to say whether its user administers the
/// workspace; past it the answer is no (the lookup runs within the command's budget).
pub const ADMIN_LOOKUP: Duration = Duration::from_millis(1500);

/// A profile as `users.info` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: Option<String>,
    pub email: Option<String>,
    /// A workspace admin or owner.
    pub admin: bool,
}

impl Profile {
    /// Reads a `users.info` answer: the display name, else the real name, else the handle.
    pub fn of(answer: &Value) -> Profile {
        let user = &answer["user"];
        let text = |v: &Value| {
            v.as_str()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let name = text(&user["profile"]["display_name"])
            .or_else(|| text(&user["profile"]["real_name"]))
            .or_else(|| text(&user["real_name"]))
            .or_else(|| text(&user["name"]));
        let flag = |k: &str| user[k].as_bool() == Some(true);
        Profile {
            name,
            email: text(&user["profile"]["email"]),
            admin: flag("is_admin") || flag("is_owner") || flag("is_primary_owner"),
        }
    }
}

/// Who was looked up recently, keyed by workspace and user.
pub struct People {
    seen: Mutex<LruCache<(String, String), Instant>>,
    /// Whether each person administers their workspace, and since when that is known.
    admins: Mutex<LruCache<(String, String), (bool, Instant)>>,
}

impl Default for People {
    fn default() -> People {
        People::new(CAPACITY)
    }
}

impl std::fmt::Debug for People {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("People(..)")
    }
}

impl People {
    pub fn new(capacity: usize) -> People {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        People {
            seen: Mutex::new(LruCache::new(capacity)),
            admins: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// Whether `user` of `team` needs a lookup now; marks them looked up if so.
    pub fn claim(&self, team: &str, user: &str) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        let key = (team.to_owned(), user.to_owned());
        if seen.get(&key).is_some_and(|at| at.elapsed() < FRESH) {
            return false;
        }
        seen.put(key, Instant::now());
        true
    }

    /// Whether `user` of `team` was looked up within the hour (their stored name is then the
    /// profile's, and a request's own name hint should not replace it).
    pub fn knows(&self, team: &str, user: &str) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        seen.get(&(team.to_owned(), user.to_owned()))
            .is_some_and(|at| at.elapsed() < FRESH)
    }

    /// Whether `user` of `team` administers the workspace, if looked up within the hour.
    fn admin(&self, team: &str, user: &str) -> Option<bool> {
        let mut admins = self.admins.lock().ok()?;
        let (admin, at) = admins.get(&(team.to_owned(), user.to_owned()))?;
        (at.elapsed() < FRESH).then_some(*admin)
    }

    fn note_admin(&self, team: &str, user: &str, admin: bool) {
        if let Ok(mut admins) = self.admins.lock() {
            admins.put((team.to_owned(), user.to_owned()), (admin, Instant::now()));
        }
    }

    /// How many people are remembered.
    pub fn len(&self) -> usize {
        self.seen.lock().map(|s| s.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads `user`'s profile from `users.info` with the team's bot token (`None`: the team has no
/// token, or the call failed).
async fn profile(app: &SlackApp, team: &str, user: &str) -> Option<Profile> {
    let token = match app.tokens.for_team(team).await {
        Ok(token) => token?,
        Err(e) => {
            tracing::warn!(error = %e, "A bot token could not be read for a profile lookup.");
            return None;
        }
    };
    match (app.api)
        .call_form(Some(&token), "users.info", &[("user", user)])
        .await
    {
        Ok(answer) => {
            let profile = Profile::of(&answer);
            app.people.note_admin(team, user, profile.admin);
            Some(profile)
        }
        Err(e) => {
            tracing::debug!(error = %e, "users.info failed; the name stays as it was.");
            None
        }
    }
}

/// Whether Slack says `user` administers or owns workspace `team` (then a desk admin there).
/// Known within the hour, or looked up for at most [`ADMIN_LOOKUP`]; a failed or slow lookup
/// says no, and the command is refused as it would have been.
pub async fn workspace_admin(app: &SlackApp, team: &str, user: &str) -> bool {
    if let Some(admin) = app.people.admin(team, user) {
        return admin;
    }
    let looked_up = tokio::time::timeout(ADMIN_LOOKUP, profile(app, team, user)).await;
    looked_up.ok().flatten().is_some_and(|p| p.admin)
}

/// Looks up `users` of `team` in the background (those not seen lately) and stores their names
/// and emails on the team's desk.
pub fn learn(app: &Arc<SlackApp>, store: &Arc<dyn Store>, team: &str, users: &[&str]) {
    let wanted: Vec<String> = users
        .iter()
        .filter(|u| !u.is_empty() && app.people.claim(team, u))
        .map(|u| (*u).to_owned())
        .collect();
    if wanted.is_empty() {
        return;
    }
    let (app, store, team) = (app.clone(), store.clone(), team.to_owned());
    tokio::spawn(async move {
        let surface = SurfaceRef::new(Platform::Slack, &team);
        let Ok(Some(desk)) = store.desk_of_surface(&surface).await else {
            return;
        };
        for user in wanted {
            let Some(profile) = profile(&app, &team, &user).await else {
                continue;
            };
            let who = UserRef::slack(&user);
            if let Err(e) = store
                .set_member_profile(
                    desk,
                    &who,
                    profile.name.as_deref(),
                    profile.email.as_deref(),
                )
                .await
            {
                tracing::warn!(error = %e, "A profile could not be stored.");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_profile_prefers_the_display_name() {
        let answer = json!({"ok": true, "user": {"id": "U1", "name": "spengler", "real_name": "Egon Spengler",
            "profile": {"display_name": "", "real_name": "Egon Spengler", "email": "spengler@ghostbusters.example.com"}}});
        assert_eq!(
            Profile::of(&answer),
            Profile {
                name: Some("Egon Spengler".into()),
                email: Some("spengler@ghostbusters.example.com".into()),
                admin: false,
            }
        );
        let owner = json!({"user": {"name": "o", "is_admin": false, "is_owner": true}});
        assert!(Profile::of(&owner).admin);
        let answer = json!({"user": {"name": "egon", "profile": {"display_name": "Egon"}}});
        assert_eq!(Profile::of(&answer).name.as_deref(), Some("Egon"));
        assert_eq!(
            Profile::of(&json!({})),
            Profile {
                name: None,
                email: None,
                admin: false,
            }
        );
    }

    #[test]
    fn the_cache_is_bounded_and_claims_once() {
        let people = People::new(2);
        assert!(people.claim("T", "U1"));
        assert!(!people.claim("T", "U1"));
        assert!(people.claim("T", "U2"));
        assert!(people.claim("T", "U3"));
        assert_eq!(people.len(), 2);
        // U1 was evicted, so it is looked up again.
        assert!(people.claim("T", "U1"));
        assert!(people.claim("T2", "U2"));
    }
}
