//! The identity service end to end over HTTP: the Backend API with the
//! secret key, sign-in through the app's handler (with device trust and
//! 2FA), setActive, session and template tokens, and the data API behind
//! the real proxy.

mod common;

use common::identity::{self, claims_of, Backend, Device, PASSWORD};
use common::token_checks::send;
use common::TestStack;
use serde_json::{json, Value};

fn email(tag: &str) -> String {
    format!("{tag}@example.test")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_api_needs_the_secret_key_and_speaks_clerk_errors() {
    let stack = TestStack::with_proxy().await;
    let url = format!("{}/v1/users", stack.base);
    for auth in [None, Some("Bearer sk_test_wrong"), Some("Basic x")] {
        let mut request = stack.http.get(&url);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{auth:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "authentication_invalid");
    }
    // The JWKS is public, as in Clerk.
    let jwks: Value = stack
        .http
        .get(format!("{}/v1/jwks", stack.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "RSA");

    let backend = Backend::new(&stack);
    let missing = backend
        .call("POST", "/v1/sessions/sess_nope/tokens/no-such-template", None)
        .await;
    assert_eq!(missing.status, 404, "{}", missing.text);
    assert_eq!(missing.body["errors"][0]["code"], "resource_not_found");
    for key in ["message", "long_message", "meta"] {
        assert!(
            missing.body["errors"][0].get(key).is_some(),
            "{key}: {}",
            missing.text
        );
    }

    backend.user(&email("dup"), false).await;
    let dup = backend
        .call(
            "POST",
            "/v1/users",
            Some(json!({ "email_address": ["DUP@example.test"], "password": PASSWORD })),
        )
        .await;
    assert_eq!(dup.status, 422, "{}", dup.text);
    assert_eq!(dup.body["errors"][0]["code"], "form_identifier_exists");
    // The password never comes back, in any form.
    assert!(!dup.text.contains(PASSWORD));

    let weak = backend
        .call(
            "POST",
            "/v1/users",
            Some(json!({ "email_address": ["weak@example.test"], "password": "short" })),
        )
        .await;
    assert_eq!(weak.status, 422, "{}", weak.text);
    assert_eq!(weak.body["errors"][0]["meta"]["param_name"], "password");

    let bad_json = stack
        .http
        .post(&url)
        .bearer_auth(identity::SECRET_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), 422);

    let reserved = backend
        .call(
            "POST",
            "/v1/jwt_templates",
            Some(json!({ "name": "bad", "claims": { "sub": "x" } })),
        )
        .await;
    assert_eq!(reserved.status, 422, "{}", reserved.text);
    assert_eq!(reserved.body["errors"][0]["meta"]["param_name"], "claims");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_api_manages_users_orgs_and_memberships() {
    let stack = TestStack::with_proxy().await;
    let backend = Backend::new(&stack);
    let alice = backend.user(&email("alice"), false).await;
    let bob = backend.user(&email("bob"), false).await;
    let (org, slug) = backend.org("Acme Rockets", &alice).await;
    assert!(org.starts_with("org_"), "{org}");
    assert_eq!(slug, "acme-rockets");
    let by_slug = backend
        .call("GET", &format!("/v1/organizations/{slug}"), None)
        .await;
    assert_eq!(by_slug.body["id"], org.as_str());
    assert_eq!(by_slug.body["members_count"], 1);

    backend.add_member(&org, &bob, "org:member").await;
    let again = backend
        .call(
            "POST",
            &format!("/v1/organizations/{org}/memberships"),
            Some(json!({ "user_id": bob, "role": "org:member" })),
        )
        .await;
    assert_eq!(again.status, 422, "{}", again.text);
    let unknown_role = backend
        .call(
            "POST",
            &format!("/v1/organizations/{org}/memberships"),
            Some(json!({ "user_id": alice, "role": "org:nope" })),
        )
        .await;
    assert_eq!(unknown_role.status, 422, "{}", unknown_role.text);

    let list = backend
        .call("GET", &format!("/v1/organizations/{org}/memberships"), None)
        .await;
    assert_eq!(list.body["total_count"], 2, "{}", list.text);
    let roles: Vec<(&str, &str)> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["public_user_data"]["user_id"].as_str().unwrap(),
                m["role"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [(alice.as_str(), "org:admin"), (bob.as_str(), "org:member")]
    );

    let promoted = backend
        .call(
            "PATCH",
            &format!("/v1/organizations/{org}/memberships/{bob}"),
            Some(json!({ "role": "org:admin" })),
        )
        .await;
    assert_eq!(promoted.body["role"], "org:admin", "{}", promoted.text);
    let removed = backend
        .call(
            "DELETE",
            &format!("/v1/organizations/{org}/memberships/{bob}"),
            None,
        )
        .await;
    assert_eq!(removed.status, 200, "{}", removed.text);
    let gone = backend
        .call(
            "DELETE",
            &format!("/v1/organizations/{org}/memberships/{bob}"),
            None,
        )
        .await;
    assert_eq!(gone.status, 404);

    let users = backend
        .call("GET", &format!("/v1/users?email_address={}", email("bob")), None)
        .await;
    assert_eq!(users.body.as_array().unwrap().len(), 1, "{}", users.text);
    let count = backend.call("GET", "/v1/users/count", None).await;
    assert_eq!(count.body["total_count"], 2);
    // The stored hash is never rendered.
    let user = backend.call("GET", &format!("/v1/users/{alice}"), None).await;
    assert_eq!(user.body["password_enabled"], true);
    assert!(!user.text.contains("argon2"), "{}", user.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_device_trust_then_set_active_then_data() {
    let stack = TestStack::with_proxy().await;
    let backend = Backend::new(&stack);
    let email = email("carol");
    let carol = backend.user(&email, false).await;
    let (org, slug) = backend.org("Carol Co", &carol).await;

    // Unknown device: the password is right, but no session before the code.
    let mut device = Device::new(&stack);
    let first = device.app_sign_in(&email, PASSWORD).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["status"], "needs_client_trust", "{}", first.text);
    assert_eq!(first.body["next"], "email_code");
    assert!(first.body["session_id"].is_null());
    assert!(backend.active_sessions(&carol).await.is_empty());
    let sign_in_id = first.body["sign_in_id"].as_str().unwrap().to_string();
    // The Frontend API reports the same state to the same device.
    let fapi = device
        .call("GET", &format!("/v1/client/sign_ins/{sign_in_id}"), None)
        .await;
    assert_eq!(
        fapi.body["response"]["status"], "needs_client_trust",
        "{}",
        fapi.text
    );
    assert_eq!(
        fapi.body["response"]["second_factor_verification"]["status"],
        "unverified"
    );
    // Another device cannot see or drive the attempt.
    let mut stranger = Device::new(&stack);
    stranger.call("POST", "/v1/client", None).await;
    let foreign = stranger
        .call(
            "POST",
            &format!("/auth/sign-in/{sign_in_id}/code"),
            Some(json!({ "code": "000000" })),
        )
        .await;
    assert_eq!(foreign.status, 404, "{}", foreign.text);

    let wrong = device
        .call(
            "POST",
            &format!("/auth/sign-in/{sign_in_id}/code"),
            Some(json!({ "code": "not-it" })),
        )
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    let (code, for_attempt) = backend.latest_code(&email).await.expect("a code was sent");
    assert_eq!(for_attempt, sign_in_id);
    let done = device
        .call(
            "POST",
            &format!("/auth/sign-in/{sign_in_id}/code"),
            Some(json!({ "code": code })),
        )
        .await;
    assert_eq!(done.body["status"], "complete", "{}", done.text);
    let session = done.body["session_id"].as_str().unwrap().to_string();
    assert_eq!(backend.active_sessions(&carol).await.len(), 1);
    // The code is spent.
    let replay = device
        .call(
            "POST",
            &format!("/auth/sign-in/{sign_in_id}/code"),
            Some(json!({ "code": code })),
        )
        .await;
    assert_ne!(replay.status, 200, "{}", replay.text);

    // No active org yet: a personal token, refused by org routes.
    let personal = device.session_token(&session).await;
    let claims = claims_of(&personal);
    assert!(claims.get("o").is_none(), "{claims}");
    assert_eq!(claims["azp"], common::token_checks::PARTY);
    assert_eq!(claims["fva"], json!([0, 0]));
    let (status, body) = send(&stack, "GET", "/api/projects", Some(&personal), &[], None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("no_active_organization"), "{body}");

    let touched = device.set_active(&session, Some(&org)).await;
    assert_eq!(touched.status, 200, "{}", touched.text);
    let token = device.session_token(&session).await;
    let claims = claims_of(&token);
    assert_eq!(claims["o"]["id"], org.as_str());
    assert_eq!(claims["o"]["slg"], slug.as_str());
    assert_eq!(claims["o"]["rol"], "admin");
    assert_eq!(claims["v"], 2);
    assert_eq!(claims["sts"], "active");
    assert_eq!(claims["sid"], session.as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        60
    );
    let (status, body) = send(
        &stack,
        "POST",
        "/api/projects",
        Some(&token),
        &[],
        Some(json!({ "name": "carol's project" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(&stack, "GET", "/api/projects", Some(&token), &[], None).await;
    assert_eq!(status, 200);
    assert!(body.contains("carol's project"), "{body}");

    // The device is now trusted: the next sign-in completes with the password.
    let again = device.app_sign_in(&email, PASSWORD).await;
    assert_eq!(again.body["status"], "complete", "{}", again.text);

    // Wrong password and unknown account answer alike.
    let wrong = device.app_sign_in(&email, "not the password").await;
    let unknown = device
        .app_sign_in("nobody@example.test", "not the password")
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!((wrong.status, &wrong.body), (unknown.status, &unknown.body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_factor_is_required_even_on_a_trusted_device_and_codes_do_not_cross_attempts() {
    let stack = TestStack::with_proxy().await;
    let backend = Backend::new(&stack);
    let email = email("dave");
    let dave = backend.user(&email, true).await;
    let mut device = Device::new(&stack);
    let first = device.app_sign_in(&email, PASSWORD).await;
    assert_eq!(first.body["status"], "needs_second_factor", "{}", first.text);
    let attempt_a = first.body["sign_in_id"].as_str().unwrap().to_string();
    let (code_a, _) = backend.latest_code(&email).await.unwrap();
    // A second attempt gets its own code; A's code does not complete B (SES-007).
    let second = device.app_sign_in(&email, PASSWORD).await;
    let attempt_b = second.body["sign_in_id"].as_str().unwrap().to_string();
    assert_ne!(attempt_a, attempt_b);
    let (code_b, for_b) = backend.latest_code(&email).await.unwrap();
    assert_eq!(for_b, attempt_b);
    if code_a != code_b {
        let crossed = device
            .call(
                "POST",
                &format!("/auth/sign-in/{attempt_b}/code"),
                Some(json!({ "code": code_a })),
            )
            .await;
        assert_eq!(crossed.status, 401, "{}", crossed.text);
    }
    assert!(backend.active_sessions(&dave).await.is_empty());
    let done = device
        .call(
            "POST",
            &format!("/auth/sign-in/{attempt_b}/code"),
            Some(json!({ "code": code_b })),
        )
        .await;
    assert_eq!(done.body["status"], "complete", "{}", done.text);
    let session = done.body["session_id"].as_str().unwrap().to_string();
    let token = device.session_token(&session).await;
    let fva = claims_of(&token)["fva"].clone();
    assert_eq!(fva, json!([0, 0]), "second factor verified just now");
    // Trusted device or not, 2FA users always need the code.
    let third = device.app_sign_in(&email, PASSWORD).await;
    assert_eq!(third.body["status"], "needs_second_factor", "{}", third.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_org_switches_data_and_removed_members_lose_the_org() {
    let stack = TestStack::with_proxy().await;
    let backend = Backend::new(&stack);
    let owner_a = backend.user(&email("owner-a"), false).await;
    let owner_b = backend.user(&email("owner-b"), false).await;
    let email_e = email("erin");
    let erin = backend.user(&email_e, false).await;
    let (org_a, _) = backend.org("Org A", &owner_a).await;
    let (org_b, _) = backend.org("Org B", &owner_b).await;
    let (org_c, _) = backend.org("Org C", &owner_a).await;
    backend.add_member(&org_a, &erin, "org:member").await;
    backend.add_member(&org_b, &erin, "org:member").await;

    let mut device = Device::new(&stack);
    let session = device.sign_in(&backend, &email_e).await.unwrap();
    device.set_active(&session, Some(&org_a)).await;
    let token_a = device.session_token(&session).await;
    let (status, body) = send(
        &stack,
        "POST",
        "/api/projects",
        Some(&token_a),
        &[],
        Some(json!({ "name": "canary-org-a" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let project_a = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // setActive only to orgs the user belongs to; others look nonexistent.
    for foreign in [org_c.as_str(), "org_doesnotexist"] {
        let refused = device.set_active(&session, Some(foreign)).await;
        assert_eq!(refused.status, 404, "{}", refused.text);
        assert_eq!(refused.body["errors"][0]["code"], "resource_not_found");
    }

    let switched = device.set_active(&session, Some(&org_b)).await;
    assert_eq!(
        switched.body["response"]["last_active_organization_id"],
        org_b.as_str()
    );
    let token_b = device.session_token(&session).await;
    assert_eq!(claims_of(&token_b)["o"]["id"], org_b.as_str());
    let (status, body) = send(&stack, "GET", "/api/projects", Some(&token_b), &[], None).await;
    assert_eq!(status, 200);
    assert!(!body.contains("canary-org-a"), "{body}");
    let (status, _) = send(
        &stack,
        "GET",
        &format!("/api/projects/{project_a}"),
        Some(&token_b),
        &[],
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = send(
        &stack,
        "GET",
        &format!("/api/orgs/{org_a}/projects"),
        Some(&token_b),
        &[],
        None,
    )
    .await;
    assert_eq!(status, 403);

    // Removed from B: the next token has no org, and B cannot be re-selected.
    let removed = backend
        .call(
            "DELETE",
            &format!("/v1/organizations/{org_b}/memberships/{erin}"),
            None,
        )
        .await;
    assert_eq!(removed.status, 200, "{}", removed.text);
    let after = device.session_token(&session).await;
    assert!(claims_of(&after).get("o").is_none(), "{}", claims_of(&after));
    let (status, _) = send(&stack, "GET", "/api/projects", Some(&after), &[], None).await;
    assert_eq!(status, 403);
    let back = device.set_active(&session, Some(&org_b)).await;
    assert_eq!(back.status, 404, "{}", back.text);

    // Personal account on request.
    device.set_active(&session, Some(&org_a)).await;
    let cleared = device.set_active(&session, None).await;
    assert!(cleared.body["response"]["last_active_organization_id"].is_null());

    // Revoked session: no more tokens.
    let revoked = backend
        .call("POST", &format!("/v1/sessions/{session}/revoke"), None)
        .await;
    assert_eq!(revoked.body["status"], "revoked", "{}", revoked.text);
    let refused = device.token(&session).await;
    assert_eq!(refused.status, 401, "{}", refused.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_tokens_render_exactly_and_are_not_session_tokens() {
    let stack = TestStack::with_proxy().await;
    let backend = Backend::new(&stack);
    let email = email("frank");
    let frank = backend.user(&email, false).await;
    let (org, slug) = backend.org("Frank Inc", &frank).await;
    let created = backend
        .call(
            "POST",
            "/v1/jwt_templates",
            Some(json!({
                "name": "supabase",
                "lifetime": 120,
                "allowed_clock_skew": 10,
                "claims": {
                    "aud": "authenticated",
                    "role": "authenticated",
                    "email": "{{user.primary_email_address}}",
                    "org_id": "{{org.id}}",
                    "org_slug": "{{org.slug}}",
                    "org_role": "{{org.role}}",
                    "plan": "{{user.public_metadata.plan}}",
                    "nickname": "{{user.username || user.first_name}}",
                    "greeting": "hello {{user.first_name}} of {{org.slug}}",
                    "unknown": "{{user.no_such_field}}",
                    "nested": { "ids": ["{{user.id}}", "{{org.id}}"] }
                }
            })),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    assert_eq!(created.body["object"], "jwt_template");

    let mut device = Device::new(&stack);
    let session = device.sign_in(&backend, &email).await.unwrap();
    device.set_active(&session, Some(&org)).await;
    let r = device
        .call(
            "POST",
            &format!("/v1/client/sessions/{session}/tokens/supabase"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let jwt = r.body["jwt"].as_str().unwrap().to_string();
    let mut claims = claims_of(&jwt);
    let map = claims.as_object_mut().unwrap();
    let (iat, nbf, exp) = (
        map["iat"].as_i64().unwrap(),
        map["nbf"].as_i64().unwrap(),
        map["exp"].as_i64().unwrap(),
    );
    assert_eq!((iat - nbf, exp - iat), (10, 120));
    for volatile in ["iat", "nbf", "exp", "jti"] {
        map.remove(volatile);
    }
    assert_eq!(
        claims,
        json!({
            "aud": "authenticated",
            "role": "authenticated",
            "email": email,
            "org_id": org,
            "org_slug": slug,
            "org_role": "org:admin",
            "plan": "pro",
            "nickname": "Test",
            "greeting": format!("hello Test of {slug}"),
            "unknown": null,
            "nested": { "ids": [frank, org] },
            "sub": frank,
            "iss": "https://clerk.tenantry.local",
            "azp": common::token_checks::PARTY,
        })
    );
    // A template token is never a session token.
    let (status, body) = send(&stack, "GET", "/api/projects", Some(&jwt), &[], None).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = send(&stack, "GET", "/auth/token/supabase", Some(&jwt), &[], None).await;
    assert_eq!(status, 401);

    // The app helper returns the template token when the template works.
    let session_token = device.session_token(&session).await;
    let (status, body) = send(
        &stack,
        "GET",
        "/auth/token/supabase",
        Some(&session_token),
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["fallback"], false);
    assert_eq!(claims_of(body["jwt"].as_str().unwrap())["org_role"], "org:admin");

    // Through the Backend API too; a missing template is a Clerk 404.
    let r = backend
        .call("POST", &format!("/v1/sessions/{session}/tokens/supabase"), None)
        .await;
    assert_eq!(r.body["object"], "token", "{}", r.text);
    let r = backend
        .call("POST", &format!("/v1/sessions/{session}/tokens/nope"), None)
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["errors"][0]["code"], "resource_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_stack_passes_the_identity_flaw_checks() {
    let stack = TestStack::with_proxy().await;
    identity::client_trust_safety(&stack).await.unwrap();
    identity::client_trust_liveness(&stack).await.unwrap();
    identity::template_fallback(&stack).await.unwrap();
    identity::role_from_verified_token_only(&stack).await.unwrap();
}

async fn status_at(stack: &TestStack, base: &str, token: &str) -> u16 {
    stack
        .http
        .get(format!("{base}/api/projects"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn kid_of(jwt: &str) -> String {
    use base64::Engine;
    let header = jwt.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_are_shared_by_instances_and_rotation_reaches_them() {
    let stack = TestStack::with_proxy().await;
    let backend = Backend::new(&stack);
    let email = email("grace");
    let grace = backend.user(&email, false).await;
    let (org, _) = backend.org("Grace Org", &grace).await;
    let mut device = Device::new(&stack);
    let session = device.sign_in(&backend, &email).await.unwrap();
    device.set_active(&session, Some(&org)).await;
    let before = device.session_token(&session).await;

    // A second replica on the same database verifies the first one's tokens.
    let peer = stack.peer().await;
    assert_eq!(status_at(&stack, &peer.base, &before).await, 200);

    let rotated = backend
        .call("POST", "/v1/instance/signing_keys/rotate", None)
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let new_kid = rotated.body["kid"].as_str().unwrap().to_string();
    assert_ne!(new_kid, kid_of(&before));
    assert_eq!(rotated.body["jwks"]["keys"].as_array().unwrap().len(), 2);
    let after = device.session_token(&session).await;
    assert_eq!(kid_of(&after), new_kid);

    // The peer learns the new kid on first sight (after its refresh interval).
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    assert_eq!(status_at(&stack, &peer.base, &after).await, 200);
    // Tokens signed just before the rotation keep working for the overlap.
    assert_eq!(status_at(&stack, &peer.base, &before).await, 200);
    assert_eq!(status_at(&stack, &stack.base, &before).await, 200);

    // And the JWKS both publish agree.
    let jwks = |base: String| {
        let http = stack.http.clone();
        async move {
            http.get(format!("{base}/.well-known/jwks.json"))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(jwks(stack.base.clone()).await, jwks(peer.base.clone()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kids_refresh_the_keys_at_most_once_per_interval() {
    use tenantry_reference::db;
    use tenantry_reference::identity::keys::KeyRing;
    use tenantry_reference::identity::service::Identity;
    use tenantry_reference::identity::store::Store;
    let stack = TestStack::with_proxy().await;
    let pool = db::identity_pool(
        &stack.database.url(),
        common::APP_PASSWORD,
        2,
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let mut config = stack.options.config.identity.clone();
    config.key_refresh_interval_ms = 300;
    let ring = std::sync::Arc::new(KeyRing::new(std::time::Duration::from_secs(600)).unwrap());
    let identity = Identity::new(Store::new(pool), ring.clone(), config, "https://issuer".into());
    identity.load_keys().await.unwrap();
    // The stack created the first key; this instance loaded the same one.
    assert_eq!(ring.active().kid(), stack.keys.active().kid());
    assert!(!identity.refresh_keys_if_due().await, "just loaded");
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    assert!(identity.refresh_keys_if_due().await);
    let burst = futures::future::join_all((0..20).map(|_| identity.refresh_keys_if_due())).await;
    assert_eq!(burst.iter().filter(|r| **r).count(), 0, "{burst:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frontend_api_walks_every_sign_in_status() {
    let stack = TestStack::with_proxy().await;
    let backend = Backend::new(&stack);
    let email = email("heidi");
    let heidi = backend.user(&email, false).await;
    let mut device = Device::new(&stack);

    let r = device.call("POST", "/v1/client/sign_ins", Some(json!({}))).await;
    assert_eq!(r.body["response"]["status"], "needs_identifier", "{}", r.text);
    assert!(
        device.client_cookie.is_some(),
        "the first call sets the device cookie"
    );
    let id = r.body["response"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["client"]["sign_in"]["id"], id.as_str());

    let r = device
        .call(
            "PATCH",
            &format!("/v1/client/sign_ins/{id}"),
            Some(json!({ "identifier": email })),
        )
        .await;
    assert_eq!(r.body["response"]["status"], "needs_first_factor", "{}", r.text);
    assert_eq!(
        r.body["response"]["supported_first_factors"][0]["strategy"],
        "password"
    );

    // Steps out of order are refused with the state named.
    let early = device
        .call(
            "POST",
            &format!("/v1/client/sign_ins/{id}/prepare_second_factor"),
            Some(json!({ "strategy": "email_code" })),
        )
        .await;
    assert_eq!(early.status, 422, "{}", early.text);
    assert_eq!(early.body["errors"][0]["code"], "sign_in_status_invalid");
    let missing = device
        .call(
            "POST",
            &format!("/v1/client/sign_ins/{id}/attempt_first_factor"),
            Some(json!({ "strategy": "password" })),
        )
        .await;
    assert_eq!(missing.status, 422);
    assert_eq!(missing.body["errors"][0]["code"], "form_param_missing");

    // Forms work as well as JSON (browsers post forms).
    let form = stack
        .http
        .post(format!(
            "{}/v1/client/sign_ins/{id}/attempt_first_factor",
            stack.base
        ))
        .header("cookie", device.client_cookie.clone().unwrap())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "strategy=password&password={}",
            PASSWORD.replace(' ', "+")
        ))
        .send()
        .await
        .unwrap();
    let form: Value = form.json().await.unwrap();
    assert_eq!(form["response"]["status"], "needs_client_trust", "{form}");
    assert!(form["response"]["created_session_id"].is_null());
    assert!(backend.active_sessions(&heidi).await.is_empty());

    let r = device
        .call(
            "POST",
            &format!("/v1/client/sign_ins/{id}/prepare_second_factor"),
            Some(json!({ "strategy": "email_code" })),
        )
        .await;
    assert_eq!(
        r.body["response"]["second_factor_verification"]["status"], "unverified",
        "{}",
        r.text
    );
    let (code, _) = backend.latest_code(&email).await.unwrap();
    // Five wrong codes abandon the attempt; the right one is then useless.
    let mut last = Value::Null;
    for _ in 0..5 {
        let wrong = if code == "000000" { "111111" } else { "000000" };
        last = device
            .call(
                "POST",
                &format!("/v1/client/sign_ins/{id}/attempt_second_factor"),
                Some(json!({ "strategy": "email_code", "code": wrong })),
            )
            .await
            .body;
    }
    assert_eq!(last["errors"][0]["code"], "too_many_attempts", "{last}");
    let late = device
        .call(
            "POST",
            &format!("/v1/client/sign_ins/{id}/attempt_second_factor"),
            Some(json!({ "strategy": "email_code", "code": code })),
        )
        .await;
    assert_ne!(late.status, 200, "{}", late.text);
    assert!(backend.active_sessions(&heidi).await.is_empty());

    // A fresh attempt with identifier and password in one call, then the code.
    let r = device
        .call(
            "POST",
            "/v1/client/sign_ins",
            Some(json!({ "identifier": email, "password": PASSWORD })),
        )
        .await;
    let id = r.body["response"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["response"]["status"], "needs_client_trust");
    device
        .call(
            "POST",
            &format!("/v1/client/sign_ins/{id}/prepare_second_factor"),
            Some(json!({ "strategy": "email_code" })),
        )
        .await;
    let (code, _) = backend.latest_code(&email).await.unwrap();
    let r = device
        .call(
            "POST",
            &format!("/v1/client/sign_ins/{id}/attempt_second_factor"),
            Some(json!({ "strategy": "email_code", "code": code })),
        )
        .await;
    assert_eq!(r.body["response"]["status"], "complete", "{}", r.text);
    let session = r.body["response"]["created_session_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(r.body["client"]["last_active_session_id"], session.as_str());
    let client: Value = device.call("GET", "/v1/client", None).await.body;
    assert_eq!(client["response"]["session_ids"], json!([session]));

    // Sign out: the session ends and gives no more tokens.
    let r = device
        .call("POST", &format!("/v1/client/sessions/{session}/end"), None)
        .await;
    assert_eq!(r.body["response"]["status"], "ended", "{}", r.text);
    assert_eq!(device.token(&session).await.status, 401);
    // Without the device cookie there is no client at all.
    let mut bare = Device::new(&stack);
    assert_eq!(bare.token(&session).await.status, 401);
}
