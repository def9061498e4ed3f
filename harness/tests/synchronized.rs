//! Last-byte-synchronised bursts (`Client::send_synchronized`) against a
//! real HTTP server: every answer comes back whole and in order (sized and
//! chunked bodies), credentials stay redacted, a server that never answers
//! gives status 0 after the timeout, and what cannot go raw goes through
//! the pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use tenantry_harness::client::{Client, Request};

async fn server() -> (String, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new()
        .route(
            "/echo/{i}",
            get(
                |Path(i): Path<u32>, State(seen): State<Arc<AtomicUsize>>, headers: HeaderMap| async move {
                    seen.fetch_add(1, Ordering::SeqCst);
                    let auth = headers
                        .get("authorization")
                        .map(|v| v.to_str().unwrap_or("").to_string());
                    format!("{i} {}", auth.unwrap_or_default())
                },
            ),
        )
        .route(
            "/chunked",
            get(|| async {
                let parts: Vec<Result<Bytes, std::io::Error>> =
                    vec![Ok(Bytes::from_static(b"one,")), Ok(Bytes::from_static(b"two"))];
                Body::from_stream(futures::stream::iter(parts))
            }),
        )
        .route(
            "/json",
            post(|body: Bytes| async move { (axum::http::StatusCode::CREATED, body) }),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronised_burst_answers_every_request_in_order() {
    let (base, seen) = server().await;
    let client = Client::new(&base, 4, Duration::from_secs(5));
    client.register_secret("sk_live_secretsecret");
    let mut requests: Vec<Request> = (0..40)
        .map(|i| Request::new("GET", format!("/echo/{i}")).bearer("sk_live_secretsecret"))
        .collect();
    requests.push(Request::new("GET", "/chunked"));
    requests.push(Request::new("POST", "/json").json(serde_json::json!({ "a": [1, 2] })));
    assert!(client.synchronized_for(&requests));
    // More at once than the pool's 4 permits: one connection each.
    let replies = client.send_synchronized(requests).await;
    assert_eq!(replies.len(), 42);
    for (i, reply) in replies[..40].iter().enumerate() {
        assert_eq!(reply.status, 200, "{}", reply.transcript);
        let body = String::from_utf8_lossy(&reply.body);
        assert_eq!(body, format!("{i} Bearer sk_live_secretsecret"));
        // The server saw the credential; the evidence never shows it.
        assert!(
            !reply.transcript.contains("sk_live_secretsecret"),
            "{}",
            reply.transcript
        );
        assert!(reply.transcript.starts_with(&format!("GET {base}/echo/{i}\n")));
    }
    assert_eq!(replies[40].body, b"one,two");
    assert!(replies[40]
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked")));
    assert_eq!(
        (replies[41].status, replies[41].json()),
        (201, serde_json::json!({ "a": [1, 2] }))
    );
    assert_eq!(seen.load(Ordering::SeqCst), 40);
    assert_eq!(client.requests_sent(), 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_times_out_and_what_cannot_go_raw_goes_through_the_pool() {
    // A server that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let client = Client::new(&base, 4, Duration::from_millis(500));
    let replies = client
        .send_synchronized(vec![Request::new("GET", "/a"), Request::new("GET", "/b")])
        .await;
    for reply in &replies {
        assert_eq!(reply.status, 0);
        assert!(String::from_utf8_lossy(&reply.body).contains("no complete answer within 0.5 s"));
    }
    // TLS, or a header the raw path will not write: the pool sends it.
    let (plain, _) = server().await;
    let client = Client::new(&plain, 4, Duration::from_secs(5));
    let odd = vec![
        Request::new("GET", "/echo/7").header("host", "elsewhere"),
        Request::new("GET", "https://127.0.0.1:1/x"),
    ];
    assert!(!client.synchronized_for(&odd));
    let replies = client.send_synchronized(odd).await;
    assert_eq!(replies[1].status, 0);
    assert!(String::from_utf8_lossy(&replies[1].body).contains("transport error"));
    assert_eq!(client.requests_sent(), 2);
}
