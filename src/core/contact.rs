//! Contacts: individuals (people with email addresses) and organizations (with email domains).
//!
//! An individual belongs to at most one organization. A new individual whose email domain is
//! one of an organization's domains joins it; linking a ticket whose contact is an individual to
//! an organization teaches the organization that individual's domain (unless it is a free-mail
//! domain that many unrelated people share).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ticket::{Priority, Status, TicketNo};

/// A lower-cased, syntactically plausible email address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Email(String);

impl Email {
    /// Accepts `local@domain.tld` (at most 254 characters), lower-casing it.
    pub fn parse(s: &str) -> Option<Email> {
        let s = s.trim().trim_start_matches("mailto:");
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let (local, domain) = s.rsplit_once('@')?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        if local.is_empty() || local.contains('@') || !domain_ok || local.contains(['<', '>']) {
            return None;
        }
        Some(Email(s.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after the `@`.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Domains shared by unrelated people; never an organization's domain.
const FREE_MAIL: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "yahoo.com",
    "icloud.com",
    "me.com",
    "aol.com",
    "proton.me",
    "protonmail.com",
    "gmx.com",
    "gmx.de",
    "mail.ru",
    "yandex.ru",
    "example.com",
];

/// Whether `domain` is a free-mail domain that cannot identify an organization.
pub fn is_free_mail(domain: &str) -> bool {
    FREE_MAIL.contains(&domain)
}

/// The longest organization or individual name, in characters.
pub const MAX_NAME: usize = 200;

/// What a `contact` or `history` command points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactTarget {
    Individual(Email),
    Organization(String),
}

impl ContactTarget {
    /// An email address makes an individual; anything else names an organization.
    pub fn parse(s: &str) -> Option<ContactTarget> {
        let s = s.trim();
        if s.is_empty() || s.chars().count() > MAX_NAME || s.chars().any(char::is_control) {
            return None;
        }
        if s.contains('@') {
            return Email::parse(s).map(ContactTarget::Individual);
        }
        Some(ContactTarget::Organization(s.to_owned()))
    }
}

/// An individual as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Individual {
    pub id: i64,
    pub name: Option<String>,
    pub emails: Vec<String>,
    pub phone: Option<String>,
    pub organization: Option<(i64, String)>,
}

impl Individual {
    /// "Jane Doe <jane@acme.com>" or just the address.
    pub fn label(&self) -> String {
        let email = self.emails.first().map(String::as_str).unwrap_or("");
        match &self.name {
            Some(name) if !email.is_empty() => format!("{name} <{email}>"),
            Some(name) => name.clone(),
            None => email.to_owned(),
        }
    }
}

/// An organization as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Organization {
    pub id: i64,
    pub name: String,
    pub domains: Vec<String>,
}

/// One line of a contact's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryLine {
    pub no: TicketNo,
    pub description: String,
    pub status: Status,
    pub priority: Priority,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(
            Email::parse("Jane.Doe@Acme.COM").unwrap().as_str(),
            "jane.doe@acme.com"
        );
        assert_eq!(Email::parse("mailto:a@b.io").unwrap().domain(), "b.io");
        for bad in [
            "",
            "a",
            "a@b",
            "@b.com",
            "a@.com",
            "a b@c.com",
            "a@b.com.",
            "<a@b.com>",
        ] {
            assert!(Email::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_target_with_an_at_sign_is_an_individual_and_anything_else_an_organization() {
        assert_eq!(
            ContactTarget::parse("jane@acme.com"),
            Some(ContactTarget::Individual(
                Email::parse("jane@acme.com").unwrap()
            ))
        );
        assert_eq!(
            ContactTarget::parse("Acme Oy"),
            Some(ContactTarget::Organization("Acme Oy".into()))
        );
        assert_eq!(ContactTarget::parse("not@valid"), None);
        assert_eq!(ContactTarget::parse(" "), None);
    }
}
