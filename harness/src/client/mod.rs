//! The harness's HTTP client: one shared connection pool, bounded
//! concurrency, a per-request timeout, redirects never followed, and a
//! transcript of every exchange kept for evidence — with credentials
//! (Authorization, cookies, registered secrets) redacted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Semaphore;

mod synchronized;

/// One request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Method.
    pub method: String,
    /// Path and query (appended to the base URL), or an absolute URL.
    pub path: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// JSON body.
    pub json: Option<Value>,
    /// Form body (`application/x-www-form-urlencoded`), pairs in order.
    pub form: Option<Vec<(String, String)>>,
    /// Raw body with its content type (e.g. JSON with duplicate keys).
    pub raw: Option<(String, Vec<u8>)>,
}

impl Request {
    /// `method path`.
    pub fn new(method: &str, path: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            ..Self::default()
        }
    }

    /// With a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// With a bearer token.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// With a JSON body.
    pub fn json(mut self, body: Value) -> Self {
        self.json = Some(body);
        self
    }

    /// With a form body.
    pub fn form(mut self, pairs: Vec<(String, String)>) -> Self {
        self.form = Some(pairs);
        self
    }

    /// With a raw body of `content_type`.
    pub fn raw(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.raw = Some((content_type.into(), body.into()));
        self
    }
}

/// `application/x-www-form-urlencoded` (also for query strings: spaces as `+`).
pub fn form_encode(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", form_component(k), form_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// One form component, percent-encoded (unreserved characters kept, space as `+`).
pub fn form_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// One response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code (0: no response).
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// The redacted transcript of the exchange (evidence).
    pub transcript: String,
}

impl Reply {
    /// The body as JSON (Null if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The whole response as text: status line, headers, body — what the oracle scans.
    pub fn scan_text(&self) -> Vec<u8> {
        let mut out = format!("HTTP {}\n", self.status).into_bytes();
        for (k, v) in &self.headers {
            out.extend_from_slice(format!("{k}: {v}\n").as_bytes());
        }
        out.push(b'\n');
        out.extend_from_slice(&self.body);
        out
    }

    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A request as it goes on the wire.
struct Outgoing {
    method: String,
    url: String,
    /// The request's headers and its body's content type.
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    /// Redacted as the reply completes it.
    transcript: String,
}

/// The client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    permits: Arc<Semaphore>,
    secrets: Arc<Mutex<Vec<String>>>,
    sent: Arc<AtomicU64>,
    timeout: Duration,
}

/// Longest body excerpt kept in a transcript.
pub const EXCERPT: usize = 600;

impl Client {
    /// A client for `base` with at most `concurrency` requests in flight.
    pub fn new(base: &str, concurrency: usize, timeout: Duration) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(concurrency)
                .build()
                .unwrap_or_default(),
            base: base.trim_end_matches('/').to_string(),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            secrets: Arc::default(),
            sent: Arc::default(),
            timeout,
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Requests sent so far.
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Redacts `secret` from every transcript from now on.
    pub fn register_secret(&self, secret: &str) {
        if secret.len() >= 8 {
            self.secrets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(secret.to_string());
        }
    }

    fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in self.secrets.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            out = out.replace(secret.as_str(), "[redacted]");
        }
        out
    }

    /// What `request` puts on the wire: its URL, headers (with the body's
    /// content type), body, and the redacted first half of its transcript.
    fn outgoing(&self, request: &Request) -> Outgoing {
        let url = if request.path.starts_with("http://") || request.path.starts_with("https://") {
            request.path.clone()
        } else {
            format!("{}{}", self.base, request.path)
        };
        let mut headers = request.headers.clone();
        let body = if let Some(body) = &request.json {
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                headers.push(("content-type".into(), "application/json".into()));
            }
            Some(body.to_string().into_bytes())
        } else if let Some(pairs) = &request.form {
            headers.push(("content-type".into(), "application/x-www-form-urlencoded".into()));
            Some(form_encode(pairs).into_bytes())
        } else if let Some((content_type, bytes)) = &request.raw {
            headers.push(("content-type".into(), content_type.clone()));
            Some(bytes.clone())
        } else {
            None
        };
        let mut transcript = format!("{} {}\n", request.method, url);
        for (k, v) in &request.headers {
            let shown = match k.to_ascii_lowercase().as_str() {
                "authorization" => "[redacted]".to_string(),
                "cookie" => redact_cookie(v),
                _ => v.clone(),
            };
            transcript.push_str(&format!("{k}: {shown}\n"));
        }
        if let Some(body) = &body {
            transcript.push_str(&format!("\n{}\n", String::from_utf8_lossy(body)));
        }
        Outgoing {
            method: request.method.clone(),
            url,
            headers,
            body,
            transcript,
        }
    }

    /// The reply to `outgoing`: the transcript completed with the answer,
    /// then redacted.
    fn reply(&self, outgoing: Outgoing, status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Reply {
        let mut transcript = outgoing.transcript;
        transcript.push_str(&format!("--> {status}\n"));
        for (k, v) in &headers {
            let shown = if k.eq_ignore_ascii_case("set-cookie") {
                redact_cookie(v)
            } else {
                v.clone()
            };
            transcript.push_str(&format!("{k}: {shown}\n"));
        }
        let excerpt = String::from_utf8_lossy(&body[..body.len().min(EXCERPT)]).into_owned();
        transcript.push_str(&format!("\n{excerpt}"));
        if body.len() > EXCERPT {
            transcript.push_str(&format!("… ({} bytes)", body.len()));
        }
        Reply {
            status,
            headers,
            body,
            transcript: self.redact(&transcript),
        }
    }

    /// Sends `request`; transport failures come back as status 0.
    pub async fn send(&self, request: Request) -> Reply {
        let _permit = self.permits.acquire().await;
        self.sent.fetch_add(1, Ordering::Relaxed);
        let outgoing = self.outgoing(&request);
        let method = reqwest::Method::from_bytes(outgoing.method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut builder = self.http.request(method, &outgoing.url);
        for (k, v) in &outgoing.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        if let Some(body) = &outgoing.body {
            builder = builder.body(body.clone());
        }
        let (status, headers, body) = match builder.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let headers: Vec<(String, String)> = response
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                    .collect();
                let body = response.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                (status, headers, body)
            }
            Err(e) => (
                0,
                Vec::new(),
                format!("transport error: {}", e.without_url()).into_bytes(),
            ),
        };
        self.reply(outgoing, status, headers, body)
    }
}

impl Client {
    /// Sends `request`, waiting out up to three 429 answers (their
    /// Retry-After, between 1 and 10 seconds).
    pub async fn send_patiently(&self, request: Request) -> Reply {
        let mut reply = self.send(request.clone()).await;
        for _ in 0..3 {
            if reply.status != 429 {
                break;
            }
            let wait = reply
                .header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, 10);
            tokio::time::sleep(Duration::from_secs(wait)).await;
            reply = self.send(request.clone()).await;
        }
        reply
    }
}

/// The claims of a JWT, read without verifying it (to reason about what an
/// identity service issued: its org, role, lifetime).
pub fn unverified_claims(token: &str) -> Option<Value> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `a=1; b=2` -> `a=[redacted]; b=[redacted]`.
fn redact_cookie(value: &str) -> String {
    value
        .split(';')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) => format!("{}=[redacted]", k.trim()),
            None => pair.trim().to_string(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_encoded() {
        let pairs = vec![("org id".to_string(), "a&b=c/é".to_string())];
        assert_eq!(form_encode(&pairs), "org+id=a%26b%3Dc%2F%C3%A9");
    }

    #[test]
    fn cookies_are_redacted() {
        assert_eq!(
            redact_cookie("__session=abc; theme=dark"),
            "__session=[redacted]; theme=[redacted]"
        );
    }
}
