//! The identity side of the reference stack (Clerk-compatible): signing keys
//! and JWKS, v2 session tokens, the v2 permission encoding, and JWT templates. The identity
//! store, Backend/Frontend APIs and the proxy build on these.

pub mod keys;
pub mod permissions;
pub mod template;
pub mod token;
