//! Tokens already verified, so a client's session token — sent unchanged on
//! every request for its short lifetime — pays for its RS256 signature once,
//! not per request (the signature check is most of the proxy's cost).
//!
//! What a hit skips and what it does not:
//! - the entry is found by the **whole token** (every byte compared), so a
//!   hit is the exact string that verified;
//! - only tokens that verified are stored; a refusal is never remembered, so
//!   junk cannot fill the cache or change later answers;
//! - the time claims (`exp`, `nbf`, `iat`, with the leeway) are checked again
//!   on every hit: a cached token expires exactly when an uncached one does;
//! - the signing key must still be in the ring: once a rotated-out key
//!   leaves it (after the overlap), its tokens are verified afresh, and fail;
//! - everything else the verifier checks (issuer, azp, sid, v, sts, types)
//!   depends only on the token's bytes and the verifier's fixed config, so
//!   its result is the same on every check.
//!
//! The cache is bounded (16 shards of [`SHARD_CAPACITY`] entries; a full
//! shard first drops its expired entries, then everything).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use crate::identity::token::{header_kid, SessionClaims, TokenRejected, Verifier};

/// Shards (a power of two).
const SHARDS: usize = 16;
/// Entries per shard.
pub const SHARD_CAPACITY: usize = 1024;

struct Entry {
    claims: SessionClaims,
    kid: String,
}

/// Verified tokens and their claims.
pub struct TokenCache {
    capacity: usize,
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<String, Entry>>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens.
        f.debug_struct("TokenCache").field("len", &self.len()).finish()
    }
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::with_shard_capacity(SHARD_CAPACITY)
    }
}

impl TokenCache {
    /// A cache of at most `capacity` entries per shard.
    pub fn with_shard_capacity(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, token: &str) -> &Mutex<HashMap<String, Entry>> {
        let index = self.hasher.hash_one(token) as usize & (SHARDS - 1);
        &self.shards[index]
    }

    /// `token`'s claims at `now`: from the cache when it verified before
    /// (times checked again, key still known), else from `verify`, whose
    /// success is remembered.
    pub fn verify(
        &self,
        verifier: &Verifier,
        token: &str,
        now: i64,
        verify: impl FnOnce() -> Result<SessionClaims, TokenRejected>,
    ) -> Result<SessionClaims, TokenRejected> {
        let shard = self.shard(token);
        let hit = {
            let entries = shard.lock().unwrap_or_else(|p| p.into_inner());
            entries
                .get(token)
                .map(|e| (e.claims.clone(), verifier.knows_key(&e.kid)))
        };
        match hit {
            Some((claims, true)) => {
                verifier.check_times(claims.exp, claims.nbf, claims.iat, now)?;
                return Ok(claims);
            }
            Some((_, false)) => {
                shard.lock().unwrap_or_else(|p| p.into_inner()).remove(token);
            }
            None => {}
        }
        let claims = verify()?;
        if let Some(kid) = header_kid(token) {
            let mut entries = shard.lock().unwrap_or_else(|p| p.into_inner());
            if entries.len() >= self.capacity {
                entries.retain(|_, e| {
                    verifier
                        .check_times(e.claims.exp, e.claims.nbf, e.claims.iat, now)
                        .is_ok()
                });
                if entries.len() >= self.capacity {
                    entries.clear();
                }
            }
            entries.insert(
                token.to_string(),
                Entry {
                    claims: claims.clone(),
                    kid,
                },
            );
        }
        Ok(claims)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::identity::keys::KeyRing;
    use crate::identity::token::{mint, VerifierConfig};

    const NOW: i64 = 1_800_000_000;
    const ISSUER: &str = "https://clerk.tenantry.test";

    fn setup(overlap: Duration) -> (Arc<KeyRing>, Verifier) {
        let ring = Arc::new(KeyRing::new(overlap).unwrap());
        let verifier = Verifier::new(
            Arc::clone(&ring),
            VerifierConfig {
                issuer: ISSUER.into(),
                authorized_parties: Vec::new(),
                leeway_secs: 5,
            },
        );
        (ring, verifier)
    }

    fn token(ring: &KeyRing, user: &str) -> String {
        let claims = SessionClaims::session(ISSUER, user, "sess_1", NOW, 60)
            .in_org("org_a", "acme", "org:admin", &[])
            .unwrap();
        mint(&ring.active(), &claims).unwrap()
    }

    /// Verifies through the cache, counting the full verifications.
    fn check(
        cache: &TokenCache,
        verifier: &Verifier,
        token: &str,
        now: i64,
        full: &mut u32,
    ) -> Result<SessionClaims, TokenRejected> {
        cache.verify(verifier, token, now, || {
            *full += 1;
            verifier.verify(token, now)
        })
    }

    #[test]
    fn a_token_is_verified_once_and_still_expires() {
        let (ring, verifier) = setup(Duration::from_secs(120));
        let cache = TokenCache::default();
        let t = token(&ring, "user_1");
        let mut full = 0;
        for _ in 0..3 {
            assert_eq!(
                check(&cache, &verifier, &t, NOW, &mut full).unwrap().sub,
                "user_1"
            );
        }
        assert_eq!(full, 1, "one full verification for three uses");
        // Past exp + leeway the cached token is refused like any other.
        assert_eq!(
            check(&cache, &verifier, &t, NOW + 60 + 6, &mut full),
            Err(TokenRejected::Expired)
        );
        assert_eq!(full, 1);
        // Before iat (beyond the leeway): the cache answers as a full check does.
        assert_eq!(
            check(&cache, &verifier, &t, NOW - 10, &mut full),
            Err(TokenRejected::IssuedInFuture)
        );
        assert_eq!(verifier.verify(&t, NOW - 10), Err(TokenRejected::IssuedInFuture));
    }

    #[test]
    fn refusals_are_not_remembered_and_other_bytes_miss() {
        let (ring, verifier) = setup(Duration::from_secs(120));
        let cache = TokenCache::default();
        let t = token(&ring, "user_1");
        let mut full = 0;
        check(&cache, &verifier, &t, NOW, &mut full).unwrap();
        // The same token with its signature cut: other bytes, a full check, refused.
        let cut = &t[..t.len() - 4];
        assert!(check(&cache, &verifier, cut, NOW, &mut full).is_err());
        assert!(check(&cache, &verifier, cut, NOW, &mut full).is_err());
        assert_eq!(full, 3);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_key_that_left_the_ring_takes_its_cached_tokens_with_it() {
        let (ring, verifier) = setup(Duration::ZERO);
        let cache = TokenCache::default();
        let t = token(&ring, "user_1");
        let mut full = 0;
        check(&cache, &verifier, &t, NOW, &mut full).unwrap();
        ring.rotate().unwrap();
        assert!(!verifier.knows_key(&header_kid(&t).unwrap()));
        assert_eq!(
            check(&cache, &verifier, &t, NOW, &mut full),
            Err(TokenRejected::UnknownKey)
        );
        assert_eq!(full, 2);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let (ring, verifier) = setup(Duration::from_secs(120));
        let cache = TokenCache::with_shard_capacity(4);
        let mut full = 0;
        let mut most = 0;
        for i in 0..(SHARDS * 4 * 3) {
            let t = token(&ring, &format!("user_{i}"));
            check(&cache, &verifier, &t, NOW, &mut full).unwrap();
            most = most.max(cache.len());
        }
        assert!(most <= SHARDS * 4, "{most} entries");
        assert!(most > 4, "entries spread over the shards");
    }
}
