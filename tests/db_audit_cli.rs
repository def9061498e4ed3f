//! `tenantry db-audit` end to end against a real Postgres with the reference
//! schema: exit 0 on the clean schema, 1 with a finding, 2 when it cannot run
//! (a malformed or unreachable URL, named in the error, password redacted).

use std::process::{Command, Output};
use std::sync::Arc;

use tenantry_harness::services::{Database, Postgres};
use tenantry_reference::db;

const APP_PASSWORD: &str = "tenantry-db-audit-cli-password";

fn tenantry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tenantry"))
}

/// A Postgres of this process's own, a migrated database, and a runtime to
/// talk to it.
struct Fixture {
    database: Database,
    runtime: tokio::runtime::Runtime,
    _pg: Arc<Postgres>,
}

impl Fixture {
    fn new() -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (pg, database) = runtime.block_on(async {
            let pg = Postgres::shared()
                .await
                .expect("an ephemeral Postgres (see the services module docs)");
            let database = pg.create_database().await.expect("a database");
            db::migrate(&database.url(), APP_PASSWORD)
                .await
                .expect("the reference schema");
            (pg, database)
        });
        Self {
            database,
            runtime,
            _pg: pg,
        }
    }

    fn app_url(&self) -> String {
        self.database.url_as(db::APP_ROLE, APP_PASSWORD)
    }

    fn as_superuser(&self, sql: &str) {
        let url = self.database.url();
        self.runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            let driver = tokio::spawn(connection);
            client.batch_execute(sql).await.unwrap();
            drop(client);
            let _ = driver.await;
        });
    }
}

fn db_audit(args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = tenantry().arg("db-audit").args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    assert!(
        !stdout.contains(APP_PASSWORD) && !stderr.contains(APP_PASSWORD),
        "the password leaked:\n{stdout}\n{stderr}"
    );
    (status.code().unwrap_or(-1), stdout, stderr)
}

#[test]
fn the_clean_reference_schema_exits_0_with_a_json_report() {
    let fixture = Fixture::new();
    let json = std::env::temp_dir().join(format!("tenantry-db-audit-{}.json", std::process::id()));
    let (code, stdout, stderr) = db_audit(&[
        "--database-url",
        &fixture.app_url(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("RLS          10         0"), "{stdout}");
    assert!(!stdout.contains("FINDING RLS"), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    assert_eq!(report["schema"], "tenantry.audit/1");
    assert_eq!(report["checks_run"].as_array().unwrap().len(), 10, "{report}");
    assert_eq!(report["findings"], serde_json::json!([]), "{report}");
    assert!(report["target"].as_str().unwrap().contains(":***@"), "{report}");
}

#[test]
fn a_table_without_forced_rls_exits_1_naming_the_check() {
    let fixture = Fixture::new();
    fixture.as_superuser("ALTER TABLE app.projects NO FORCE ROW LEVEL SECURITY");
    let (code, stdout, stderr) = db_audit(&["--database-url", &fixture.app_url(), "--checks", "RLS-002"]);
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains(
            "FINDING RLS-002 [critical] catalog: app.projects enables but does not FORCE row level security"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("RLS           1         1"), "{stdout}");
}

#[test]
fn a_malformed_url_exits_2_naming_the_option() {
    let (code, stdout, stderr) = db_audit(&[
        "--database-url",
        &format!("postgres://tenantry_app:{APP_PASSWORD}@127.0.0.1:notaport/db"),
    ]);
    assert_eq!(code, 2, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr.contains("error: --database-url is not a valid PostgreSQL URL"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_database_exits_2_with_the_password_redacted() {
    // Port 1 on loopback: nothing listens there.
    let (code, stdout, stderr) = db_audit(&[
        "--database-url",
        &format!("postgres://tenantry_app:{APP_PASSWORD}@127.0.0.1:1/db"),
    ]);
    assert_eq!(code, 2, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr
            .contains("error: --database-url: cannot connect to postgres://tenantry_app:***@127.0.0.1:1/db"),
        "{stderr}"
    );
}

#[test]
fn a_selection_without_database_checks_exits_2() {
    let (code, _, stderr) = db_audit(&["--database-url", "postgres://app@127.0.0.1/db", "--checks", "ISO"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--checks selects none of the database checks"),
        "{stderr}"
    );
}
