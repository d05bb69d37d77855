//! Secrets at rest and in flight: stored tokens sealed with AES-256-GCM, and short signed values
//! (OAuth `state` cookies) with HMAC-SHA256.
//!
//! Every sealed value is bound to the row it belongs to by associated data (for example
//! `slack-install:T123`), so a ciphertext copied to another row does not open. The key is
//! `PIRAJA_SECRET_KEY` or the key file beside the database ([`crate::config::Settings::load_secret_key`]).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit as HmacKeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

const NONCE_LEN: usize = 12;

/// Seals and opens stored secrets, and signs short values. Holds keys derived from the secret key.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
    /// A separate key for signatures, so that the encryption key is used for one purpose only.
    signing: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer keyed by the 32-byte secret key.
    pub fn new(key: &[u8; 32]) -> Sealer {
        let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key));
        let signing = hmac_sha256(key, b"piraja signing key v1");
        Sealer { cipher, signing }
    }

    /// Encrypts `plain` bound to `ad`: a random nonce followed by the ciphertext and tag.
    pub fn seal(&self, plain: &[u8], ad: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plain,
            aad: ad.as_bytes(),
        };
        // Encryption fails only for inputs over 64 GiB; tokens are a few hundred bytes.
        let sealed = self
            .cipher
            .encrypt(&Nonce::from(nonce), payload)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts a value sealed for `ad`; `None` when it was altered, moved or sealed with another key.
    pub fn open(&self, sealed: &[u8], ad: &str) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let payload = Payload {
            msg: body,
            aad: ad.as_bytes(),
        };
        self.cipher.decrypt(&Nonce::from(nonce), payload).ok()
    }

    /// `value.expiry.signature` for a value that holds no dots, valid until `expires_ms`.
    pub fn sign(&self, value: &str, expires_ms: i64) -> String {
        let signed = format!("{value}.{expires_ms}");
        let mac = hmac_sha256(&self.signing, signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// The value of a [`Sealer::sign`]ed token when its signature holds (constant-time compare)
    /// and it has not expired at `now_ms`.
    pub fn verify(&self, token: &str, now_ms: i64) -> Option<String> {
        let (signed, mac) = token.rsplit_once('.')?;
        let (value, expires) = signed.rsplit_once('.')?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        let mut check = <hmac::Hmac<Sha256> as HmacKeyInit>::new_from_slice(&self.signing).ok()?;
        check.update(signed.as_bytes());
        check.verify_slice(&mac).ok()?;
        let expires: i64 = expires.parse().ok()?;
        (now_ms < expires).then(|| value.to_owned())
    }
}

/// A random token of 32 bytes, URL-safe base64 (for OAuth `state` and one-time codes).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares two strings in time that does not depend on where they differ.
pub fn ct_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <hmac::Hmac<Sha256> as HmacKeyInit>::new_from_slice(key)
        .expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_associated_data_and_key() {
        let sealer = Sealer::new(&[7; 32]);
        let sealed = sealer.seal(b"xoxb-secret", "slack-install:T1");
        assert!(!sealed.windows(11).any(|w| w == b"xoxb-secret"));
        assert_eq!(
            sealer.open(&sealed, "slack-install:T1").as_deref(),
            Some(&b"xoxb-secret"[..])
        );
        assert_eq!(sealer.open(&sealed, "slack-install:T2"), None);
        assert_eq!(
            Sealer::new(&[8; 32]).open(&sealed, "slack-install:T1"),
            None
        );
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert_eq!(sealer.open(&altered, "slack-install:T1"), None);
        assert_eq!(sealer.open(b"short", "slack-install:T1"), None);
        // A fresh nonce each time.
        assert_ne!(sealed, sealer.seal(b"xoxb-secret", "slack-install:T1"));
    }

    #[test]
    fn signed_values_verify_until_they_expire() {
        let sealer = Sealer::new(&[1; 32]);
        let token = sealer.sign("abc", 1_000);
        assert_eq!(sealer.verify(&token, 999).as_deref(), Some("abc"));
        assert_eq!(sealer.verify(&token, 1_000), None);
        assert_eq!(Sealer::new(&[2; 32]).verify(&token, 0), None);
        assert_eq!(sealer.verify(&token.replace("abc", "abd"), 0), None);
        assert_eq!(sealer.verify("abc.1000", 0), None);
        assert_eq!(sealer.verify("", 0), None);
        assert_ne!(random_token(), random_token());
    }
}
