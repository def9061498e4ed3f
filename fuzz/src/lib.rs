//! Test support for the fuzz targets: the fixed test key and verifier, and
//! the small reference models the targets compare the library against. The
//! models are written from the documented rules, not from the code under
//! test, so a disagreement is a finding in one or the other.
#![forbid(unsafe_code)]

pub mod limiter;
pub mod mutate;
pub mod org;
pub mod state;
pub mod token;
