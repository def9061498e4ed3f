//! Driving a connect flow as a browser would: start it as a signed-in
//! member of an org, open the authorize URL at the (mock) provider, follow
//! its redirect back to the callback, and list the org's connections. No
//! redirects are followed by the client: every hop is a request of its own,
//! so a check can change what the browser would carry.

use serde_json::Value;

use crate::client::{form_component, Client, Reply, Request};
use crate::profile::OAuthSpec;
use crate::session::Placement;
use crate::template::RenderError;
use crate::world::Org;

/// Someone sending requests: a user with an org active, or nobody.
#[derive(Debug, Clone)]
pub(crate) struct Agent {
    /// `alice@a`, for evidence.
    pub label: String,
    /// The active org.
    pub org: Org,
    /// The session token.
    pub token: String,
}

/// A started flow.
#[derive(Debug, Clone)]
pub(crate) struct Started {
    /// Where the browser is sent.
    pub authorize_url: String,
    /// The `state` in that URL (decoded).
    pub state: String,
    /// The start exchange.
    pub transcript: String,
}

/// Why a step of the flow did not go as a browser's would.
#[derive(Debug)]
pub(crate) struct StepFailed {
    /// Which step.
    pub step: &'static str,
    /// What came back.
    pub reply: Reply,
}

/// Sends the requests of a flow for one profile.
pub(crate) struct Driver<'a> {
    pub spec: &'a OAuthSpec,
    pub client: &'a Client,
    pub placement: Placement,
}

impl Driver<'_> {
    /// Sends `request` as `who` (None: no session).
    pub async fn send(&self, who: Option<&Agent>, request: Request) -> Reply {
        let request = match who {
            Some(agent) => self.placement.apply(request, &agent.token),
            None => request,
        };
        self.client.send(request).await
    }

    fn render(
        &self,
        template: &crate::template::RequestTemplate,
        org: &Org,
        provider: &str,
    ) -> Result<Request, RenderError> {
        template.render(&mut |name| match name {
            "provider" => Some(provider.to_string()),
            "org" => Some(org.id.clone()),
            "org_slug" => Some(org.slug.clone()),
            _ => None,
        })
    }

    /// Starts a flow with `provider` as `who`, with `return_to` in the body
    /// if given (the profile says where).
    pub async fn start(
        &self,
        who: &Agent,
        provider: &str,
        return_to: Option<&str>,
    ) -> Result<Result<Started, StepFailed>, RenderError> {
        let mut request = self.render(&self.spec.start, &who.org, provider)?;
        if let (Some(path), Some(pointer)) = (return_to, &self.spec.return_to) {
            let mut body = request
                .json
                .take()
                .unwrap_or_else(|| Value::Object(Default::default()));
            crate::audit::set_pointer(&mut body, pointer, Value::String(path.into()));
            request.json = Some(body);
        }
        let reply = self.send(Some(who), request).await;
        let url = reply
            .json()
            .pointer(&self.spec.authorize_url)
            .and_then(Value::as_str)
            .map(String::from);
        let state = url.as_deref().and_then(|u| query_param(u, "state"));
        Ok(match (url, state) {
            (Some(authorize_url), Some(state)) if (200..300).contains(&reply.status) => Ok(Started {
                authorize_url,
                state,
                transcript: reply.transcript,
            }),
            _ => Err(StepFailed { step: "start", reply }),
        })
    }

    /// The browser at the provider: opens `authorize_url` (approving, or
    /// refusing when `deny`) and returns the callback URL it is sent back to.
    pub async fn consent(&self, authorize_url: &str, deny: bool) -> Result<String, StepFailed> {
        let extra = if deny {
            self.spec.deny.as_deref().unwrap_or_default()
        } else {
            self.spec.approve.as_str()
        };
        let url = with_extra_query(authorize_url, extra);
        let reply = self.send(None, Request::new("GET", url)).await;
        match reply.header("location") {
            Some(location) if (300..400).contains(&reply.status) => Ok(location.to_string()),
            _ => Err(StepFailed {
                step: "consent",
                reply,
            }),
        }
    }

    /// The browser back at the target's callback, as `who`.
    pub async fn callback(&self, who: Option<&Agent>, url: &str) -> Reply {
        self.send(who, Request::new("GET", url)).await
    }

    /// The callbacks at `urls` as `who`, last-byte synchronised so they
    /// reach the target at one instant (the double-redeem race).
    pub async fn callbacks_at_once(&self, who: &Agent, urls: &[String]) -> Vec<Reply> {
        let requests = urls
            .iter()
            .map(|url| {
                self.placement
                    .apply(Request::new("GET", url.as_str()), &who.token)
            })
            .collect();
        self.client.send_synchronized(requests).await
    }

    /// The connections of `who`'s active org.
    pub async fn connections(&self, who: &Agent) -> Result<Result<Vec<Value>, StepFailed>, RenderError> {
        let request = self.render(&self.spec.connections, &who.org, "")?;
        let reply = self.send(Some(who), request).await;
        let items = reply
            .json()
            .pointer(&self.spec.connection_items)
            .and_then(Value::as_array)
            .cloned();
        Ok(match items {
            Some(items) if reply.status == 200 => Ok(items),
            _ => Err(StepFailed {
                step: "list connections",
                reply,
            }),
        })
    }
}

