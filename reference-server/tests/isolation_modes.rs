//! `database.isolation`: each mode keeps orgs apart over HTTP on the clean
//! build, and each relies on the layer it says: with the `inject` feature, a
//! flaw in the one remaining layer leaks (`no-rls` and `rls-not-forced` in
//! `rls-only`, `no-app-filter` in `app-filter-only`), while `both` contains
//! each of them.

mod common;

use common::checks::{self, seed};
use common::{TestStack, APP_PASSWORD};
use tenantry_reference::config::Isolation;
use tenantry_reference::db::TENANT_TABLES;
use tenantry_reference::server::{self, StackOptions};

/// A dev-auth stack whose `database.isolation` is `mode`, with `options`' flaws.
async fn stack(mode: Isolation, options: StackOptions) -> TestStack {
    TestStack::with_config(
        StackOptions {
            dev_auth: true,
            ..options
        },
        |config| config.database.isolation = mode,
    )
    .await
}

/// Whether row-level security is enabled on each tenant table.
async fn rls_enabled(stack: &TestStack) -> Vec<(String, bool)> {
    let su = stack.superuser().await;
    let mut out = Vec::new();
    for table in TENANT_TABLES {
        let row = su
            .query_one(
                "SELECT relrowsecurity FROM pg_class WHERE oid = $1::text::regclass",
                &[&format!("app.{table}")],
            )
            .await
            .unwrap();
        out.push((table.to_string(), row.get(0)));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_isolates_on_the_clean_build() {
    for mode in Isolation::ALL {
        let stack = stack(mode, StackOptions::default()).await;
        let world = seed(&stack).await;
        checks::http_isolation(&world)
            .await
            .unwrap_or_else(|e| panic!("database.isolation = {mode}: {e}"));
        for (table, enabled) in rls_enabled(&stack).await {
            assert_eq!(
                enabled,
                mode != Isolation::AppFilterOnly,
                "database.isolation = {mode}: row-level security on app.{table}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rls_only_has_no_app_filter_and_both_has_one() {
    // Switching RLS off on a running stack (the audit's layer ablation) shows
    // which layer isolated: in `rls-only` nothing is left, in `both` the app's
    // filter still holds.
    let stack_rls = stack(Isolation::RlsOnly, StackOptions::default()).await;
    let world = seed(&stack_rls).await;
    let err = checks::wrapper_alone(&stack_rls, &world)
        .await
        .expect_err("rls-only: with RLS switched off, B must see A's data (no app filter)");
    assert!(err.contains("org A data"), "{err}");

    let stack_both = stack(Isolation::Both, StackOptions::default()).await;
    let world = seed(&stack_both).await;
    checks::wrapper_alone(&stack_both, &world).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_in_another_mode_refuses_to_start() {
    let stack = stack(Isolation::AppFilterOnly, StackOptions::default()).await;
    for mode in [Isolation::Both, Isolation::RlsOnly] {
        let mut options = stack.options.clone();
        options.config.database.isolation = mode;
        let err = server::build(&stack.database.url(), APP_PASSWORD, &options)
            .await
            .expect_err("a replica whose mode the database was not prepared for");
        let err = err.to_string();
        assert!(
            err.contains("database.isolation") && err.contains(mode.name()) && err.contains("disabled"),
            "{err}"
        );
    }
    // The mode the database was prepared for starts.
    server::build(&stack.database.url(), APP_PASSWORD, &stack.options)
        .await
        .expect("a replica in the same mode");
}

#[cfg(feature = "inject")]
mod with_flaws {
    use super::*;
    use tenantry_reference::inject::{Flaw, Flaws};

    async fn isolation_with(mode: Isolation, flaw: Flaw) -> Result<(), String> {
        let stack = stack(
            mode,
            StackOptions {
                flaws: Flaws::of(&[flaw]),
                ..StackOptions::default()
            },
        )
        .await;
        let world = seed(&stack).await;
        checks::http_isolation(&world).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rls_flaws_leak_over_http_in_rls_only() {
        for flaw in [Flaw::NoRls, Flaw::RlsNotForced] {
            let err = isolation_with(Isolation::RlsOnly, flaw)
                .await
                .expect_err(&format!("{flaw} in rls-only must leak over HTTP"));
            assert!(err.contains("org A data"), "{flaw}: {err}");
            // Defence in depth: the app filter contains it.
            isolation_with(Isolation::Both, flaw)
                .await
                .unwrap_or_else(|e| panic!("{flaw} in both: {e}"));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_app_filter_leaks_over_http_in_app_filter_only() {
        let err = isolation_with(Isolation::AppFilterOnly, Flaw::NoAppFilter)
            .await
            .expect_err("no-app-filter in app-filter-only must leak over HTTP");
        assert!(err.contains("org A data"), "{err}");
        // Defence in depth: RLS contains it.
        isolation_with(Isolation::Both, Flaw::NoAppFilter).await.unwrap();
    }
}
