//! Password hashing: Argon2id (memory-hard), PHC strings, OWASP's
//! parameters (19 MiB, 2 passes, 1 lane).
//!
//! Verification of an unknown identifier still runs one full Argon2id
//! computation against a fixed dummy hash, so response time does not tell
//! whether an account exists.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Shortest password accepted.
pub const MIN_LENGTH: usize = 8;
/// Longest password accepted (bounds hashing work per request).
pub const MAX_LENGTH: usize = 256;

/// Why a password cannot be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Shorter than [`MIN_LENGTH`] or longer than [`MAX_LENGTH`].
    #[error("passwords must be {MIN_LENGTH} to {MAX_LENGTH} characters")]
    Length,
    /// Hashing failed (never expected; reported rather than unwrapped).
    #[error("password hashing failed")]
    Hash,
}

fn argon2() -> Argon2<'static> {
    // 19 MiB, t=2, p=1: OWASP Password Storage Cheat Sheet's Argon2id minimum.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` into a PHC string with a fresh random salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let chars = password.chars().count();
    if !(MIN_LENGTH..=MAX_LENGTH).contains(&chars) {
        return Err(PasswordError::Length);
    }
    let salt_bytes = crate::ids::random_bytes::<16>();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|_| PasswordError::Hash)?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| PasswordError::Hash)
}

/// Whether `password` matches `stored` (a PHC string). `None` (no such user,
/// or no password set) still costs one Argon2id run and returns false.
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    if password.chars().count() > MAX_LENGTH {
        return false;
    }
    let dummy = dummy_hash();
    let (phc, real) = match stored {
        Some(s) => (s, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        // A corrupt stored hash must not become a login bypass or a 500.
        tracing::error!("a stored password hash is not a valid PHC string");
        return false;
    };
    let ok = argon2().verify_password(password.as_bytes(), &parsed).is_ok();
    ok && real
}

fn dummy_hash() -> &'static String {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash("tenantry-dummy-password").unwrap_or_default())
}

/// At most this many Argon2id runs at once per CPU: each takes tens of
/// milliseconds and 19 MiB, so a flood of sign-ins queues instead of
/// exhausting memory or starving other work.
const RUNS_PER_CPU: usize = 2;

fn limiter() -> &'static tokio::sync::Semaphore {
    static LIMIT: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    LIMIT.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        tokio::sync::Semaphore::new(cpus * RUNS_PER_CPU)
    })
}

/// Runs `f` (password hashing or verification) off the async runtime's
/// worker threads, a bounded number at a time (see [`RUNS_PER_CPU`]).
/// Fails only if `f` panicked or the runtime is shutting down.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, BlockingError> {
    let _permit = limiter().acquire().await.map_err(|_| BlockingError)?;
    tokio::task::spawn_blocking(f).await.map_err(|_| BlockingError)
}

/// The hashing task could not run to completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("password hashing did not complete")]
pub struct BlockingError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_per_salt() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b);
        assert!(verify("correct horse battery", Some(&a)));
        assert!(!verify("correct horse batterY", Some(&a)));
        assert!(!verify("correct horse battery", None));
        assert!(!verify("tenantry-dummy-password", None));
        assert!(!verify("x", Some("not a phc string")));
    }

    #[test]
    fn length_bounds() {
        assert_eq!(hash("short"), Err(PasswordError::Length));
        assert_eq!(hash(&"a".repeat(257)), Err(PasswordError::Length));
    }
}