/// Whether a callback answer completed the flow: 2xx, or a redirect that
/// does not report an error.
pub(crate) fn accepted(reply: &Reply) -> bool {
    match reply.status {
        200..=299 => true,
        300..=399 => !reply.header("location").is_some_and(|l| l.contains("error")),
        _ => false,
    }
}

/// Whether `location` sends the browser off the target (a scheme, a
/// scheme-relative `//host`, or `/\host`, which browsers treat alike).
pub(crate) fn off_site(location: &str, base: &str) -> bool {
    if location.starts_with(base) {
        return false;
    }
    let scheme = location.split_once(':').is_some_and(|(s, _)| {
        !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    scheme || location.starts_with("//") || location.starts_with("/\\")
}

/// `url` with `extra` (`a=b&c=d`, may be empty) appended to its query.
pub(crate) fn with_extra_query(url: &str, extra: &str) -> String {
    if extra.is_empty() {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&{extra}")
    } else {
        format!("{url}?{extra}")
    }
}

/// Query parameter `name` of `url`, percent-decoded.
pub(crate) fn query_param(url: &str, name: &str) -> Option<String> {
    raw_param(url, name).map(|v| percent_decode(&v))
}

/// Form-style percent-decoding (`+` is a space); bad escapes stay as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query parameter `name` of `url` as written.
pub(crate) fn raw_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1.split('#').next()?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| v.to_string())
    })
}

/// `url` with parameter `name` set to `value` (encoded here), or removed
/// when `value` is None. A missing parameter is appended.
pub(crate) fn set_param(url: &str, name: &str, value: Option<&str>) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut pairs: Vec<String> = Vec::new();
    let mut seen = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        if key == name {
            seen = true;
            if let Some(v) = value {
                pairs.push(format!("{name}={}", form_component(v)));
            }
        } else {
            pairs.push(pair.to_string());
        }
    }
    if !seen {
        if let Some(v) = value {
            pairs.push(format!("{name}={}", form_component(v)));
        }
    }
    if pairs.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", pairs.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_round_trip() {
        let url = "http://x/cb?code=c1&state=a%2Bb";
        assert_eq!(query_param(url, "state").as_deref(), Some("a+b"));
        assert_eq!(raw_param(url, "state").as_deref(), Some("a%2Bb"));
        assert_eq!(set_param(url, "state", None), "http://x/cb?code=c1");
        let set = set_param(url, "state", Some("x y"));
        assert_eq!(query_param(&set, "state").as_deref(), Some("x y"));
        assert_eq!(
            query_param(&set_param("http://x/cb", "a", Some("1")), "a").as_deref(),
            Some("1")
        );
    }

    #[test]
    fn off_site_locations() {
        let base = "http://127.0.0.1:1";
        for l in [
            "https://evil.example/x",
            "//evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
        ] {
            assert!(off_site(l, base), "{l}");
        }
        for l in [
            "/settings/integrations",
            "http://127.0.0.1:1/settings",
            "/a?next=https://x",
        ] {
            assert!(!off_site(l, base), "{l}");
        }
    }
}
