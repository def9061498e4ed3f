//! The durable export queue: exports queued when the process died complete
//! after a restart, stale claims are taken over, and the queue never hands
//! a worker another org's data.

mod common;

use std::time::Duration;

use common::{connect, database, APP_PASSWORD};
use serde_json::{json, Value};
use tenantry_harness::services::Database;
use tenantry_reference::config::Config;
use tenantry_reference::server::{self, StackOptions};

fn options() -> StackOptions {
    let mut config = Config::default();
    config.exports.workers = 2;
    config.exports.lease_ms = 400;
    config.exports.poll_interval_ms = 50;
    for policy in tenantry_reference::ratelimit::PolicyName::ALL {
        config.rate_limit.policies.insert(
            policy,
            tenantry_reference::config::PolicyOverride {
                limit: Some(1_000_000),
                ..Default::default()
            },
        );
    }
    StackOptions::new(config, true)
}

/// A server in a runtime of its own, so that the test can kill it: dropping
/// the runtime ends every task at once (no shutdown, no draining), and the
/// database sees its connections vanish, as after a `kill -9`.
struct Process {
    base: String,
    kill: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Process {
    fn start(url: String, options: StackOptions) -> Self {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (kill_tx, kill_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                server::prepare_database(&url, APP_PASSWORD, &options)
                    .await
                    .unwrap();
                let listener = server::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
                let base = format!("http://{}", listener.local_addr().unwrap());
                let app = server::build(&url, APP_PASSWORD, &options).await.unwrap();
                tokio::spawn(app.serve(listener, std::future::pending()));
                ready_tx.send(base).unwrap();
            });
            let _ = kill_rx.recv();
            runtime.shutdown_background();
        });
        Self {
            base: ready_rx.recv().expect("the server starts"),
            kill: Some(kill_tx),
            thread: Some(thread),
        }
    }

    fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn send(
    http: &reqwest::Client,
    base: &str,
    org: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http
        .request(method.parse().unwrap(), format!("{base}{path}"))
        .header("x-tenantry-dev-tenant", format!("{org};user_{org};org:admin"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Polls every export until none is pending or running; their final states.
async fn settle(http: &reqwest::Client, base: &str, exports: &[(String, String)]) -> Vec<Value> {
    for _ in 0..400 {
        let mut states = Vec::new();
        for (org, id) in exports {
            let (status, body) = send(http, base, org, "GET", &format!("/api/exports/{id}"), None).await;
            assert_eq!(status, 200, "{body}");
            states.push(body);
        }
        if states
            .iter()
            .all(|s| s["status"] == "done" || s["status"] == "failed")
        {
            return states;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("exports still pending after the restart");
}

async fn app_pending(database: &Database) -> i64 {
    let admin = connect(&database.url()).await;
    admin
        .query_one("SELECT count(*) FROM app.export_jobs", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_queued_when_the_process_died_complete_after_a_restart() {
    let database = database().await;
    let http = reqwest::Client::new();
    let mut exports = Vec::new();
    {
        // An instance with no worker time to spare: its workers are busy
        // with a stale claim's lease, and it is killed with jobs queued.
        let first = Process::start(database.url(), options());
        for org in ["org_q_a", "org_q_b"] {
            let (status, _) = send(
                &http,
                &first.base,
                org,
                "POST",
                "/api/projects",
                Some(json!({ "name": format!("{org} data"), "description": "" })),
            )
            .await;
            assert_eq!(status, 201);
        }
        for i in 0..30 {
            let org = if i % 2 == 0 { "org_q_a" } else { "org_q_b" };
            let (status, body) = send(&http, &first.base, org, "POST", "/api/exports", None).await;
            assert_eq!(status, 202, "{body}");
            exports.push((org.to_string(), body["id"].as_str().unwrap().to_string()));
        }
        first.kill();
    }
    // A worker that died holding a claim (its lease runs out, then the job
    // is claimed again), as the app role sees it: only ids come back.
    let app = connect(&database.url_as("tenantry_app", APP_PASSWORD)).await;
    let stale = app
        .query(
            "SELECT organization_id, export_id FROM app.claim_export_job(300)",
            &[],
        )
        .await
        .unwrap();
    let pending = app_pending(&database).await;
    // The app role sees no queue row without an org context, and only its
    // org's rows with one.
    let visible: i64 = app
        .query_one("SELECT count(*) FROM app.export_jobs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(visible, 0, "no context, no rows");

    let second = Process::start(database.url(), options());
    let states = settle(&http, &second.base, &exports).await;
    for ((org, id), state) in exports.iter().zip(&states) {
        assert_eq!(state["status"], "done", "{id}: {state}");
        let projects = state["result"]["projects"].as_array().unwrap();
        assert_eq!(projects.len(), 1, "{id}: {state}");
        assert_eq!(
            projects[0]["name"],
            format!("{org} data"),
            "{id}: its own org's data only"
        );
    }
    assert_eq!(app_pending(&database).await, 0, "every queue row is gone");
    assert!(
        pending > 0 || stale.is_empty(),
        "the kill left work behind (or finished it all): {pending}"
    );
    if let Some(row) = stale.first() {
        let (org, id): (String, String) = (row.get(0), row.get(1));
        let done: i32 = connect(&database.url())
            .await
            .query_one(
                "SELECT count(*)::int FROM app.exports WHERE organization_id = $1 AND id = $2 AND status = 'done'",
                &[&org, &id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(done, 1, "the stale claim was taken over and completed");
    }
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_that_keeps_failing_is_marked_failed_after_its_attempts() {
    let database = database().await;
    let http = reqwest::Client::new();
    let mut options = options();
    options.config.exports.max_attempts = 2;
    let process = Process::start(database.url(), options);
    // Make every attempt fail: the export's row refuses the worker's update.
    let admin = connect(&database.url()).await;
    admin
        .batch_execute(
            "CREATE FUNCTION app.refuse_done() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.status = 'done' THEN RAISE EXCEPTION 'refused for the test'; END IF; RETURN NEW; END $$;
             CREATE TRIGGER refuse_done BEFORE UPDATE ON app.exports FOR EACH ROW EXECUTE FUNCTION app.refuse_done();",
        )
        .await
        .unwrap();
    let (status, body) = send(&http, &process.base, "org_q_f", "POST", "/api/exports", None).await;
    assert_eq!(status, 202);
    let id = body["id"].as_str().unwrap().to_string();
    let states = settle(&http, &process.base, &[("org_q_f".into(), id)]).await;
    assert_eq!(states[0]["status"], "failed", "{}", states[0]);
    assert_eq!(app_pending(&database).await, 0);
}
