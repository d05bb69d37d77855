//! People and places: platform user references, surfaces (a Slack workspace or a Discord
//! guild), roles, and the actor on whose behalf a command runs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ticket::DeskId;

/// A chat platform (or another origin of an actor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Slack,
    Discord,
    Email,
    Cli,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Slack => "slack",
            Platform::Discord => "discord",
            Platform::Email => "email",
            Platform::Cli => "cli",
        }
    }

    /// The platform's name as people write it.
    pub fn title(self) -> &'static str {
        match self {
            Platform::Slack => "Slack",
            Platform::Discord => "Discord",
            Platform::Email => "email",
            Platform::Cli => "command-line",
        }
    }

    pub fn parse(s: &str) -> Option<Platform> {
        [
            Platform::Slack,
            Platform::Discord,
            Platform::Email,
            Platform::Cli,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// One user on one platform, written `slack:U123` or `discord:80351110224678912`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserRef {
    pub platform: Platform,
    pub id: String,
}

impl UserRef {
    pub fn new(platform: Platform, id: impl Into<String>) -> UserRef {
        UserRef {
            platform,
            id: id.into(),
        }
    }

    pub fn slack(id: impl Into<String>) -> UserRef {
        UserRef::new(Platform::Slack, id)
    }

    /// Someone known only by email (a customer writing in), lower-cased.
    pub fn email(address: &str) -> UserRef {
        UserRef::new(Platform::Email, address.to_lowercase())
    }

    pub fn discord(id: impl Into<String>) -> UserRef {
        UserRef::new(Platform::Discord, id)
    }
}

impl fmt::Display for UserRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.platform.as_str(), self.id)
    }
}

impl Serialize for UserRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UserRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A `platform:id` string that does not name a user.
#[derive(Debug, thiserror::Error)]
#[error("not a user reference: {0:?}")]
pub struct BadUserRef(String);

impl FromStr for UserRef {
    type Err = BadUserRef;

    fn from_str(s: &str) -> Result<UserRef, BadUserRef> {
        let (p, id) = s.split_once(':').ok_or_else(|| BadUserRef(s.into()))?;
        let platform = Platform::parse(p).ok_or_else(|| BadUserRef(s.into()))?;
        if id.is_empty() {
            return Err(BadUserRef(s.into()));
        }
        Ok(UserRef::new(platform, id))
    }
}

/// A Slack workspace (team id) or a Discord guild: one surface of a desk.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SurfaceRef {
    pub platform: Platform,
    pub external_id: String,
}

impl SurfaceRef {
    pub fn new(platform: Platform, external_id: impl Into<String>) -> SurfaceRef {
        SurfaceRef {
            platform,
            external_id: external_id.into(),
        }
    }
}

impl fmt::Display for SurfaceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.platform.as_str(), self.external_id)
    }
}

/// A surface as stored, with its notification channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Surface {
    pub surface: SurfaceRef,
    pub notify_channel: Option<String>,
}

/// What a member may do on a desk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Creates and views tickets.
    Member,
    /// Works tickets: assigns, moves, notes, links.
    Agent,
    /// Changes settings, and works tickets too.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Agent => "agent",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Member, Role::Agent, Role::Admin]
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a command needs of its actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Member,
    Agent,
    Admin,
}

/// Who runs a command, where, and with which powers.
#[derive(Debug, Clone)]
pub struct Actor {
    pub desk: DeskId,
    pub user: UserRef,
    pub name: Option<String>,
    pub role: Role,
    /// True while the desk has no agents: then every member acts as an agent.
    pub small_team: bool,
    pub surface: SurfaceRef,
    /// The channel the command came from, when there is one.
    pub channel: Option<String>,
    /// The card message the answer to this request replaces in place, when it does (see
    /// [`crate::desk::Invocation::answered`]).
    pub answered: Option<String>,
    /// The key a change of this request is made once under, when the platform may deliver it
    /// twice ([`crate::desk::Invocation::keyed_changes`]).
    pub change_key: Option<String>,
}

impl Actor {
    /// Whether this actor may do what `need` asks.
    pub fn may(&self, need: Need) -> bool {
        match need {
            Need::Member => true,
            Need::Agent => {
                matches!(self.role, Role::Agent | Role::Admin)
                    || (self.role == Role::Member && self.small_team)
            }
            Need::Admin => self.role == Role::Admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(role: Role, small_team: bool) -> Actor {
        Actor {
            desk: DeskId(1),
            user: UserRef::slack("U1"),
            name: None,
            role,
            small_team,
            surface: SurfaceRef::new(Platform::Slack, "T1"),
            channel: None,
            answered: None,
            change_key: None,
        }
    }

    #[test]
    fn members_act_as_agents_only_while_the_desk_has_no_agents() {
        assert!(actor(Role::Member, true).may(Need::Agent));
        assert!(!actor(Role::Member, false).may(Need::Agent));
        assert!(!actor(Role::Member, true).may(Need::Admin));
        assert!(actor(Role::Agent, false).may(Need::Agent));
        assert!(!actor(Role::Agent, false).may(Need::Admin));
        assert!(actor(Role::Admin, false).may(Need::Admin));
    }

    #[test]
    fn user_refs_round_trip_through_text() {
        let u: UserRef = "discord:80351110224678912".parse().unwrap();
        assert_eq!(u, UserRef::discord("80351110224678912"));
        assert_eq!(u.to_string(), "discord:80351110224678912");
        assert!("nope".parse::<UserRef>().is_err());
        assert!("slack:".parse::<UserRef>().is_err());
    }
}
