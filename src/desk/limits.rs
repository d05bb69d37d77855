//! Abuse limits: per person and per desk, on commands and on new tickets (governor's GCRA,
//! keyed by desk and user), so one user or one bot cannot flood a desk. A limited request is
//! answered privately with when to try again; it is never silently dropped.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::Limits;
use crate::core::people::UserRef;
use crate::core::ticket::DeskId;

/// Keyed limiters; the per-key state is pruned once it grows past [`PRUNE_AT`].
pub struct Limiter {
    per_user: DefaultKeyedRateLimiter<(i64, String)>,
    creates: DefaultKeyedRateLimiter<(i64, String)>,
    per_desk: DefaultKeyedRateLimiter<i64>,
    clock: DefaultClock,
}

/// Remembered keys before stale ones are dropped.
pub const PRUNE_AT: usize = 50_000;

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Limiter(..)")
    }
}

fn quota(per_minute: u32) -> Quota {
    let n = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    // A burst of a minute's allowance, refilled evenly.
    Quota::per_minute(n).allow_burst(n)
}

impl Limiter {
    pub fn new(limits: Limits) -> Limiter {
        Limiter {
            per_user: RateLimiter::keyed(quota(limits.per_user)),
            creates: RateLimiter::keyed(quota(limits.creates_per_user)),
            per_desk: RateLimiter::keyed(quota(limits.per_desk)),
            clock: DefaultClock::default(),
        }
    }

    /// `Err(wait)` when `user` (or their desk) must wait before this request.
    pub fn check(&self, desk: DeskId, user: &UserRef, creates: bool) -> Result<(), Duration> {
        let key = (desk.0, user.to_string());
        let now = self.clock.now();
        let wait = |r: Result<(), governor::NotUntil<_>>| r.map_err(|n| n.wait_time_from(now));
        wait(self.per_user.check_key(&key))?;
        wait(self.per_desk.check_key(&desk.0))?;
        if creates {
            wait(self.creates.check_key(&key))?;
        }
        if self.per_user.len() > PRUNE_AT {
            self.per_user.retain_recent();
            self.creates.retain_recent();
            self.per_desk.retain_recent();
        }
        Ok(())
    }
}

/// What a limited user reads.
pub fn message(wait: Duration) -> String {
    let secs = wait.as_secs().max(1);
    format!(
        "You are going faster than this desk allows; try again in {secs}s. Nothing was changed."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_over_the_limit_waits_while_others_go_on() {
        let limiter = Limiter::new(Limits {
            per_user: 3,
            creates_per_user: 2,
            per_desk: 100,
        });
        let (desk, ann, bob) = (DeskId(1), UserRef::slack("ANN"), UserRef::slack("BOB"));
        assert!(limiter.check(desk, &ann, true).is_ok());
        assert!(limiter.check(desk, &ann, true).is_ok());
        let wait = limiter.check(desk, &ann, true).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(60));
        assert!(limiter.check(desk, &bob, true).is_ok());
        assert!(
            limiter.check(DeskId(2), &ann, true).is_ok(),
            "another desk is another key"
        );
        assert!(message(wait).contains("try again in"));
    }
}
