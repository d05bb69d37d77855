//! One desk across surfaces: `/ticket desk link` gives an admin a one-time code, and
//! `/ticket desk join <code>` run by an admin on another Slack workspace or Discord guild joins
//! that surface to the same desk.

use chrono::TimeDelta;
use rand::Rng;
use sha2::{Digest, Sha256};

use super::{Desks, Reply};
use crate::core::people::{Actor, Platform};
use crate::store::{Redeemed, StoreError};

/// How long a link code works.
pub const CODE_TTL: TimeDelta = TimeDelta::minutes(10);
/// Letters that cannot be mistaken for one another when typed.
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A fresh code like `K7QM-2XPD` (40 bits of randomness).
pub fn new_code() -> String {
    let mut rng = rand::rng();
    let mut code: String = (0..8)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    code.insert(4, '-');
    code
}

/// What is stored for a code: the SHA-256 of its letters, case and dashes ignored.
pub fn code_hash(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    hex::encode(Sha256::digest(normal.as_bytes()))
}

impl Desks {
    pub(super) async fn desk_link(&self, actor: &Actor) -> Result<Reply, StoreError> {
        let code = new_code();
        let now = self.clock.now();
        self.store
            .save_link_code(actor.desk, &code_hash(&code), &actor.user, now + CODE_TTL)
            .await?;
        Ok(Reply::private(format!(
            "Your one-time code is {code}; it works once, for 10 minutes. An admin of the other \
             Slack workspace or Discord server runs /ticket desk join {code} there, and both then \
             share this desk's tickets, contacts, SLA and digests."
        )))
    }

    pub(super) async fn desk_join(
        &self,
        actor: &Actor,
        code: &str,
        merge: bool,
    ) -> Result<Reply, StoreError> {
        let now = self.clock.now();
        let redeemed = self
            .store
            .redeem_link_code(&code_hash(code), &actor.surface, &actor.user, merge, now)
            .await?;
        self.caches.forget();
        Ok(match redeemed {
            Redeemed::Joined { moved: 0, .. } => Reply::Text {
                text: "This workspace now shares its desk: tickets, contacts, SLA and digests \
                       are the same on both sides. Run /ticket channel where new tickets should \
                       appear here."
                    .into(),
                private: false,
            },
            Redeemed::Joined {
                moved, first_no, ..
            } => Reply::Text {
                text: format!(
                    "This workspace now shares its desk. Its {moved} ticket(s) moved along with \
                     their history and are numbered from #{first_no} on. Run /ticket channel \
                     where new tickets should appear here."
                ),
                private: false,
            },
            Redeemed::HasTickets(n) => Reply::Error(match actor.surface.platform {
                // Discord's `desk join` takes a `merge` option, not a word.
                Platform::Discord => format!(
                    "This server already has {n} ticket(s) of its own. To move them into the \
                     shared desk (renumbered, history kept), run /ticket desk join code:{code} \
                     merge:True"
                ),
                _ => format!(
                    "This workspace already has {n} ticket(s) of its own. To move them into the \
                     shared desk (renumbered, history kept), run /ticket desk join {code} merge"
                ),
            }),
            Redeemed::AlreadyJoined => {
                Reply::Error("This workspace already uses that desk.".into())
            }
            Redeemed::Invalid => Reply::Error(
                "That code is wrong, used or expired. Ask an admin of the other side for a new \
                 one with /ticket desk link"
                    .into(),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_typable_and_hash_without_case_or_dashes() {
        let code = new_code();
        assert_eq!(code.len(), 9);
        assert_eq!(&code[4..5], "-");
        assert_eq!(
            code_hash(&code),
            code_hash(&code.to_lowercase().replace('-', ""))
        );
        assert_ne!(code_hash("AAAA-AAAA"), code_hash("AAAA-AAAB"));
        assert_ne!(new_code(), new_code());
    }
}
