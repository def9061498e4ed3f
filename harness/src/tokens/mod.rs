//! The TOK family (CWE-347, CWE-345): session token attacks.
//!
//! Given one valid session token of the target (a Clerk v2 session JWT,
//! RS256) and its public JWKS, [`catalogue::build`] makes every attack token
//! of TOK-001..025, each labelled with its check id and variant; [`run`]
//! sends each on an org-scoped probe request and judges the answer
//! (refused: pass; accepted or 5xx: a finding, with the redacted exchange as
//! evidence); [`audit`] does it all from a profile and a session source and
//! returns the audit's [`Report`](crate::audit::Report).
//!
//! Cases that need a valid signature over chosen claims (expired, foreign
//! issuer, no `sid`, `azp` missing, …) are built only when the harness holds
//! the target's signing key: the `mint` source, or [`AuditOptions`] with the
//! operator's key. Without it those checks rest on cases that keep the
//! original signature (they prove the signature covers the claims) and on
//! tokens the identity service itself issues that must not work as this
//! app's session tokens: a Backend API token (no `azp`, TOK-020), a token
//! issued to another origin (TOK-024), a JWT-template token (TOK-018).
//! An expired validly signed token cannot be had without the key except by
//! waiting out the token lifetime, which the suite never does.

pub mod catalogue;
pub mod jwt;
pub mod keys;
pub mod listener;
mod runner;
pub(crate) use runner::{jwks, now_secs};

pub use catalogue::{Case, Delivery, Judge};
pub use keys::{AttackerKeys, RsaKey};
pub use runner::{
    adopt_signing_key, audit, audit_with, run, selects_any, AuditOptions, Outcome, SuiteError, SuiteReport,
    TokenTarget, Verdict,
};
