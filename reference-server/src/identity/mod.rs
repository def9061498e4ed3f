//! The identity side of the reference stack (Clerk-compatible): signing keys
//! and JWKS, v2 session tokens, and the v2 permission encoding. The identity
//! store, Backend/Frontend APIs and the proxy build on these.

pub mod keys;
pub mod permissions;
pub mod token;
