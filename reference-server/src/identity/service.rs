//! The identity service: the decisions behind the Backend and Frontend
//! APIs — who may sign in and how far, which device is trusted, which org a
//! session may make active, and which token a session gets.
//!
//! Sign-in is a state machine per attempt, driven by one device (client):
//!
//! ```text
//! needs_identifier --identifier--> needs_first_factor --password--> complete
//!                                          |                 \-> needs_second_factor (2FA user)
//!                                          |                 \-> needs_client_trust (no 2FA, unknown device)
//!  needs_second_factor | needs_client_trust --prepare: email code--> (code pending) --code--> complete
//! ```
//!
//! A session exists only once an attempt is `complete`; completion is one
//! guarded statement, so a code works once and for one attempt only. An
//! unknown identifier behaves like a wrong password (no account enumeration).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use serde_json::{json, Value};

use super::keys::KeyRing;
use super::password;
use super::store::{Membership, Session, SignIn, Store, StoreError, User};
use super::token::{mint, SessionClaims};
use crate::config::IdentityConfig;

/// Wrong passwords allowed per attempt before it is abandoned.
pub const MAX_PASSWORD_ATTEMPTS: i32 = 5;
/// Wrong codes allowed per attempt before it is abandoned.
pub const MAX_CODE_ATTEMPTS: i32 = 5;
/// How long a sign-in attempt lives.
pub const SIGN_IN_TTL_SECS: i64 = 1800;

/// Where a sign-in attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInStatus {
    /// No identifier yet.
    NeedsIdentifier,
    /// Identifier known, password needed.
    NeedsFirstFactor,
    /// Password verified; the user has 2FA: email code needed.
    NeedsSecondFactor,
    /// Password verified, no 2FA, device unknown for this user: email code needed.
    NeedsClientTrust,
    /// A session was created.
    Complete,
    /// Expired or locked after too many failures.
    Abandoned,
}

impl SignInStatus {
    /// Clerk's name for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            SignInStatus::NeedsIdentifier => "needs_identifier",
            SignInStatus::NeedsFirstFactor => "needs_first_factor",
            SignInStatus::NeedsSecondFactor => "needs_second_factor",
            SignInStatus::NeedsClientTrust => "needs_client_trust",
            SignInStatus::Complete => "complete",
            SignInStatus::Abandoned => "abandoned",
        }
    }

    /// Parses Clerk's name (the store's column).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "needs_identifier" => SignInStatus::NeedsIdentifier,
            "needs_first_factor" => SignInStatus::NeedsFirstFactor,
            "needs_second_factor" => SignInStatus::NeedsSecondFactor,
            "needs_client_trust" => SignInStatus::NeedsClientTrust,
            "complete" => SignInStatus::Complete,
            "abandoned" => SignInStatus::Abandoned,
            _ => return None,
        })
    }

    /// Whether an email code completes this status.
    pub fn needs_code(self) -> bool {
        matches!(
            self,
            SignInStatus::NeedsSecondFactor | SignInStatus::NeedsClientTrust
        )
    }
}

/// Why the identity service refused. The APIs map each to Clerk's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// No such resource (or not visible to the caller).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique value is taken.
    #[error("{0} is already taken")]
    Taken(&'static str),
    /// A parameter is missing or malformed.
    #[error("{param}: {message}")]
    Invalid {
        /// The parameter (snake_case, as sent).
        param: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Wrong password (or unknown identifier: the same answer).
    #[error("password is incorrect")]
    PasswordIncorrect,
    /// Wrong email code.
    #[error("incorrect code")]
    CodeIncorrect,
    /// No code pending, or it expired.
    #[error("no valid code: request a new one")]
    CodeExpired,
    /// Too many failures; the attempt is abandoned.
    #[error("too many failed attempts; start a new sign-in")]
    TooManyAttempts,
    /// The attempt is not in a state that allows this step.
    #[error("the sign-in attempt is `{0}`; this step does not apply")]
    WrongStatus(&'static str),
    /// The user is banned.
    #[error("the account is locked")]
    UserLocked,
    /// The session is not active (revoked, ended, expired).
    #[error("the session is not active")]
    SessionNotActive,
    /// The store is down.
    #[error("identity store unavailable")]
    Unavailable,
    /// Signing or another internal step failed.
    #[error("internal error")]
    Internal,
}

impl From<StoreError> for IdentityError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => IdentityError::NotFound(what),
            StoreError::Taken(what) => IdentityError::Taken(what),
            StoreError::Invalid(message) => IdentityError::Invalid {
                param: "request",
                message,
            },
            StoreError::Unavailable(detail) => {
                static UNAVAILABLE: crate::circuit::ThrottledWarning =
                    crate::circuit::ThrottledWarning::new(10_000);
                if let Some(n) = UNAVAILABLE.note() {
                    tracing::warn!(%detail, failed = n, "identity store unavailable ({n} calls failed in the last 10 s)");
                }
                IdentityError::Unavailable
            }
        }
    }
}

