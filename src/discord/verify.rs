//! Discord request signatures: Ed25519 over `X-Signature-Timestamp` followed by the raw body,
//! with the application's public key; timestamps more than five minutes from now are refused.
//!
//! This is what serenity's `interactions_endpoint::Verifier` does (on the same ed25519-dalek),
//! plus the timestamp bound it lacks; using ed25519-dalek directly spares compiling serenity's
//! model layer, which our lenient payload models replace.

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, VerifyingKey};

pub use crate::http::signature::SignatureError;
use crate::http::signature::fresh;

/// Reads the application's public key (64 hex characters). A weak key (of small order, under
/// which a signature can verify whatever the message) is refused.
pub fn public_key(hex_key: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(hex_key.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes)
        .ok()
        .filter(|k| !k.is_weak())
}

/// Checks a request from Discord. `signature` is `X-Signature-Ed25519` (hex), `timestamp` is
/// `X-Signature-Timestamp`.
pub fn verify(
    key: &VerifyingKey,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureError::Missing);
    };
    fresh(timestamp, now)?;
    let bytes: [u8; 64] = hex::decode(signature.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(SignatureError::Mismatch)?;
    let signature = Signature::from_bytes(&bytes);
    let mut message = Vec::with_capacity(timestamp.len() + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.extend_from_slice(body);
    // Plain (cofactorless) verification, as serenity's `Verifier` and Discord's own examples
    // (tweetnacl) do. It refuses a non-canonical `s` (`s + ℓ`, the malleable form) and compares
    // the encoding of the R it computes, so a non-canonical R never matches; with the weak keys
    // refused in `public_key`, nobody without the private key can make a signature pass
    // (strong unforgeability). `verify_strict` adds a check that R is not of small order, which
    // decompresses R: about 8 µs more a request here (49 against 40 µs, BENCHMARKS.md) for no
    // forgery it stops under a key that is not weak.
    ed25519_dalek::Verifier::verify(key, &message, &signature).map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> serde_json::Value {
        serde_json::from_str(include_str!(
            "../../tests/fixtures/discord-signed-ping-derived.json"
        ))
        .unwrap()
    }

    fn at(ts: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(ts, 0).unwrap()
    }

    #[test]
    fn the_derived_fixture_verifies_at_its_time_and_is_stale_today() {
        let f = fixture();
        let key = public_key(f["public_key_hex"].as_str().unwrap()).unwrap();
        let ts = f["x_signature_timestamp"].as_str().unwrap();
        let sig = f["x_signature_ed25519"].as_str().unwrap();
        let body = f["raw_body"].as_str().unwrap().as_bytes();
        assert_eq!(
            verify(&key, Some(ts), Some(sig), body, at(1_700_000_000)),
            Ok(())
        );
        assert_eq!(
            verify(&key, Some(ts), Some(sig), body, at(1_700_000_299)),
            Ok(())
        );
        assert_eq!(
            verify(&key, Some(ts), Some(sig), body, at(1_796_400_000)),
            Err(SignatureError::Stale)
        );
        let mut altered = body.to_vec();
        altered[10] ^= 1;
        assert_eq!(
            verify(&key, Some(ts), Some(sig), &altered, at(1_700_000_000)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&key, Some("1700000001"), Some(sig), body, at(1_700_000_000)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&key, None, Some(sig), body, at(1_700_000_000)),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(&key, Some(ts), Some("zz"), body, at(1_700_000_000)),
            Err(SignatureError::Mismatch)
        );
        assert!(public_key("nothex").is_none());
    }

    #[test]
    fn a_signature_made_malleable_is_refused() {
        // s + ℓ verifies the same equation; RFC 8032 requires s < ℓ, and so do we.
        let f = fixture();
        let key = public_key(f["public_key_hex"].as_str().unwrap()).unwrap();
        let ts = f["x_signature_timestamp"].as_str().unwrap();
        let body = f["raw_body"].as_str().unwrap().as_bytes();
        let mut sig = hex::decode(f["x_signature_ed25519"].as_str().unwrap()).unwrap();
        // ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian.
        let order: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for (b, l) in sig[32..].iter_mut().zip(order) {
            let sum = u16::from(*b) + u16::from(l) + carry;
            *b = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0, "s + ℓ fits in 32 bytes for this fixture");
        assert_eq!(
            verify(
                &key,
                Some(ts),
                Some(&hex::encode(sig)),
                body,
                at(1_700_000_000)
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_weak_public_key_is_refused() {
        // The identity point, of small order: a signature whose R is the identity and whose
        // s is zero verifies under it for any message.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(public_key(&hex::encode(identity)).is_none());
        let f = fixture();
        assert!(public_key(f["public_key_hex"].as_str().unwrap()).is_some());
    }
}
