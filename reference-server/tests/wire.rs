//! The pipelining connection against a real Postgres: one Sync per
//! pipeline, errors skip the rest, and a connection whose state is unknown
//! or inside a transaction is never reused.

mod common;

use std::time::Duration;

use serde_json::json;
use tenantry_reference::wire::{
    Connection, Statement, StatementError, TxStatus, Value, WireConfig, WireError,
};

async fn connect() -> (tenantry_harness::services::Database, Connection) {
    let database = common::database().await;
    let config = WireConfig::from_url(&database.url(), "tenantry_app", common::APP_PASSWORD).unwrap();
    let conn = Connection::connect(&config)
        .await
        .expect("SCRAM login as the app role");
    (database, conn)
}

#[tokio::test]
async fn values_round_trip_in_binary() {
    let (_db, mut conn) = connect().await;
    let params = [
        Value::Text("héllo".into()),
        Value::Int(-42),
        Value::Json(json!({ "a": [1, 2] })),
        Value::Bytes(vec![0, 255]),
        Value::Null,
    ];
    let rows = conn
        .query(
            "SELECT $1::text AS t, $2::int8 AS n, $3::jsonb AS j, $4::bytea AS b, $5::text AS z",
            &params,
        )
        .await
        .unwrap()
        .unwrap();
    let row = &rows[0];
    assert_eq!(row.get::<_, String>("t"), "héllo");
    assert_eq!(row.get::<_, i64>("n"), -42);
    assert_eq!(row.get::<_, serde_json::Value>("j"), json!({ "a": [1, 2] }));
    assert_eq!(row.get::<_, Vec<u8>>("b"), vec![0, 255]);
    assert_eq!(row.get::<_, Option<String>>("z"), None);
    assert!(
        row.try_get::<_, i64>("t").is_err(),
        "a type mismatch is an error, not garbage"
    );
    assert!(row.try_get::<_, String>("missing").is_err());
}

#[tokio::test]
async fn an_error_skips_the_rest_and_rolls_back_the_implicit_transaction() {
    let (_db, mut conn) = connect().await;
    let results = conn
        .pipeline(&[
            Statement::plain("SELECT 1"),
            Statement::plain("SELECT 1/0"),
            Statement::plain("SELECT 2"),
        ])
        .await
        .unwrap();
    assert!(results[0].is_ok());
    match &results[1] {
        Err(StatementError::Server(e)) => assert_eq!(e.code, "22012"),
        other => panic!("expected division_by_zero, got {other:?}"),
    }
    assert!(matches!(results[2], Err(StatementError::Skipped)));
    assert_eq!(conn.status(), TxStatus::Idle);
    assert!(conn.is_reusable());
    // Statements after a failure still work, including cached ones.
    assert!(conn.query("SELECT 1", &[]).await.unwrap().is_ok());
}

#[tokio::test]
async fn a_failed_or_open_transaction_is_not_reusable() {
    let (_db, mut conn) = connect().await;
    conn.pipeline(&[
        Statement::plain("BEGIN"),
        Statement::plain("SELECT 1/0"),
        Statement::plain("COMMIT"),
    ])
    .await
    .unwrap();
    assert_eq!(conn.status(), TxStatus::Failed);
    assert!(!conn.is_reusable());
    conn.query("ROLLBACK", &[]).await.unwrap().unwrap();
    assert!(conn.is_reusable());
    conn.query("BEGIN", &[]).await.unwrap().unwrap();
    assert_eq!(conn.status(), TxStatus::InTransaction);
    assert!(!conn.is_reusable());
}

#[tokio::test]
async fn a_cancelled_pipeline_leaves_the_connection_unusable() {
    let (_db, mut conn) = connect().await;
    let slow = conn.query("SELECT pg_sleep(2)", &[]);
    assert!(tokio::time::timeout(Duration::from_millis(100), slow)
        .await
        .is_err());
    assert!(!conn.is_reusable(), "state unknown after a dropped pipeline");
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_the_server_reason() {
    let database = common::database().await;
    let config = WireConfig::from_url(&database.url(), "tenantry_app", "not-the-password").unwrap();
    match Connection::connect(&config).await {
        Err(WireError::Refused(e)) => assert_eq!(e.code, "28P01"),
        other => panic!("expected an authentication failure, got {other:?}"),
    }
}

#[tokio::test]
async fn the_whole_pipeline_is_one_implicit_transaction() {
    let (_db, mut conn) = connect().await;
    let org = [Value::Text("org_pipe".into())];
    let results = conn
        .pipeline(&[
            Statement {
                sql: "SELECT set_config('app.org_id', $1, true)",
                params: &org,
            },
            Statement::plain("SELECT current_setting('app.org_id', true) AS org"),
        ])
        .await
        .unwrap();
    let rows = results[1].as_ref().unwrap();
    assert_eq!(
        rows[0].get::<_, String>("org"),
        "org_pipe",
        "context visible within the pipeline"
    );
    let after = conn
        .query(
            "SELECT coalesce(current_setting('app.org_id', true), '') AS org",
            &[],
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        after[0].get::<_, String>("org"),
        "",
        "context gone after the Sync"
    );
}