type Result<T> = std::result::Result<T, IdentityError>;

/// A minted token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The compact JWT.
    pub jwt: String,
}

/// The identity service.
#[derive(Debug)]
pub struct Identity {
    store: Store,
    keys: Arc<KeyRing>,
    config: IdentityConfig,
    issuer: String,
    /// Unix ms of the last key refresh from the store.
    last_key_refresh: AtomicI64,
}

/// Seconds since the epoch.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// SHA-256 of `parts` joined by NUL bytes.
pub fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            ctx.update(&[0]);
        }
        ctx.update(part);
    }
    ctx.finish().as_ref().to_vec()
}

/// A uniformly random six-digit code.
fn new_code() -> String {
    loop {
        let n = u32::from_be_bytes(crate::ids::random_bytes::<4>());
        // Rejection sampling: 4 294 000 000 is the largest multiple of 10^6 below 2^32.
        if n < 4_294_000_000 {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

impl Identity {
    /// The service over `store`, signing with `keys` as `issuer`.
    pub fn new(store: Store, keys: Arc<KeyRing>, config: IdentityConfig, issuer: String) -> Self {
        Self {
            store,
            keys,
            config,
            issuer,
            // The ring comes freshly loaded from the store.
            last_key_refresh: AtomicI64::new(now_ms()),
        }
    }

    // --- signing keys ---

    /// Loads the signing keys from the store into the ring (creating the
    /// first key if the store has none): every instance signs with the same
    /// active key and verifies the recently retired ones.
    pub async fn load_keys(&self) -> Result<()> {
        let overlap_secs = self.keys.overlap().as_secs() as i64;
        let stored = self.store.signing_keys(overlap_secs, Some(&create_key)).await?;
        self.install(stored)
    }

    fn install(&self, stored: Vec<super::store::StoredKey>) -> Result<()> {
        let (active, retired) = parse_stored_keys(stored)?;
        self.keys.install(active, retired);
        self.last_key_refresh.store(now_ms(), Ordering::Relaxed);
        Ok(())
    }

    /// Re-reads the keys if the last read was at least
    /// `identity.key_refresh_interval_ms` ago (a token with an unknown `kid` may
    /// have been signed by another instance after a rotation). Returns
    /// whether it refreshed; unknown kids cannot make it query more often.
    pub async fn refresh_keys_if_due(&self) -> bool {
        let now = now_ms();
        let last = self.last_key_refresh.load(Ordering::Relaxed);
        if now - last < self.config.key_refresh_interval_ms as i64
            || self
                .last_key_refresh
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        let overlap_secs = self.keys.overlap().as_secs() as i64;
        match self.store.signing_keys(overlap_secs, None).await {
            Ok(stored) => self.install(stored).is_ok(),
            Err(e) => {
                tracing::warn!(error = %e, "signing keys could not be refreshed");
                false
            }
        }
    }

    /// Rotates: a fresh key becomes active for every instance; the previous
    /// one keeps verifying for the overlap.
    pub async fn rotate_keys(&self) -> Result<String> {
        let key = super::keys::SigningKey::generate().map_err(|_| IdentityError::Internal)?;
        self.store.rotate_signing_key(key.kid(), key.pkcs8_der()).await?;
        let kid = key.kid().to_string();
        let overlap_secs = self.keys.overlap().as_secs() as i64;
        let stored = self.store.signing_keys(overlap_secs, None).await?;
        self.install(stored)?;
        tracing::info!(kid = %kid, "signing key rotated");
        Ok(kid)
    }

    /// The store (for the Backend API's plain CRUD).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The signing keys.
    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    /// The configuration.
    pub fn config(&self) -> &IdentityConfig {
        &self.config
    }

    // --- users ---

    /// Creates a user, hashing the password (off the async workers).
    pub async fn create_user(
        &self,
        mut new: super::store::NewUser,
        password: Option<String>,
    ) -> Result<User> {
        let email = new.email.trim().to_string();
        if !plausible_email(&email) {
            return Err(IdentityError::Invalid {
                param: "email_address",
                message: "expected one email address like name@example.com".into(),
            });
        }
        new.email = email;
        for (param, value) in [
            ("public_metadata", &new.public_metadata),
            ("private_metadata", &new.private_metadata),
            ("unsafe_metadata", &new.unsafe_metadata),
        ] {
            if value.as_ref().is_some_and(|v| !v.is_object()) {
                return Err(IdentityError::Invalid {
                    param,
                    message: "expected a JSON object".into(),
                });
            }
        }
        if let Some(password) = password {
            let hashed = password::blocking(move || password::hash(&password))
                .await
                .map_err(|_| IdentityError::Internal)?;
            new.password_hash = Some(hashed.map_err(|e| IdentityError::Invalid {
                param: "password",
                message: e.to_string(),
            })?);
        }
        Ok(self.store.create_user(new).await?)
    }

    // --- clients ---

    /// The client (device) a `__client` cookie value names, if any.
    pub async fn client_for_token(&self, token: &str) -> Result<Option<String>> {
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        Ok(self.store.client_by_token(&sha256(&[token.as_bytes()])).await?)
    }

    /// A new client: its id and the cookie value that names it (shown once,
    /// stored only hashed).
    pub async fn new_client(&self) -> Result<(String, String)> {
        use base64::Engine;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::ids::random_bytes::<32>());
        let id = self.store.create_client(&sha256(&[token.as_bytes()])).await?;
        Ok((id, token))
    }

    // --- sign-in ---

    /// Starts a sign-in on `client_id`; with an identifier and a password the
    /// first factor is attempted at once.
    pub async fn start_sign_in(
        &self,
        client_id: &str,
        identifier: Option<&str>,
        password: Option<String>,
    ) -> Result<SignIn> {
        let identifier = identifier.map(str::trim).filter(|i| !i.is_empty());
        let Some(identifier) = identifier else {
            return Ok(self
                .store
                .create_sign_in(client_id, None, None, "needs_identifier", SIGN_IN_TTL_SECS)
                .await?);
        };
        let user = self.store.user_by_email(identifier).await?;
        let attempt = self
            .store
            .create_sign_in(
                client_id,
                Some(identifier),
                user.as_ref().map(|(u, _)| u.id.as_str()),
                "needs_first_factor",
                SIGN_IN_TTL_SECS,
            )
            .await?;
        match password {
            Some(password) => self.attempt_password(&attempt.id, client_id, password).await,
            None => Ok(attempt),
        }
    }

    /// Gives an identifier to an attempt that had none.
    pub async fn identify(&self, sign_in_id: &str, client_id: &str, identifier: &str) -> Result<SignIn> {
        let attempt = self.attempt(sign_in_id, client_id).await?;
        if status_of(&attempt) != SignInStatus::NeedsIdentifier {
            return Err(IdentityError::WrongStatus(status_of(&attempt).as_str()));
        }
        let identifier = identifier.trim();
        if identifier.is_empty() {
            return Err(IdentityError::Invalid {
                param: "identifier",
                message: "expected an email address".into(),
            });
        }
        let user = self.store.user_by_email(identifier).await?;
        Ok(self
            .store
            .identify_sign_in(&attempt.id, identifier, user.as_ref().map(|(u, _)| u.id.as_str()))
            .await?)
    }

    /// The attempt, if it belongs to `client_id`.
    pub async fn attempt(&self, sign_in_id: &str, client_id: &str) -> Result<SignIn> {
        self.store
            .sign_in(sign_in_id, client_id)
            .await?
            .ok_or(IdentityError::NotFound("sign in"))
    }

    /// The first factor: a password.
    pub async fn attempt_password(
        &self,
        sign_in_id: &str,
        client_id: &str,
        password: String,
    ) -> Result<SignIn> {
        let attempt = self.attempt(sign_in_id, client_id).await?;
        let status = status_of(&attempt);
        if status != SignInStatus::NeedsFirstFactor {
            return Err(IdentityError::WrongStatus(status.as_str()));
        }
        let found = match &attempt.identifier {
            Some(identifier) => self.store.user_by_email(identifier).await?,
            None => None,
        };
        // The user the attempt named must still be the one found now.
        let found = found.filter(|(u, _)| Some(&u.id) == attempt.user_id.as_ref());
        let stored = found.as_ref().and_then(|(_, hash)| hash.clone());
        let ok = password::blocking(move || password::verify(&password, stored.as_deref()))
            .await
            .map_err(|_| IdentityError::Internal)?;
        let Some((user, _)) = found.filter(|_| ok) else {
            let abandon = attempt.password_attempts + 1 >= MAX_PASSWORD_ATTEMPTS;
            self.store.password_failed(&attempt.id, abandon).await?;
            return Err(if abandon {
                IdentityError::TooManyAttempts
            } else {
                IdentityError::PasswordIncorrect
            });
        };
        if user.banned {
            return Err(IdentityError::UserLocked);
        }
        let next = if user.two_factor_enabled {
            SignInStatus::NeedsSecondFactor
        } else if self.config.client_trust && !self.store.is_trusted(client_id, &user.id).await? {
            SignInStatus::NeedsClientTrust
        } else {
            SignInStatus::Complete
        };
        if next == SignInStatus::Complete {
            self.store
                .first_factor_passed(&attempt.id, "needs_first_factor")
                .await?;
            let done = self
                .store
                .complete_sign_in(
                    &attempt.id,
                    "needs_first_factor",
                    None,
                    false,
                    self.config.session_lifetime_secs,
                )
                .await?;
            return done
                .map(|(attempt, _)| attempt)
                .ok_or(IdentityError::WrongStatus("complete"));
        }
        Ok(self.store.first_factor_passed(&attempt.id, next.as_str()).await?)
    }

    /// Sends an email code for a second-factor status (replacing any
    /// pending one). Returns the attempt; the code goes to the outbox.
    pub async fn prepare_email_code(&self, sign_in_id: &str, client_id: &str) -> Result<SignIn> {
        let attempt = self.attempt(sign_in_id, client_id).await?;
        let status = status_of(&attempt);
        if !status.needs_code() {
            return Err(IdentityError::WrongStatus(status.as_str()));
        }
        let user_id = attempt.user_id.as_deref().ok_or(IdentityError::Internal)?;
        let user = self
            .store
            .user(user_id)
            .await?
            .ok_or(IdentityError::NotFound("user"))?;
        let code = new_code();
        let hash = sha256(&[attempt.id.as_bytes(), code.as_bytes()]);
        let attempt = self
            .store
            .set_code(&attempt.id, &hash, self.config.code_ttl_secs)
            .await?;
        if self.config.test_outbox {
            self.store.push_outbox(&user.email, &attempt.id, &code).await?;
        }
        tracing::info!(sign_in = %attempt.id, "email code prepared");
        Ok(attempt)
    }

    /// The second factor (or client trust): the email code. Completes the
    /// attempt and creates the session.
    pub async fn attempt_email_code(&self, sign_in_id: &str, client_id: &str, code: &str) -> Result<SignIn> {
        let attempt = self.attempt(sign_in_id, client_id).await?;
        let status = status_of(&attempt);
        if !status.needs_code() {
            return Err(IdentityError::WrongStatus(status.as_str()));
        }
        let Some(expected) = self.store.pending_code(&attempt.id).await? else {
            return Err(IdentityError::CodeExpired);
        };
        let given = sha256(&[attempt.id.as_bytes(), code.trim().as_bytes()]);
        if aws_lc_rs::constant_time::verify_slices_are_equal(&given, &expected).is_err() {
            let abandon = attempt.code_attempts + 1 >= MAX_CODE_ATTEMPTS;
            self.store.code_failed(&attempt.id, abandon).await?;
            return Err(if abandon {
                IdentityError::TooManyAttempts
            } else {
                IdentityError::CodeIncorrect
            });
        }
        let done = self
            .store
            .complete_sign_in(
                &attempt.id,
                status.as_str(),
                Some(&expected),
                true,
                self.config.session_lifetime_secs,
            )
            .await?;
        // Lost a race with another request using the same code: it is spent.
        done.map(|(attempt, _)| attempt).ok_or(IdentityError::CodeExpired)
    }

    /// The code for the latest sign-in of `email` in the test outbox.
    pub async fn outbox(&self, email: &str) -> Result<Vec<super::store::OutboxMessage>> {
        if !self.config.test_outbox {
            return Err(IdentityError::NotFound("outbox"));
        }
        Ok(self.store.outbox(email).await?)
    }

    // --- sessions ---

    /// An active session; `client_id`, when given, must own it.
    pub async fn active_session(&self, session_id: &str, client_id: Option<&str>) -> Result<Session> {
        let session = self
            .store
            .session(session_id)
            .await?
            .filter(|s| client_id.is_none_or(|c| c == s.client_id))
            .ok_or(IdentityError::NotFound("session"))?;
        if session.status != "active" {
            return Err(IdentityError::SessionNotActive);
        }
        Ok(session)
    }

    /// setActive: makes `organization` (id or slug) the session's active org,
    /// or none (personal account). Only an org the user belongs to; any
    /// other answer is "not found", whether or not the org exists.
    pub async fn set_active_organization(
        &self,
        session_id: &str,
        client_id: Option<&str>,
        organization: Option<&str>,
    ) -> Result<Session> {
        let session = self.active_session(session_id, client_id).await?;
        let org_id = match organization {
            None => None,
            Some(org) => {
                let membership = self
                    .store
                    .membership(org, &session.user_id)
                    .await?
                    .ok_or(IdentityError::NotFound("organization"))?;
                Some(membership.organization.id)
            }
        };
        Ok(self
            .store
            .set_active_organization(&session.id, org_id.as_deref())
            .await?)
    }

    /// The active org's membership of an active session, re-checked now: if
    /// the user was removed, the session drops the org.
    async fn current_membership(&self, session: &Session) -> Result<Option<Membership>> {
        let Some(org_id) = &session.last_active_organization_id else {
            return Ok(None);
        };
        match self.store.membership(org_id, &session.user_id).await? {
            Some(m) => Ok(Some(m)),
            None => {
                tracing::info!(session = %session.id, "active org dropped: no longer a member");
                self.store.set_active_organization(&session.id, None).await?;
                Ok(None)
            }
        }
    }

    async fn token_subject(&self, session_id: &str, client_id: Option<&str>) -> Result<(Session, User)> {
        let session = self.active_session(session_id, client_id).await?;
        let user = self
            .store
            .user(&session.user_id)
            .await?
            .ok_or(IdentityError::SessionNotActive)?;
        if user.banned {
            return Err(IdentityError::UserLocked);
        }
        Ok((session, user))
    }

    /// A session token (v2 claims) for an active session, for `azp`.
    pub async fn session_token(
        &self,
        session_id: &str,
        client_id: Option<&str>,
        azp: Option<&str>,
    ) -> Result<IssuedToken> {
        let (session, _user) = self.token_subject(session_id, client_id).await?;
        let membership = self.current_membership(&session).await?;
        let now = now_secs();
        let mut claims = SessionClaims::session(
            &self.issuer,
            &session.user_id,
            &session.id,
            now,
            self.config.session_token_lifetime_secs,
        );
        claims.fva = Some([
            minutes_since(session.first_factor_at, now),
            session
                .second_factor_at
                .map(|t| minutes_since(t, now))
                .unwrap_or(-1),
        ]);
        if let Some(m) = &membership {
            let token_permissions: Vec<String> = m
                .permissions
                .iter()
                .filter(|p| !p.starts_with("org:sys_"))
                .cloned()
                .collect();
            claims = claims
                .in_org(
                    &m.organization.id,
                    &m.organization.slug,
                    &m.role,
                    &token_permissions,
                )
                .map_err(|e| {
                    tracing::error!(error = %e, role = %m.role, "role permissions cannot be encoded");
                    IdentityError::Internal
                })?;
        }
        if let Some(azp) = azp {
            claims = claims.for_party(azp);
        }
        let jwt = mint(&self.keys.active(), &claims).map_err(|e| {
            tracing::error!(error = %e, "signing a session token failed");
            IdentityError::Internal
        })?;
        Ok(IssuedToken { jwt })
    }

    /// A token from JWT template `name` for an active session.
    pub async fn template_token(
        &self,
        session_id: &str,
        client_id: Option<&str>,
        azp: Option<&str>,
        name: &str,
    ) -> Result<IssuedToken> {
        let stored = self
            .store
            .template(name)
            .await?
            .filter(|t| t.template.name == name)
            .ok_or(IdentityError::NotFound("jwt template"))?;
        let (session, user) = self.token_subject(session_id, client_id).await?;
        let membership = self.current_membership(&session).await?;
        let context = template_context(&user, membership.as_ref(), &session);
        let jwt = stored
            .template
            .mint(
                &self.keys.active(),
                &context,
                &user.id,
                &self.issuer,
                azp,
                now_secs(),
            )
            .map_err(|e| {
                tracing::error!(template = %name, error = %e, "template token could not be made");
                IdentityError::Invalid {
                    param: "template",
                    message: "the template cannot be rendered".into(),
                }
            })?;
        Ok(IssuedToken { jwt })
    }
}

type ParsedKeys = (
    super::keys::SigningKey,
    Vec<(super::keys::SigningKey, std::time::Duration)>,
);

/// The active key and the retired ones (with how long ago they retired).
fn parse_stored_keys(stored: Vec<super::store::StoredKey>) -> Result<ParsedKeys> {
    let mut active = None;
    let mut retired = Vec::new();
    for key in stored {
        let parsed = super::keys::SigningKey::from_pkcs8(key.kid.clone(), &key.pkcs8).map_err(|e| {
            tracing::error!(kid = %key.kid, error = %e, "a stored signing key cannot be loaded");
            IdentityError::Internal
        })?;
        match key.retired_ms_ago {
            None => active = Some(parsed),
            Some(ms) => retired.push((parsed, std::time::Duration::from_millis(ms.max(0) as u64))),
        }
    }
    let active = active.ok_or_else(|| {
        tracing::error!("the identity store has no active signing key");
        IdentityError::Internal
    })?;
    Ok((active, retired))
}

fn create_key() -> Option<(String, Vec<u8>)> {
    let key = super::keys::SigningKey::generate().ok()?;
    Some((key.kid().to_string(), key.pkcs8_der().to_vec()))
}

/// The signing keys as stored (the first key is created if the store has
/// none), as a ring whose retired keys verify for `overlap`.
pub async fn load_key_ring(store: &Store, overlap: std::time::Duration) -> Result<KeyRing> {
    let stored = store
        .signing_keys(overlap.as_secs() as i64, Some(&create_key))
        .await?;
    let (active, retired) = parse_stored_keys(stored)?;
    Ok(KeyRing::from_parts(active, retired, overlap))
}

/// The shortcode context of a template: `user`, `org` (null without an
/// active org) and `session`.
pub fn template_context(user: &User, membership: Option<&Membership>, session: &Session) -> Value {
    let org = membership.map(|m| {
        json!({
            "id": m.organization.id,
            "slug": m.organization.slug,
            "name": m.organization.name,
            "role": m.role,
            "permissions": m.permissions,
            "public_metadata": m.organization.public_metadata,
            "membership_public_metadata": m.public_metadata,
        })
    });
    json!({
        "user": {
            "id": user.id,
            "primary_email_address": user.email,
            "email_verified": true,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "full_name": full_name(user),
            "public_metadata": user.public_metadata,
            "unsafe_metadata": user.unsafe_metadata,
            "two_factor_enabled": user.two_factor_enabled,
            "created_at": user.created_at / 1000,
        },
        "org": org,
        "session": { "id": session.id },
    })
}

fn full_name(user: &User) -> Option<String> {
    let name = [user.first_name.as_deref(), user.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    (!name.is_empty()).then_some(name)
}

fn minutes_since(unix_ms: i64, now_secs: i64) -> i64 {
    ((now_secs - unix_ms / 1000) / 60).max(0)
}

/// The status of an attempt as the enum (an unknown value is treated as abandoned).
pub fn status_of(attempt: &SignIn) -> SignInStatus {
    SignInStatus::parse(&attempt.status).unwrap_or(SignInStatus::Abandoned)
}

/// A cheap shape check: one `@`, something on each side, no spaces.
pub fn plausible_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.contains(char::is_whitespace)
        && !domain.contains('@')
        && s.len() <= 254
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..200 {
            let c = new_code();
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn email_shapes() {
        assert!(plausible_email("a@b.co"));
        for bad in ["", "a", "a@b", "@b.co", "a b@c.de", "a@b@c.de", "a@.de", "a@de."] {
            assert!(!plausible_email(bad), "{bad}");
        }
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            SignInStatus::NeedsIdentifier,
            SignInStatus::NeedsFirstFactor,
            SignInStatus::NeedsSecondFactor,
            SignInStatus::NeedsClientTrust,
            SignInStatus::Complete,
            SignInStatus::Abandoned,
        ] {
            assert_eq!(SignInStatus::parse(s.as_str()), Some(s));
        }
    }
}
