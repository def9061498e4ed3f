//! The identity side of the reference stack (Clerk-compatible): signing keys
//! and JWKS, v2 session tokens, the v2 permission encoding, JWT templates,
//! password hashing, the identity store and the service that makes the
//! decisions. The Backend and Frontend APIs ([`crate::clerk_api`]) and the
//! proxy build on these.

pub mod keys;
pub mod password;
pub mod permissions;
pub mod service;
pub mod store;
pub mod template;
pub mod token;
