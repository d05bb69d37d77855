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
    if (now.timestamp() - ts).abs() > WINDOW_SECS {
        return Err(SignatureError::Stale);
    }
    Ok(ts)
}
