//! What the platforms' signature checks share: the refusal reasons and the five-minute window.

use chrono::{DateTime, Utc};

/// How far a request's timestamp may be from now.
pub const WINDOW_SECS: i64 = 5 * 60;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature or timestamp header is missing")]
    Missing,
    #[error("the timestamp is not a number")]
    BadTimestamp,
    #[error("the request is more than five minutes old or in the future")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
}

/// Checks that a request's timestamp (Unix seconds) is within five minutes of `now`.
pub fn fresh(timestamp: &str, now: DateTime<Utc>) -> Result<i64, SignatureError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    // `abs_diff`: a timestamp near i64::MIN must be stale, not an overflow.
    if now.timestamp().abs_diff(ts) > WINDOW_SECS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    Ok(ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_outside_five_minutes_are_stale_at_any_distance() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(fresh("1700000300", now), Ok(1_700_000_300));
        assert_eq!(fresh("1699999700", now), Ok(1_699_999_700));
        assert_eq!(fresh("1700000301", now), Err(SignatureError::Stale));
        assert_eq!(
            fresh("-9223372036854775808", now),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            fresh("9223372036854775807", now),
            Err(SignatureError::Stale)
        );
        assert_eq!(fresh("soon", now), Err(SignatureError::BadTimestamp));
    }
}
