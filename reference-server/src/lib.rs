//! tenantry-reference: the reference stack that tenantry attacks.
//!
//! A production-grade implementation of the org-scoped SaaS architecture:
//! every request carries a [`tenant::Tenant`] (org, user, role), handlers reach
//! tenant data only through [`tenant_db::TenantDb`], which opens one
//! transaction per request with the org set transaction-locally and injects
//! the org predicate into every statement, and Postgres row-level security
//! confines the app role to that org even where the application forgets.
//!
//! The data flows one way: [`proxy`] (session token, active org, org guard)
//! -> handler -> `TenantDb` -> Postgres. [`dev_auth`] stands in for the proxy
//! in tests and in `serve --dev-auth`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// `flaw!(flaws, Name)` is `true` when the named flaw is injected. Without
/// the `inject` feature it is the literal `false` and `flaws` is not
/// evaluated, so no flaw state exists in such a build.
macro_rules! flaw {
    ($flaws:expr, $name:ident) => {{
        #[cfg(feature = "inject")]
        {
            $flaws.has($crate::inject::Flaw::$name)
        }
        #[cfg(not(feature = "inject"))]
        {
            false
        }
    }};
}

pub mod api;
pub mod app_auth;
pub mod cache;
pub mod circuit;
pub mod clerk_api;
pub mod config;
pub mod conn;
pub mod db;
pub mod dev_auth;
pub mod identity;
pub mod ids;
#[cfg(feature = "inject")]
pub mod inject;
pub mod jobs;
pub mod metrics;
pub mod oauth;
pub mod pool_probe;
pub mod problem;
pub mod proxy;
pub mod ratelimit;
pub mod server;
pub mod tenant;
pub mod tenant_db;
pub mod wire;
