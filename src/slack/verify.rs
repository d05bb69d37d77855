//! Slack request signatures: `v0=` HMAC-SHA256 over `v0:{timestamp}:{raw body}` with the
//! signing secret, within five minutes of now.
//!
//! Hand-written on purpose: the scheme is these few lines around the `hmac` crate, and doing it
//! here lets us check the raw bytes before any parsing, bound the timestamp against our own
//! clock, and compare in constant time (`Mac::verify_slice`), without pulling a Slack client
//! stack in for a verifier.

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::http::signature::fresh;
pub use crate::http::signature::{SignatureError, WINDOW_SECS};

/// Checks a request from Slack. `signature` is `X-Slack-Signature`, `timestamp` is
/// `X-Slack-Request-Timestamp`.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureError::Missing);
    };
    fresh(timestamp, now)?;
    let hex_sig = signature
        .strip_prefix("v0=")
        .ok_or(SignatureError::Mismatch)?;
    let expected = hex::decode(hex_sig).map_err(|_| SignatureError::Mismatch)?;
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(b"v0:");
    mac.update(timestamp.trim().as_bytes());
    mac.update(b":");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// Signs a body as Slack does (for tests and the load generator).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
    const BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn at(ts: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(ts, 0).unwrap()
    }

    #[test]
    fn slacks_documented_example_verifies_at_its_own_time() {
        assert_eq!(
            verify(SECRET, Some("1531420618"), Some(SIG), BODY, at(1531420618)),
            Ok(())
        );
        assert_eq!(sign(SECRET, 1531420618, BODY), SIG);
    }

    #[test]
    fn the_same_request_today_is_stale() {
        let today = DateTime::parse_from_rfc3339("2026-12-04T12:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            verify(SECRET, Some("1531420618"), Some(SIG), BODY, today),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn any_change_is_refused() {
        let now = at(1531420618);
        let cases = [
            (
                Some("1531420618"),
                Some(SIG),
                &b"token=changed"[..],
                SignatureError::Mismatch,
            ),
            (
                Some("1531420619"),
                Some(SIG),
                BODY,
                SignatureError::Mismatch,
            ),
            (
                Some("1531420618"),
                Some("v1=a2114d57"),
                BODY,
                SignatureError::Mismatch,
            ),
            (
                Some("1531420618"),
                Some("v0=zz"),
                BODY,
                SignatureError::Mismatch,
            ),
            (None, Some(SIG), BODY, SignatureError::Missing),
            (Some("1531420618"), None, BODY, SignatureError::Missing),
            (Some("soon"), Some(SIG), BODY, SignatureError::BadTimestamp),
        ];
        for (ts, sig, body, want) in cases {
            assert_eq!(verify(SECRET, ts, sig, body, now), Err(want));
        }
        assert_eq!(
            verify(b"another secret", Some("1531420618"), Some(SIG), BODY, now),
            Err(SignatureError::Mismatch)
        );
    }

    proptest::proptest! {
        #[test]
        fn verification_never_panics(ts in "\\PC{0,20}", sig in "\\PC{0,80}", body in proptest::collection::vec(0u8.., 0..200)) {
            let _ = verify(SECRET, Some(&ts), Some(&sig), &body, at(1531420618));
        }

        #[test]
        fn what_we_sign_we_verify(body in proptest::collection::vec(0u8.., 0..200), ts in 1_000_000_000i64..2_000_000_000) {
            let sig = sign(SECRET, ts, &body);
            proptest::prop_assert_eq!(verify(SECRET, Some(&ts.to_string()), Some(&sig), &body, at(ts)), Ok(()));
        }
    }
}
