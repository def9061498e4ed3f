//! The database audit (RLS-001..010) against a real Postgres with the
//! reference schema: the clean schema yields no finding; each RLS flaw of
//! the corpus is caught by the check meant for it; the audit leaves no row
//! behind.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::future::BoxFuture;
use tenantry_harness::audit::Report;
use tenantry_harness::checks::Selection;
use tenantry_harness::dbaudit::{self, AppPool, DbAuditConfig, Ending};
use tenantry_reference::config::Config;
use tenantry_reference::db;
use tenantry_reference::pool_probe::PoolProbe;
use tenantry_reference::server::StackOptions;

use common::APP_PASSWORD;

/// The reference app's own pool and `TenantDb` code path, one connection,
/// so the connection inspected is the one the request used.
struct ReferenceApp(PoolProbe);

impl ReferenceApp {
    fn new(database_url: &str, #[cfg(feature = "inject")] flaws: tenantry_reference::inject::Flaws) -> Self {
        #[cfg_attr(not(feature = "inject"), allow(unused_mut))]
        let mut options = StackOptions::new(Config::default(), false);
        #[cfg(feature = "inject")]
        {
            options.flaws = flaws;
        }
        Self(PoolProbe::new(database_url, APP_PASSWORD, &options).expect("the app pool"))
    }
}

impl AppPool for ReferenceApp {
    fn serve<'a>(&'a self, org: &'a str, ending: Ending) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.0.serve(org, matches!(ending, Ending::Rollback)))
    }

    fn next_connection<'a>(
        &'a self,
        sql: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Vec<Option<String>>>, String>> {
        Box::pin(self.0.next_connection(sql))
    }
}

fn all_rls() -> Selection {
    Selection::parse("RLS", None).unwrap()
}

async fn run_audit(config: &DbAuditConfig) -> Report {
    // The audit's warnings (tables it could not seed) show in failures.
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let report = dbaudit::audit(config, &all_rls())
        .await
        .unwrap_or_else(|e| panic!("the database audit could not run: {e}"));
    assert_eq!(
        report.checks_run,
        dbaudit::CHECK_IDS.to_vec(),
        "every database check runs"
    );
    report
}

fn ids(report: &Report) -> BTreeSet<&'static str> {
    report.findings.iter().map(|f| f.check.id).collect()
}

