//! Session-token signing keys: RSA-2048 (e = 65537) with a `kid`, the JWKS
//! that publishes them, and rotation with overlap — a rotated-out key keeps
//! verifying for `overlap` so tokens signed just before a rotation stay valid
//! for their (short) lifetime.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
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
    pkcs8: Vec<u8>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The public key parsed once (modulus, Montgomery context) for RS256
    /// verification; parsing it per token cost ~10% of a verification.
    verifying: ParsedPublicKey,
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
        Self::from_pkcs8(ids::new_id(ids::IdKind::SigningKey), private.as_ref())
    }

    /// The key stored as PKCS#8 DER under `kid`. Only RSA keys of 2048 bits
    /// or more with e = 65537 are accepted.
    pub fn from_pkcs8(kid: String, der: &[u8]) -> Result<Self, KeyError> {
        let pair = KeyPair::from_pkcs8(der).map_err(|e| KeyError::Crypto(e.to_string()))?;
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
        if public.modulus().big_endian_without_leading_zero().len() < 256
            || public.exponent().big_endian_without_leading_zero() != [1, 0, 1]
        {
            return Err(KeyError::Crypto(
                "expected RSA-2048 or larger with e = 65537".into(),
            ));
        }
        let verifying = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, spki.as_ref())
            .map_err(|e| KeyError::Crypto(e.to_string()))?;
        let jwk = json!({ "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e });
        Ok(Self {
            kid,
            pkcs8: private.as_ref().to_vec(),
            encoding,
            decoding,
            verifying,
            jwk,
            public_pem,
        })
    }

    /// The private key as PKCS#8 DER. A secret: only for the identity
    /// store, which persists keys so instances and restarts share them.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
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

    /// The key for verifying, as jsonwebtoken takes it.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// Whether `signature` is this key's RS256 (PKCS#1 v1.5, SHA-256)
    /// signature of `message`.
    pub fn verifies_rs256(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verifying.verify_sig(message, signature).is_ok()
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

    /// A ring of `active` and `retired` keys (each with how long ago it was
    /// retired; those past the overlap are left out).
    pub fn from_parts(active: SigningKey, retired: Vec<(SigningKey, Duration)>, overlap: Duration) -> Self {
        let ring = Self::with_key(active, overlap);
        let now = Instant::now();
        {
            let mut inner = ring.ring.write().unwrap_or_else(|p| p.into_inner());
            inner.retired = retired
                .into_iter()
                .filter(|(_, ago)| *ago < overlap)
                .map(|(key, ago)| (Arc::new(key), now.checked_sub(ago).unwrap_or(now)))
                .collect();
        }
        ring
    }

    /// Replaces the ring's contents (from the identity store): `active`
    /// signs; each retired key verifies until `overlap` after it was retired,
    /// `retired_ago` being how long ago that was.
    pub fn install(&self, active: SigningKey, retired: Vec<(SigningKey, Duration)>) {
        let now = Instant::now();
        let mut ring = self.ring.write().unwrap_or_else(|p| p.into_inner());
        // Keep the Arc of keys we already hold (cheap, and equal by kid).
        let reuse = |key: SigningKey, ring: &Ring| -> Arc<SigningKey> {
            if ring.active.kid == key.kid {
                return Arc::clone(&ring.active);
            }
            ring.retired
                .iter()
                .find(|(k, _)| k.kid == key.kid)
                .map(|(k, _)| Arc::clone(k))
                .unwrap_or_else(|| Arc::new(key))
        };
        let active = reuse(active, &ring);
        let retired = retired
            .into_iter()
            .filter(|(_, ago)| *ago < self.overlap)
            .map(|(key, ago)| (reuse(key, &ring), now.checked_sub(ago).unwrap_or(now)))
            .collect();
        *ring = Ring { active, retired };
    }

    /// How long retired keys keep verifying.
    pub fn overlap(&self) -> Duration {
        self.overlap
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

    #[test]
    fn keys_round_trip_through_pkcs8_and_install_replaces_the_ring() {
        let key = SigningKey::generate().unwrap();
        let again = SigningKey::from_pkcs8(key.kid().into(), key.pkcs8_der()).unwrap();
        assert_eq!(key.jwk(), again.jwk());
        assert!(SigningKey::from_pkcs8("key_x".into(), b"not a key").is_err());

        let ring = KeyRing::new(Duration::from_secs(60)).unwrap();
        let old = SigningKey::generate().unwrap();
        let old_kid = old.kid().to_string();
        let stale = SigningKey::generate().unwrap();
        let stale_kid = stale.kid().to_string();
        let active_kid = key.kid().to_string();
        ring.install(
            key,
            vec![(old, Duration::from_secs(10)), (stale, Duration::from_secs(61))],
        );
        assert_eq!(ring.active().kid(), active_kid);
        assert!(ring.find(&old_kid).is_some());
        assert!(ring.find(&stale_kid).is_none(), "retired beyond the overlap");
        assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 2);
    }
}
