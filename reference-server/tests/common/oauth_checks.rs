//! Checks of the org-scoped OAuth connect flow over HTTP (dev-auth stack:
//! alice and bob in org A, carol in org B, all allowed to manage
//! integrations). Each returns `Err(what went wrong)`; all pass on the clean
//! stack, and each OAuth flaw fails one.

use serde_json::Value;

use super::checks::Check;
use super::TestStack;

pub const ORG_A: &str = "org_oauth_a";
pub const ORG_B: &str = "org_oauth_b";
const MANAGE: &str = "org:integrations:manage";

#[derive(Clone, Copy)]
pub struct Who {
    pub org: &'static str,
    pub user: &'static str,
}

pub const ALICE: Who = Who {
    org: ORG_A,
    user: "alice",
};
pub const BOB: Who = Who {
    org: ORG_A,
    user: "bob",
};
pub const CAROL: Who = Who {
    org: ORG_B,
    user: "carol",
};
/// Alice again, with org B active (she belongs to both).
pub const ALICE_IN_B: Who = Who {
    org: ORG_B,
    user: "alice",
};

/// A client that does not follow redirects: the test plays the browser.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub body: Value,
    pub text: String,
}

pub async fn send(
    stack: &TestStack,
    who: Option<Who>,
    method: &str,
    url: &str,
    body: Option<Value>,
) -> Answer {
    let url = if url.starts_with("http") {
        url.to_string()
    } else {
        format!("{}{url}", stack.base)
    };
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = browser().request(method, url);
    if let Some(who) = who {
        request = request.header(
            "x-tenantry-dev-tenant",
            format!("{};{};org:admin;{MANAGE}", who.org, who.user),
        );
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let text = response.text().await.unwrap_or_default();
    Answer {
        status,
        location,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// A query parameter exactly as it appears in the URL (still encoded).
fn raw_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

fn encoded(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A started flow: the authorize URL and its state.
pub struct Flow {
    pub provider: &'static str,
    pub authorize_url: String,
    pub state: String,
}

pub async fn connect(
    stack: &TestStack,
    who: Who,
    provider: &'static str,
    return_to: Option<&str>,
) -> Result<Flow, String> {
    let body = return_to.map(|r| serde_json::json!({ "return_to": r }));
    let a = send(
        stack,
        Some(who),
        "POST",
        &format!("/api/integrations/{provider}/connect"),
        body,
    )
    .await;
    if a.status != 200 {
        return Err(format!("connect: {} {}", a.status, a.text));
    }
    let authorize_url = a.body["authorize_url"].as_str().unwrap_or_default().to_string();
    let state = query_param(&authorize_url, "state").unwrap_or_default();
    Ok(Flow {
        provider,
        authorize_url,
        state,
    })
}

/// The browser at the provider: consents (or denies) and comes back with the
/// callback URL (path and query on our server).
pub async fn consent(stack: &TestStack, authorize_url: &str, extra: &str) -> Result<String, String> {
    let a = send(stack, None, "GET", &format!("{authorize_url}{extra}"), None).await;
    let location = a
        .location
        .ok_or_else(|| format!("the provider did not redirect: {} {}", a.status, a.text))?;
    Ok(location
        .strip_prefix(&stack.base)
        .unwrap_or(&location)
        .to_string())
}

/// The org's integrations as `who` sees them.
pub async fn integrations(stack: &TestStack, who: Who) -> Vec<Value> {
    let a = send(stack, Some(who), "GET", "/api/integrations", None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body.as_array().cloned().unwrap_or_default()
}

/// Token requests the mock provider received for `provider`.
pub async fn token_requests(stack: &TestStack, provider: &str) -> u64 {
    let a = send(stack, None, "GET", &format!("/mock-oauth/{provider}/stats"), None).await;
    a.body["token_requests"].as_u64().unwrap_or(0)
}

fn refused(a: &Answer) -> bool {
    (400..500).contains(&a.status) && a.body["code"] == "invalid_state"
}

async fn nothing_connected(stack: &TestStack, when: &str) -> Check {
    for who in [ALICE, CAROL] {
        let list = integrations(stack, who).await;
        if !list.is_empty() {
            return Err(format!(
                "{when}: org {} has {} connection(s): {list:?}",
                who.org,
                list.len()
            ));
        }
    }
    Ok(())
}

/// The happy path, then a replay of the same callback (after success).
pub async fn happy_path_then_replay(stack: &TestStack) -> Check {
    let flow = connect(stack, ALICE, "shopify", Some("/settings/integrations")).await?;
    if flow.state.len() < 43 {
        return Err(format!("state too short: {}", flow.state));
    }
    let callback = consent(stack, &flow.authorize_url, "").await?;
    let done = send(stack, Some(ALICE), "GET", &callback, None).await;
    if done.status != 303 || done.location.as_deref() != Some("/settings/integrations?connected=shopify") {
        return Err(format!(
            "callback: {} {:?} {}",
            done.status, done.location, done.text
        ));
    }
    let list = integrations(stack, ALICE).await;
    if list.len() != 1 || list[0]["provider"] != "shopify" || list[0]["connected_by"] != "alice" {
        return Err(format!("after connect: {list:?}"));
    }
    if list[0].to_string().contains("at_") {
        return Err("tokens are visible in the list".into());
    }
    let replay = send(stack, Some(ALICE), "GET", &callback, None).await;
    if !refused(&replay) {
        return Err(format!("replay after success: {} {}", replay.status, replay.text));
    }
    if !integrations(stack, CAROL).await.is_empty() {
        return Err("org B got a connection".into());
    }
    Ok(())
}

/// The callback of alice's flow, replayed by bob (same org) and carol
/// (another org) before alice uses it: refused, and it is spent.
pub async fn replay_by_colleague_and_other_org(stack: &TestStack) -> Check {
    let flow = connect(stack, ALICE, "shopify", None).await?;
    let callback = consent(stack, &flow.authorize_url, "").await?;
    let by_bob = send(stack, Some(BOB), "GET", &callback, None).await;
    if !refused(&by_bob) {
        return Err(format!(
            "bob completed alice's flow: {} {}",
            by_bob.status, by_bob.text
        ));
    }
    nothing_connected(stack, "after bob's replay").await?;
    let flow = connect(stack, ALICE, "shopify", None).await?;
    let callback = consent(stack, &flow.authorize_url, "").await?;
    let by_carol = send(stack, Some(CAROL), "GET", &callback, None).await;
    if !refused(&by_carol) {
        return Err(format!(
            "carol (org B) completed alice's flow: {} {}",
            by_carol.status, by_carol.text
        ));
    }
    nothing_connected(stack, "after carol's replay").await?;
    // Alice herself, after switching her active org to B: the flow she
    // started in A must not land in B.
    let flow = connect(stack, ALICE, "shopify", None).await?;
    let callback = consent(stack, &flow.authorize_url, "").await?;
    let switched = send(stack, Some(ALICE_IN_B), "GET", &callback, None).await;
    if !refused(&switched) {
        return Err(format!(
            "a flow started in org A completed in org B: {} {}",
            switched.status, switched.text
        ));
    }
    nothing_connected(stack, "after the org switch").await
}

/// A state past its TTL (the test stack sets the TTL short).
pub async fn expired_state(stack: &TestStack, ttl: std::time::Duration) -> Check {
    let flow = connect(stack, ALICE, "shopify", None).await?;
    let callback = consent(stack, &flow.authorize_url, "").await?;
    tokio::time::sleep(ttl + std::time::Duration::from_millis(500)).await;
    let late = send(stack, Some(ALICE), "GET", &callback, None).await;
    if !refused(&late) {
        return Err(format!("expired state accepted: {} {}", late.status, late.text));
    }
    nothing_connected(stack, "after an expired state").await
}

/// 32 concurrent callbacks with one state: exactly one connection and one
/// token exchange (the state is spent once).
pub async fn concurrent_callbacks(stack: &TestStack) -> Check {
    let before = token_requests(stack, "shopify").await;
    let flow = connect(stack, ALICE, "shopify", None).await?;
    let callback = consent(stack, &flow.authorize_url, "").await?;
    let answers =
        futures::future::join_all((0..32).map(|_| send(stack, Some(ALICE), "GET", &callback, None))).await;
    let ok = answers.iter().filter(|a| a.status == 201).count();
    let state_refusals = answers.iter().filter(|a| refused(a)).count();
    let exchanges = token_requests(stack, "shopify").await - before;
    let list = integrations(stack, ALICE).await;
    if ok != 1 || state_refusals != 31 || exchanges != 1 || list.len() != 1 {
        return Err(format!(
            "32 concurrent callbacks: {ok} connected, {state_refusals} refused as invalid state, \
             {exchanges} token exchanges, {} connections",
            list.len()
        ));
    }
    Ok(())
}

/// A state issued for shopify, completed at quickbooks with a quickbooks
/// code obtained with the same PKCE challenge: refused.
pub async fn provider_swap(stack: &TestStack) -> Check {
    let shopify = connect(stack, ALICE, "shopify", None).await?;
    let quickbooks = connect(stack, ALICE, "quickbooks", None).await?;
    let challenge = raw_param(&shopify.authorize_url, "code_challenge").unwrap_or_default();
    // The quickbooks authorize URL, carrying shopify's state and challenge.
    let mut url = quickbooks.authorize_url.clone();
    url = url.replace(&encoded(&quickbooks.state), &encoded(&shopify.state));
    if let Some(qb_challenge) = raw_param(&quickbooks.authorize_url, "code_challenge") {
        url = url.replace(&qb_challenge, &challenge);
    }
    if !url.contains(&encoded(&shopify.state)) {
        return Err("test setup: the swapped URL does not carry shopify's state".into());
    }
    let callback = consent(stack, &url, "").await?;
    let swapped = send(stack, Some(ALICE), "GET", &callback, None).await;
    if !refused(&swapped) {
        return Err(format!(
            "a shopify state completed a quickbooks flow: {} {}",
            swapped.status, swapped.text
        ));
    }
    nothing_connected(stack, "after a provider swap").await
}

/// A code obtained without alice's PKCE challenge (an attacker's code
/// injected into her callback): never redeemed into a connection.
pub async fn pkce_mismatch(stack: &TestStack) -> Check {
    for tamper in ["strip", "replace"] {
        let flow = connect(stack, ALICE, "shopify", None).await?;
        let challenge = raw_param(&flow.authorize_url, "code_challenge");
        let url = match (tamper, challenge) {
            (_, None) => flow.authorize_url.clone(),
            ("strip", Some(c)) => flow
                .authorize_url
                .replace(&format!("&code_challenge={c}"), "")
                .replace("&code_challenge_method=S256", ""),
            (_, Some(c)) => flow
                .authorize_url
                .replace(&c, &encoded("E9Melhoa2OwvFWvtpvKRSsJsNT6p8fQ-_bY4hdOvTLw")),
        };
        let callback = consent(stack, &url, "").await?;
        let done = send(stack, Some(ALICE), "GET", &callback, None).await;
        if done.status == 201 || done.status == 303 {
            return Err(format!(
                "a code without alice's PKCE challenge ({tamper}) was redeemed: {}",
                done.text
            ));
        }
    }
    nothing_connected(stack, "after PKCE mismatches").await
}

/// The provider answers access_denied: refused, and the state is spent
/// (a later callback with a real code and the same state is refused too).
pub async fn error_callback_then_replay(stack: &TestStack) -> Check {
    let flow = connect(stack, ALICE, "shopify", None).await?;
    let denied = consent(stack, &flow.authorize_url, "&decision=deny").await?;
    let a = send(stack, Some(ALICE), "GET", &denied, None).await;
    if a.status != 400 || a.body["code"] != "authorization_denied" {
        return Err(format!("error callback: {} {}", a.status, a.text));
    }
    let callback = consent(stack, &flow.authorize_url, "").await?;
    let replay = send(stack, Some(ALICE), "GET", &callback, None).await;
    if !refused(&replay) {
        return Err(format!(
            "the state survived an error callback: {} {}",
            replay.status, replay.text
        ));
    }
    nothing_connected(stack, "after an error callback").await
}

/// Post-connect return paths: only allow-listed relative paths.
pub async fn no_open_redirect(stack: &TestStack) -> Check {
    for target in [
        "https://evil.example/settings/integrations",
        "//evil.example/settings/integrations",
        "/\\evil.example",
        "/elsewhere",
    ] {
        let a = send(
            stack,
            Some(ALICE),
            "POST",
            "/api/integrations/shopify/connect",
            Some(serde_json::json!({ "return_to": target })),
        )
        .await;
        if a.status != 422 {
            return Err(format!(
                "return_to {target:?} accepted at connect: {} {}",
                a.status, a.text
            ));
        }
    }
    Ok(())
}
