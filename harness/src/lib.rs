//! tenantry-harness: the target-agnostic half of tenantry.
//!
//! It speaks HTTP (and, for the database audit, SQL) to a *target* and never
//! depends on the reference server. So far: the ephemeral services
//! ([`services`]) that tests, benches and the CLI use to get a real Postgres
//! and a real Redis in seconds; the check catalogue ([`checks`]); and the
//! canary leak oracle ([`oracle`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod bench;
pub mod campaign;
pub mod checks;
pub mod client;
pub mod dbaudit;
pub mod fuzz;
pub mod limits;
pub mod oauth_suite;
pub mod oracle;
pub mod profile;
pub mod provision;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod services;
pub mod session;
pub mod signin;
pub mod template;
pub mod tokens;
pub mod world;