fn listing(report: &Report) -> String {
    report
        .findings
        .iter()
        .map(|f| format!("{} {}\n    {}", f.check.id, f.message, f.evidence.join("\n    ")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The audit deletes what it seeds: the tenant tables are as empty as the
/// fresh database was.
async fn assert_no_rows_left(superuser_url: &str) {
    let client = common::connect(superuser_url).await;
    for table in db::TENANT_TABLES {
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM app.{table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "the audit left {n} rows in app.{table}");
    }
}

/// Nothing in a report may carry the app role's password.
fn assert_no_password(report: &Report) {
    let text = report.to_json().to_string();
    assert!(
        !text.contains(APP_PASSWORD),
        "the report carries the password: {text}"
    );
    assert!(report.target.contains("***"), "{}", report.target);
}

#[tokio::test]
async fn the_clean_reference_schema_has_no_findings() {
    let database = common::database().await;
    let url = database.url_as(db::APP_ROLE, APP_PASSWORD);
    // The app's own code path too: its context must not survive the request.
    let mut config = DbAuditConfig::new(&url);
    config.app_pool = Some(Arc::new(ReferenceApp::new(
        &database.url(),
        #[cfg(feature = "inject")]
        tenantry_reference::inject::Flaws::none(),
    )));
    let report = run_audit(&config).await;
    assert!(
        report.findings.is_empty(),
        "findings on the clean schema:\n{}",
        listing(&report)
    );
    assert!(
        report.requests > 50,
        "the probes ran ({} statements)",
        report.requests
    );
    assert_no_password(&report);
    assert_no_rows_left(&database.url()).await;
}

#[tokio::test]
async fn a_session_scoped_setting_is_seen_through_the_context_statement() {
    // Told that the app sets the context with session scope, the SQL probes
    // alone see it outlive the transaction.
    let database = common::database().await;
    let mut config = DbAuditConfig::new(database.url_as(db::APP_ROLE, APP_PASSWORD));
    config.context_statement = Some("SELECT set_config('app.org_id', $1, false)".into());
    let report = run_audit(&config).await;
    assert_eq!(ids(&report), BTreeSet::from(["RLS-005"]), "{}", listing(&report));
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.message.contains("after a commit")),
        "{}",
        listing(&report)
    );
    assert_no_rows_left(&database.url()).await;
}

#[tokio::test]
async fn catalog_mistakes_made_by_hand_are_caught() {
    let database = common::database().await;
    let admin = common::connect(&database.url()).await;
    admin
        .batch_execute(&format!(
            "CREATE VIEW app.all_projects AS SELECT * FROM app.projects;
             CREATE MATERIALIZED VIEW app.project_counts AS
                 SELECT organization_id, count(*) FROM app.projects GROUP BY 1;
             CREATE FUNCTION app.peek() RETURNS bigint LANGUAGE sql SECURITY DEFINER
                 AS 'SELECT count(*) FROM app.projects';
             CREATE UNIQUE INDEX exports_requested_by ON app.exports (requested_by);
             CREATE UNIQUE INDEX projects_id ON app.projects (id);
             ALTER TABLE app.documents ADD CONSTRAINT documents_project_any_org
                 FOREIGN KEY (project_id) REFERENCES app.projects (id);
             GRANT TRUNCATE ON app.integrations TO {app};
             ALTER ROLE {app} IN DATABASE \"{db}\" SET app.org_id = 'org_default';
             -- Harmless: the restrictive org policy still holds.
             CREATE POLICY projects_extra ON app.projects AS PERMISSIVE FOR SELECT TO {app} USING (true);",
            app = db::APP_ROLE,
            db = database.name()
        ))
        .await
        .unwrap();
    let report = run_audit(&DbAuditConfig::new(database.url_as(db::APP_ROLE, APP_PASSWORD))).await;
    let has = |id: &str, needle: &str| {
        report
            .findings
            .iter()
            .any(|f| f.check.id == id && f.message.contains(needle))
    };
    for (id, needle) in [
        ("RLS-007", "unique index app.exports_requested_by"),
        ("RLS-007", "unique index app.projects_id"),
        ("RLS-007", "foreign key documents_project_any_org"),
        (
            "RLS-008",
            "view app.all_projects over tenant table app.projects is not security_invoker",
        ),
        ("RLS-008", "materialized view app.project_counts"),
        ("RLS-008", "function app.peek()"),
        ("RLS-009", "may TRUNCATE app.integrations"),
        (
            "RLS-004",
            "a fresh connection of role tenantry_app already carries app.org_id = `org_default`",
        ),
        (
            "RLS-005",
            "after a commit, the connection still carries app.org_id = `org_default`",
        ),
    ] {
        assert!(has(id, needle), "{id} {needle}:\n{}", listing(&report));
    }
    assert_eq!(
        ids(&report),
        BTreeSet::from(["RLS-004", "RLS-005", "RLS-007", "RLS-008", "RLS-009"]),
        "{}",
        listing(&report)
    );
    assert_no_rows_left(&database.url()).await;
}

#[tokio::test]
async fn a_bad_tenant_setting_name_is_refused() {
    let mut config = DbAuditConfig::new("postgres://app:pw@127.0.0.1:1/db");
    config.tenant_setting = "org_id'; DROP".into();
    let err = dbaudit::audit(&config, &all_rls()).await.unwrap_err();
    assert!(matches!(err, dbaudit::DbAuditError::BadSetting(_)), "{err}");
}

#[cfg(feature = "inject")]
mod flaws {
    use super::*;
    use tenantry_reference::inject::{Flaw, Flaws};

    /// A migrated database with `flaw`'s schema changes, and the URL of the
    /// role the server would connect as.
    async fn flawed(flaw: Flaw) -> (tenantry_harness::services::Database, String, Flaws) {
        let database = common::database().await;
        let flaws = Flaws::of(&[flaw]);
        db::inject_schema_flaws(&database.url(), APP_PASSWORD, &flaws)
            .await
            .expect("the flaw's schema changes");
        let url = database.url_as(db::serving_role(&flaws), APP_PASSWORD);
        (database, url, flaws)
    }

    fn has(report: &Report, id: &str, needle: &str) -> bool {
        report
            .findings
            .iter()
            .any(|f| f.check.id == id && f.message.contains(needle))
    }

    #[tokio::test]
    async fn rls_not_forced_is_caught_by_role_posture_and_the_catalog() {
        let (database, url, _) = flawed(Flaw::RlsNotForced).await;
        let report = run_audit(&DbAuditConfig::new(url)).await;
        for table in db::TENANT_TABLES {
            assert!(
                has(&report, "RLS-001", &format!("owns app.{table}")),
                "RLS-001 names app.{table}:\n{}",
                listing(&report)
            );
            assert!(
                has(
                    &report,
                    "RLS-002",
                    &format!("app.{table} enables but does not FORCE")
                ),
                "RLS-002 names app.{table}:\n{}",
                listing(&report)
            );
        }
        // Served as the owner, org A reads B's rows, no context reads
        // everything, and row_security = off changes nothing.
        assert!(has(&report, "RLS-003", "rows of org B"), "{}", listing(&report));
        assert!(
            has(&report, "RLS-004", "with no app.org_id set"),
            "{}",
            listing(&report)
        );
        assert!(
            has(&report, "RLS-009", "row_security = off"),
            "{}",
            listing(&report)
        );
        // The policies themselves are intact: restrictive, on every command.
        assert!(
            !report
                .findings
                .iter()
                .any(|f| f.check.id == "RLS-010" && f.message.contains("app.")),
            "{}",
            listing(&report)
        );
        assert_no_password(&report);
        assert_no_rows_left(&database.url()).await;
    }

    #[tokio::test]
    async fn no_rls_is_caught_by_the_data_probes_and_the_policy_kinds() {
        let (database, url, _) = flawed(Flaw::NoRls).await;
        let report = run_audit(&DbAuditConfig::new(url)).await;
        for table in db::TENANT_TABLES {
            let t = format!("app.{table}");
            assert!(
                has(&report, "RLS-002", &format!("no policy on {t} confines")),
                "{}",
                listing(&report)
            );
            assert!(
                has(&report, "RLS-010", &format!("no RESTRICTIVE policy on {t}")),
                "{}",
                listing(&report)
            );
            assert!(
                has(&report, "RLS-003", &format!("SELECT on {t} returns")),
                "{}",
                listing(&report)
            );
            assert!(
                has(&report, "RLS-004", &format!("SELECT on {t} returns")),
                "{}",
                listing(&report)
            );
            assert!(
                has(&report, "RLS-006", &format!("DELETE of org B's rows of {t}")),
                "{}",
                listing(&report)
            );
        }
        assert!(
            has(&report, "RLS-006", "INSERT of a row of org B"),
            "{}",
            listing(&report)
        );
        // The role and table settings are untouched by this flaw.
        let found = ids(&report);
        assert!(
            !found.contains("RLS-001") && !found.contains("RLS-009"),
            "{}",
            listing(&report)
        );
        assert_no_rows_left(&database.url()).await;
    }

    #[tokio::test]
    async fn session_scoped_context_is_caught_on_the_apps_pooled_connection() {
        let (database, url, flaws) = flawed(Flaw::SessionScopedContext).await;
        // The flaw lives in the app's code, not in the database: the SQL
        // probes alone (which set the context the right way) cannot see it.
        let sql_only = run_audit(&DbAuditConfig::new(&url)).await;
        assert!(sql_only.findings.is_empty(), "{}", listing(&sql_only));
        // Through the app's own TenantDb and pool, it is caught.
        let mut config = DbAuditConfig::new(&url);
        config.app_pool = Some(Arc::new(ReferenceApp::new(&database.url(), flaws)));
        let report = run_audit(&config).await;
        assert_eq!(ids(&report), BTreeSet::from(["RLS-005"]), "{}", listing(&report));
        assert!(
            has(&report, "RLS-005", "the app sets the context session-scoped"),
            "{}",
            listing(&report)
        );
        assert!(
            has(
                &report,
                "RLS-005",
                "sees 1 of org A's rows in app.projects without setting any org"
            ),
            "{}",
            listing(&report)
        );
        assert_no_rows_left(&database.url()).await;
    }
}
