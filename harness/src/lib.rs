//! tenantry-harness: the target-agnostic half of tenantry.
//!
//! It speaks HTTP (and, for the database audit, SQL) to a *target* and never
//! depends on the reference server. This first slice provides the ephemeral
//! services ([`services`]) that tests, benches and the CLI use to get a real
//! Postgres and a real Redis in seconds.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod services;
