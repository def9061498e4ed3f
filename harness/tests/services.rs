//! The services module against the real thing: local Postgres and Redis
//! servers started, used, stopped and cleaned up.

use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tenantry_harness::services::{Postgres, Redis, Source};
use tokio_postgres::NoTls;

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

#[tokio::test]
async fn each_database_is_fresh_and_is_dropped_with_its_handle() {
    let pg = Postgres::shared().await.unwrap();
    let one = pg.create_database().await.unwrap();
    let two = pg.create_database().await.unwrap();
    assert_ne!(one.name(), two.name());
    connect(&one.url())
        .await
        .batch_execute("CREATE TABLE t (x int)")
        .await
        .unwrap();
    let absent = connect(&two.url())
        .await
        .query_opt("SELECT 1 FROM pg_class WHERE relname = 't'", &[])
        .await
        .unwrap();
    assert!(absent.is_none(), "a table of one database shows in another");
    let name = one.name().to_string();
    drop(one);
    let admin = connect(&pg.url("postgres")).await;
    let left = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap();
    assert!(left.is_none(), "database {name} outlived its handle");
}

#[tokio::test]
async fn a_template_is_initialised_once_and_cloned_per_database() {
    let pg = Postgres::shared().await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let template = format!("tpl_test_{}", std::process::id());
    let mut names = Vec::new();
    let mut keep = Vec::new();
    for _ in 0..3 {
        let runs = Arc::clone(&runs);
        let db = pg
            .database_from_template(&template, |url| async move {
                runs.fetch_add(1, Ordering::SeqCst);
                connect(&url)
                    .await
                    .batch_execute("CREATE TABLE seeded (x int); INSERT INTO seeded VALUES (42)")
                    .await
            })
            .await
            .unwrap();
        let x: i32 = connect(&db.url())
            .await
            .query_one("SELECT x FROM seeded", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(x, 42);
        names.push(db.name().to_string());
        keep.push(db);
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the initialiser ran more than once"
    );
    names.dedup();
    assert_eq!(names.len(), 3);
}

#[tokio::test]
async fn a_failing_template_initialiser_is_reported_and_leaves_nothing() {
    let pg = Postgres::shared().await.unwrap();
    let template = format!("tpl_fail_{}", std::process::id());
    let err = pg
        .database_from_template(&template, |_url| async { Err::<(), _>("seed data missing") })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("seed data missing"), "{err}");
    let admin = connect(&pg.url("postgres")).await;
    let left = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&template])
        .await
        .unwrap();
    assert!(left.is_none());
}

#[tokio::test]
async fn a_bad_template_name_is_refused() {
    let pg = Postgres::shared().await.unwrap();
    let err = pg
        .database_from_template("Bad-Name\"; DROP", |_url| async { Ok::<(), String>(()) })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("[a-z0-9_]"), "{err}");
}

#[tokio::test]
async fn local_postgres_runs_unprivileged_and_stops_on_drop() {
    let pg = Postgres::start().await.unwrap();
    assert!(matches!(pg.source(), Source::Local { .. }), "{:?}", pg.source());
    let port = pg.port();
    let admin = connect(&pg.url("postgres")).await;
    let superuser: bool = admin
        .query_one("SELECT rolsuper FROM pg_roles WHERE rolname = current_user", &[])
        .await
        .unwrap()
        .get(0);
    assert!(superuser);
    // The redacted URL never shows the password.
    assert!(pg.redacted_url("postgres").contains(":***@"));
    drop(admin);
    drop(pg);
    assert!(!port_open(port), "postgres still listens on {port} after drop");
}

#[test]
fn a_panicking_test_still_stops_its_server() {
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let pg = Postgres::start().await.unwrap();
            tx.send(pg.port()).unwrap();
            panic!("the test failed while holding the server");
        })
    })
    .join();
    assert!(outcome.is_err(), "the thread panicked");
    let port = rx.recv().unwrap();
    assert!(
        !port_open(port),
        "postgres still listens on {port} after the panic"
    );
}

#[tokio::test]
async fn attaching_to_a_url_uses_that_server() {
    let pg = Postgres::shared().await.unwrap();
    let attached = Postgres::attach(&pg.url("postgres")).await.unwrap();
    assert_eq!(attached.source(), &Source::Environment);
    assert_eq!(attached.version(), pg.version());
    let err = Postgres::attach("not a url").await.unwrap_err().to_string();
    assert!(err.contains("not a valid Postgres URL"), "{err}");
}

#[tokio::test]
async fn redis_starts_stops_and_restarts_on_the_same_port() {
    let redis = Redis::start()
        .await
        .expect("redis-server (scripts/test installs it)");
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
    redis.stop().unwrap();
    assert!(!redis.running());
    assert!(client.get_multiplexed_async_connection().await.is_err());
    redis.restart().unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
}

/// The kernel's ephemeral range, as the services module reads it.
fn ephemeral_range() -> (u16, u16) {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarts_on_its_port_while_clients_storm_it() {
    let pg = Arc::new(Postgres::start().await.unwrap());
    let port = pg.port();
    let (low, high) = ephemeral_range();
    assert!(
        !(low..=high).contains(&port),
        "port {port} lies in the ephemeral range {low}..={high}: a client's reconnect could self-connect to it"
    );
    let admin = connect(&pg.url("postgres")).await;
    admin
        // The cluster runs with synchronous_commit off; this commit must be
        // written out before the crash-like stop.
        .batch_execute("SET synchronous_commit = on; CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
        .await
        .unwrap();
    drop(admin);
    // Clients reconnecting as fast as they can while the server is down:
    // the storm that, with the port in the ephemeral range, ends in a TCP
    // self-connect that holds the port.
    let storming = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let attempts = Arc::new(AtomicUsize::new(0));
    let stormers: Vec<_> = (0..4)
        .map(|_| {
            let storming = Arc::clone(&storming);
            let attempts = Arc::clone(&attempts);
            std::thread::spawn(move || {
                let mut held = Vec::new();
                while storming.load(Ordering::Relaxed) {
                    attempts.fetch_add(1, Ordering::Relaxed);
                    if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
                        held.push(stream);
                        held.truncate(8);
                    }
                }
            })
        })
        .collect();
    for round in 0..3 {
        let pg2 = Arc::clone(&pg);
        tokio::task::spawn_blocking(move || pg2.stop())
            .await
            .unwrap()
            .unwrap();
        assert!(!pg.running());
        let before = attempts.load(Ordering::Relaxed);
        while attempts.load(Ordering::Relaxed) < before + 2_000 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let pg2 = Arc::clone(&pg);
        tokio::task::spawn_blocking(move || pg2.restart())
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("round {round}: postgres did not start again on port {port}: {e}"));
        assert!(pg.running());
        assert_eq!(pg.port(), port);
        let client = connect(&pg.url("postgres")).await;
        let n: i32 = client.query_one("SELECT n FROM kept", &[]).await.unwrap().get(0);
        assert_eq!(n, 7, "round {round}: the data survived the restart");
    }
    storming.store(false, Ordering::Relaxed);
    for stormer in stormers {
        stormer.join().unwrap();
    }
}
