//! TOK-010's loopback listener: the key URLs (`jku`, `x5u`) of the attack
//! tokens point here. It serves the attacker's JWKS and certificate and
//! records every fetch — a target that fetches a key URL named by a token is
//! a finding even when it then refuses the token (it is an SSRF primitive).
//! Any other URL a token carries (a claim or header set to a URL, a `kid`
//! that would run `curl`) points at `/ping/<label>`, recorded the same way.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::routing::get;
use serde_json::Value;

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("the key-URL listener cannot listen on 127.0.0.1: {0}")]
pub struct ListenerError(String);

#[derive(Debug)]
struct Served {
    jwks: Value,
    certificate_pem: String,
    hits: Mutex<Vec<String>>,
}

/// The running listener; stops when dropped.
#[derive(Debug)]
pub struct KeyUrlListener {
    base: String,
    served: Arc<Served>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn serve_jwks(State(served): State<Arc<Served>>, Path(label): Path<String>) -> axum::Json<Value> {
    record(&served, format!("/jku/{label}"));
    axum::Json(served.jwks.clone())
}

async fn serve_certificate(State(served): State<Arc<Served>>, Path(label): Path<String>) -> String {
    record(&served, format!("/x5u/{label}"));
    served.certificate_pem.clone()
}

async fn serve_ping(State(served): State<Arc<Served>>, Path(label): Path<String>) -> &'static str {
    record(&served, format!("/ping/{label}"));
    "tenantry"
}

fn record(served: &Served, path: String) {
    served.hits.lock().unwrap_or_else(|p| p.into_inner()).push(path);
}

impl KeyUrlListener {
    /// Serves `jwks` at `/jku/<label>` and `certificate_pem` at
    /// `/x5u/<label>` on a free loopback port.
    pub async fn start(jwks: Value, certificate_pem: String) -> Result<Self, ListenerError> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .map_err(|e| ListenerError(e.to_string()))?;
        let addr = listener.local_addr().map_err(|e| ListenerError(e.to_string()))?;
        let served = Arc::new(Served {
            jwks,
            certificate_pem,
            hits: Mutex::default(),
        });
        let app = axum::Router::new()
            .route("/jku/{label}", get(serve_jwks))
            .route("/x5u/{label}", get(serve_certificate))
            .route("/ping/{label}", get(serve_ping))
            .with_state(Arc::clone(&served));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
                tracing::warn!(error = %e, "the key-URL listener stopped");
            }
        });
        Ok(Self {
            base: format!("http://{addr}"),
            served,
            _stop: stop,
        })
    }

    /// The URL of the JWKS for the case `label`.
    pub fn jku(&self, label: &str) -> String {
        format!("{}/jku/{label}", self.base)
    }

    /// The URL of the certificate for the case `label`.
    pub fn x5u(&self, label: &str) -> String {
        format!("{}/x5u/{label}", self.base)
    }

    /// A URL that only records its fetch, for the case `label`.
    pub fn ping(&self, label: &str) -> String {
        format!("{}/ping/{label}", self.base)
    }

    /// Paths fetched so far, in order.
    pub fn hits(&self) -> Vec<String> {
        self.served.hits.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fetches_are_recorded_per_case() {
        let listener = KeyUrlListener::start(serde_json::json!({ "keys": [] }), "PEM".into())
            .await
            .unwrap();
        let client = crate::client::Client::new("http://127.0.0.1:1", 2, std::time::Duration::from_secs(5));
        let reply = client
            .send(crate::client::Request::new("GET", listener.jku("c1")))
            .await;
        assert_eq!(reply.json(), serde_json::json!({ "keys": [] }));
        let reply = client
            .send(crate::client::Request::new("GET", listener.x5u("c2")))
            .await;
        assert_eq!(reply.body, b"PEM");
        let reply = client
            .send(crate::client::Request::new("GET", listener.ping("c3")))
            .await;
        assert_eq!(reply.status, 200);
        assert_eq!(listener.hits(), vec!["/jku/c1", "/x5u/c2", "/ping/c3"]);
    }
}
