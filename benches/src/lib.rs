//! tenantry-benches: criterion benches (in `benches/`) and peer comparisons.
//! The library itself is empty; see `benches/README.md`.
#![forbid(unsafe_code)]
