//! Session-token signing keys: RSA-2048 (e = 65537) with a `kid`, the JWKS
//! that publishes them, and rotation with overlap — a rotated-out key keeps
//! verifying for `overlap` so tokens signed just before a rotation stay valid
//! for their (short) lifetime.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde_json::{json, Value};

use crate::ids;

/// Why a key could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The crypto library refused.
    #[error("key generation failed: {0}")]
    Crypto(String),
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// One signing key.
pub struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Value,
    public_pem: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh RSA-2048 key with a random `kid`.
    pub fn generate() -> Result<Self, KeyError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|e| KeyError::Crypto(e.to_string()))?;
        let private: Pkcs8V1Der = pair.as_der().map_err(|e| KeyError::Crypto(e.to_string()))?;
        let encoding = EncodingKey::from_rsa_pem(pem("PRIVATE KEY", private.as_ref()).as_bytes())
            .map_err(|e| KeyError::Crypto(e.to_string()))?;
        let public = pair.public_key();
        let spki: PublicKeyX509Der = public.as_der().map_err(|e| KeyError::Crypto(e.to_string()))?;
        let public_pem = pem("PUBLIC KEY", spki.as_ref());
        let n = b64url(public.modulus().big_endian_without_leading_zero());
        let e = b64url(public.exponent().big_endian_without_leading_zero());
        let decoding =
            DecodingKey::from_rsa_components(&n, &e).map_err(|e| KeyError::Crypto(e.to_string()))?;
        let kid = ids::new_id(ids::IdKind::SigningKey);
        let jwk = json!({ "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e });
        Ok(Self {
            kid,
            encoding,
            decoding,
            jwk,
            public_pem,
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// The public key as PEM (SubjectPublicKeyInfo), as Clerk SDKs take it for
    /// networkless verification (`jwtKey`).
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// The key for signing.
    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    /// The key for verifying.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }
}

#[derive(Debug)]
struct Ring {
    active: Arc<SigningKey>,
    retired: Vec<(Arc<SigningKey>, Instant)>,
}

/// The active key plus recently retired ones.
#[derive(Debug)]
pub struct KeyRing {
    ring: RwLock<Ring>,
    overlap: Duration,
}

impl KeyRing {
    /// A ring with one fresh key; retired keys verify for `overlap`.
    pub fn new(overlap: Duration) -> Result<Self, KeyError> {
        Ok(Self::with_key(SigningKey::generate()?, overlap))
    }

    /// A ring whose active key is `key`.
    pub fn with_key(key: SigningKey, overlap: Duration) -> Self {
        Self {
            ring: RwLock::new(Ring {
                active: Arc::new(key),
                retired: Vec::new(),
            }),
            overlap,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        self.ring.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The key new tokens are signed with.
    pub fn active(&self) -> Arc<SigningKey> {
        Arc::clone(&self.read().active)
    }

    /// Makes a fresh key active; the previous one keeps verifying for the overlap.
    pub fn rotate(&self) -> Result<Arc<SigningKey>, KeyError> {
        let fresh = Arc::new(SigningKey::generate()?);
        let mut ring = self.ring.write().unwrap_or_else(|p| p.into_inner());
        let old = std::mem::replace(&mut ring.active, Arc::clone(&fresh));
        ring.retired.push((old, Instant::now()));
        let overlap = self.overlap;
        ring.retired.retain(|(_, at)| at.elapsed() < overlap);
        Ok(fresh)
    }

    /// The key with `kid`, if it is active or retired within the overlap.
    pub fn find(&self, kid: &str) -> Option<Arc<SigningKey>> {
        let ring = self.read();
        if ring.active.kid == kid {
            return Some(Arc::clone(&ring.active));
        }
        ring.retired
            .iter()
            .find(|(key, at)| key.kid == kid && at.elapsed() < self.overlap)
            .map(|(key, _)| Arc::clone(key))
    }

    /// The JWKS document: the active key first, then keys within the overlap.
    pub fn jwks(&self) -> Value {
        let ring = self.read();
        let mut keys = vec![ring.active.jwk.clone()];
        keys.extend(
            ring.retired
                .iter()
                .filter(|(_, at)| at.elapsed() < self.overlap)
                .map(|(key, _)| key.jwk.clone()),
        );
        json!({ "keys": keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_publishes_rsa_2048_with_kid_and_rotation_overlaps() {
        let ring = KeyRing::new(Duration::from_millis(200)).unwrap();
        let first = ring.active();
        let jwk = first.jwk();
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["alg"], "RS256");
        assert_eq!(jwk["e"], "AQAB", "e = 65537");
        let n = {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(jwk["n"].as_str().unwrap())
                .unwrap()
        };
        assert_eq!(n.len() * 8, 2048);
        assert!(first.public_pem().starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(!format!("{first:?}").contains("PRIVATE"));

        let second = ring.rotate().unwrap();
        assert_ne!(first.kid(), second.kid());
        assert!(
            ring.find(first.kid()).is_some(),
            "the old key verifies during the overlap"
        );
        assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 2);
        std::thread::sleep(Duration::from_millis(250));
        assert!(ring.find(first.kid()).is_none(), "and not after it");
        assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 1);
        assert!(ring.find("key_unknown").is_none());
    }
}
