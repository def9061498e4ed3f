//! Session sources `mint` and `command`, and world provisioning by Clerk
//! webhooks or a setup command, against the real things: minted tokens are
//! verified by the real `@clerk/backend` `verifyToken` (networkless with the
//! PEM, and fetching the JWKS from the mint's `/v1/jwks`), webhook deliveries
//! by its real `verifyWebhook`, commands are real processes.
//!
//! Node.js and `tests-js/node_modules` come from scripts/test.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tenantry_harness::client::{Client, Request};
use tenantry_harness::session::{CommandConfig, MintConfig, Provisioning, Sessions};
use tenantry_harness::world::{OrgSpec, UserSpec, World, WorldSpec};

const PARTY: &str = "http://localhost:3000";
const ISSUER: &str = "https://clerk.app.test";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn js_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests-js"))
}

/// A fresh scratch directory.
fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tenantry-sessions-{}-{name}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_string_lossy().into_owned()
}

/// Runs `tests-js/<script>` on `input`; its one JSON line.
async fn node(script: &str, input: Value) -> Value {
    let dir = js_dir();
    let version = tokio::process::Command::new("node")
        .arg("--version")
        .output()
        .await;
    assert!(
        matches!(&version, Ok(o) if o.status.success()),
        "node (Node.js) is not on PATH: run scripts/test, which installs it"
    );
    assert!(
        dir.join("node_modules/@clerk/backend/package.json").exists(),
        "@clerk/backend is not installed: run scripts/test (it runs `npm install` in tests-js/)"
    );
    let scratch = scratch("node");
    let file = scratch.join("input.json");
    std::fs::write(&file, input.to_string()).unwrap();
    let out = tokio::process::Command::new("node")
        .arg(dir.join(script))
        .arg(&file)
        .current_dir(&dir)
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(
        out.status.success(),
        "node {script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn spec() -> WorldSpec {
    let org = |key: &str, name: &str, slug: &str| OrgSpec {
        key: key.into(),
        name: name.into(),
        slug: slug.into(),
    };
    let user = |key: &str, memberships: &[(&str, &str)]| UserSpec {
        key: key.into(),
        email: format!("{key}@example.test"),
        memberships: memberships
            .iter()
            .map(|(o, r)| (o.to_string(), r.to_string()))
            .collect(),
    };
    WorldSpec {
        orgs: vec![org("a", "Acme", "acme"), org("b", "Globex", "globex")],
        users: vec![
            user("alice", &[("a", "org:admin")]),
            user("bob", &[("a", "org:member"), ("b", "org:admin")]),
            user("carol", &[("b", "org:member")]),
        ],
    }
}

/// A client for a target that is not there (provisioning `None`).
fn nowhere() -> Client {
    Client::new("http://127.0.0.1:9", 4, Duration::from_secs(5))
}

fn claims_of(jwt: &str) -> (Value, Value) {
    use base64::Engine;
    let part = |i: usize| -> Value {
        let text = jwt.split('.').nth(i).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text)
                .unwrap(),
        )
        .unwrap()
    };
    (part(0), part(1))
}

fn assert_clerk_id(id: &str, prefix: &str) {
    assert!(id.starts_with(prefix), "{id}");
    assert_eq!(id.len(), prefix.len() + 27, "{id}");
    assert!(
        id[prefix.len()..].chars().all(|c| c.is_ascii_alphanumeric()),
        "{id}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_tokens_verify_with_clerk_backend_by_pem_and_by_api_url() {
    let dir = scratch("mint");
    let pem_path = dir.join("clerk.pem");
    let mut config = MintConfig::new(ISSUER);
    config.azp = Some(PARTY.into());
    config.public_pem = Some(pem_path.clone());
    let mut sessions = Sessions::mint(config, nowhere()).await.unwrap();
    let world = sessions.provision(&spec()).await.unwrap();
    assert_eq!(world.orgs.len(), 2);
    for org in &world.orgs {
        assert_clerk_id(&org.id, "org_");
    }
    for user in &world.users {
        assert_clerk_id(&user.id, "user_");
    }
    assert_eq!(world.org("b").unwrap().slug, "globex");
    assert_eq!(world.role("bob", "b"), Some("org:admin"));

    let token = sessions.token(&world, "bob", Some("b")).await.unwrap();
    let (header, claims) = claims_of(&token);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");

    // The JWKS is served at both paths and names the token's key.
    let base = sessions.issuer_base().unwrap();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    assert_eq!(
        sessions.jwks_url().as_deref(),
        Some(format!("{base}/.well-known/jwks.json").as_str())
    );
    let http = reqwest::Client::new();
    let well_known: Value = http
        .get(sessions.jwks_url().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api: Value = http
        .get(format!("{base}/v1/jwks"))
        .bearer_auth("sk_test_x")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(well_known, api);
    let jwk = &well_known["keys"][0];
    assert_eq!(well_known["keys"].as_array().unwrap().len(), 1);
    assert_eq!(jwk["kid"], header["kid"]);
    assert_eq!(
        (&jwk["kty"], &jwk["use"], &jwk["alg"], &jwk["e"]),
        (&json!("RSA"), &json!("sig"), &json!("RS256"), &json!("AQAB"))
    );

    // The PEM file is the served key.
    let pem = std::fs::read_to_string(&pem_path).unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
    assert_eq!(Some(pem.as_str()), sessions.public_pem());

    let bob = world.user("bob").unwrap();
    let globex = world.org("b").unwrap();
    let check = |result: &Value| {
        assert_eq!(result["accepted"], true, "{result}");
        let c = &result["claims"];
        assert_eq!(c["sub"], bob.id.as_str());
        assert_eq!(c["sid"], claims["sid"]);
        assert!(c["sid"].as_str().unwrap().starts_with("sess_"), "{c}");
        assert_eq!(c["iss"], ISSUER);
        assert_eq!(c["azp"], PARTY);
        assert_eq!(c["v"], 2);
        assert_eq!(c["sts"], "active");
        assert_eq!(c["fva"], json!([0, -1]));
        assert_eq!(c["o"]["id"], globex.id.as_str());
        assert_eq!(c["o"]["rol"], "admin");
        assert_eq!(c["o"]["slg"], "globex");
        assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 60);
    };
    let by_pem = node(
        "verify-minted.mjs",
        json!({ "token": token, "jwt_key": pem, "authorized_parties": [PARTY] }),
    )
    .await;
    check(&by_pem);
    let by_api = node(
        "verify-minted.mjs",
        json!({ "token": token, "secret_key": "sk_test_x", "api_url": base, "authorized_parties": [PARTY] }),
    )
    .await;
    check(&by_api);

    // Clerk enforces the authorized parties.
    let elsewhere = node(
        "verify-minted.mjs",
        json!({ "token": token, "jwt_key": pem, "authorized_parties": ["https://other.example"] }),
    )
    .await;
    assert_eq!(elsewhere["accepted"], false, "{elsewhere}");

    // One session per user: the sid is stable; the role follows the world.
    let in_a = sessions.token(&world, "bob", Some("a")).await.unwrap();
    let (_, a_claims) = claims_of(&in_a);
    assert_eq!(a_claims["sid"], claims["sid"]);
    assert_eq!(a_claims["o"]["rol"], "member");
    assert_ne!(a_claims["jti"], claims["jti"]);
    let personal = sessions.token(&world, "bob", None).await.unwrap();
    assert!(claims_of(&personal).1.get("o").is_none());
    let carol = sessions.token(&world, "carol", None).await.unwrap();
    assert_ne!(claims_of(&carol).1["sid"], claims["sid"]);
    let refused = sessions.token(&world, "carol", Some("a")).await.unwrap_err();
    assert!(refused.detail.contains("not a member"), "{refused}");

    // A token signed by another mint's key is refused both ways.
    let mut other = Sessions::mint(MintConfig::new(ISSUER), nowhere()).await.unwrap();
    let other_world = other.provision(&spec()).await.unwrap();
    let forged = other.token(&other_world, "bob", Some("b")).await.unwrap();
    let forged_by_pem = node(
        "verify-minted.mjs",
        json!({ "token": forged, "jwt_key": pem, "authorized_parties": [] }),
    )
    .await;
    assert_eq!(forged_by_pem["accepted"], false, "{forged_by_pem}");
    assert_eq!(
        forged_by_pem["error"], "token-invalid-signature",
        "{forged_by_pem}"
    );
    let forged_by_api = node(
        "verify-minted.mjs",
        json!({ "token": forged, "secret_key": "sk_test_x", "api_url": base, "authorized_parties": [] }),
    )
    .await;
    assert_eq!(forged_by_api["accepted"], false, "{forged_by_api}");
    assert_eq!(forged_by_api["error"], "jwk-kid-mismatch", "{forged_by_api}");

    // The JWKS server stops with the Sessions.
    drop(sessions);
    let mut stopped = false;
    for _ in 0..50 {
        let fresh = reqwest::Client::new();
        if fresh.get(format!("{base}/v1/jwks")).send().await.is_err() {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stopped, "the JWKS server outlived its Sessions");
    let _ = std::fs::remove_dir_all(&dir);
}

/// One captured webhook delivery.
#[derive(Debug, Clone)]
struct Delivery {
    headers: HashMap<String, String>,
    body: String,
}

/// A webhook route on 127.0.0.1 that records every delivery raw
/// (`/hooks`, 204) and refuses at `/fail` (500).
async fn receiver() -> (String, Arc<Mutex<Vec<Delivery>>>) {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;

    let seen: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let record = Arc::clone(&seen);
    let app = axum::Router::new()
        .route(
            "/hooks",
            post(move |headers: HeaderMap, body: Bytes| {
                let record = Arc::clone(&record);
                async move {
                    let headers = headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                        .collect();
                    record.lock().unwrap().push(Delivery {
                        headers,
                        body: String::from_utf8(body.to_vec()).unwrap(),
                    });
                    StatusCode::NO_CONTENT
                }
            }),
        )
        .route(
            "/fail",
            post(|| async {
                // Echoes its configuration, as careless handlers do.
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("webhook handler crashed (secret {SECRET})"),
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (base, seen)
}

fn event(d: &Delivery) -> Value {
    serde_json::from_str(&d.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_provision_the_world_and_verify_with_clerk_backend() {
    let (base, seen) = receiver().await;
    let client = Client::new(&base, 4, Duration::from_secs(10));
    let mut config = MintConfig::new(ISSUER);
    config.provisioning = Provisioning::Webhooks {
        url: "/hooks".into(),
        secret: SECRET.into(),
    };
    let mut sessions = Sessions::mint(config, client.clone()).await.unwrap();
    let mut world = sessions.provision(&spec()).await.unwrap();
    let provisioned = world.clone();
    sessions.remove_member(&mut world, "bob", "a").await.unwrap();
    sessions
        .set_role(&mut world, "carol", "b", "org:admin")
        .await
        .unwrap();
    assert_eq!(world.role("bob", "a"), None);
    assert_eq!(world.role("carol", "b"), Some("org:admin"));

    let deliveries = seen.lock().unwrap().clone();
    let types: Vec<String> = deliveries
        .iter()
        .map(|d| event(d)["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "user.created",
            "user.created",
            "user.created",
            "organization.created",
            "organization.created",
            "organizationMembership.created",
            "organizationMembership.created",
            "organizationMembership.created",
            "organizationMembership.created",
            "organizationMembership.deleted",
            "organizationMembership.updated",
        ]
    );
    for d in &deliveries {
        assert!(d.headers["svix-id"].starts_with("msg_"), "{:?}", d.headers);
        assert!(d.headers["svix-signature"].starts_with("v1,"), "{:?}", d.headers);
        assert_eq!(d.headers["content-type"], "application/json");
        let e = event(d);
        assert_eq!(e["object"], "event");
        assert!(e["instance_id"].as_str().unwrap().starts_with("ins_"), "{e}");
        assert!(e["timestamp"].as_i64().unwrap() > 1_600_000_000_000, "{e}");
    }

    // The real verifier accepts every delivery and reads the same events.
    let verified = node(
        "verify-webhooks.mjs",
        json!({
            "signing_secret": SECRET,
            "deliveries": deliveries
                .iter()
                .map(|d| json!({ "headers": d.headers, "body": d.body }))
                .collect::<Vec<_>>(),
        }),
    )
    .await;
    let results = verified["results"].as_array().unwrap();
    assert_eq!(results.len(), deliveries.len());
    for (result, expected) in results.iter().zip(&types) {
        assert_eq!(result["ok"], true, "{result}");
        assert_eq!(result["type"], expected.as_str());
    }
    let tampered = verified["tampered_error"].as_str().unwrap_or_default();
    assert!(tampered.contains("Unable to verify"), "{verified}");

    // Shapes: users, orgs, memberships with the world's ids.
    let data = |i: usize| results[i]["data"].clone();
    let alice = provisioned.user("alice").unwrap();
    let user = data(0);
    assert_eq!(user["id"], alice.id.as_str());
    assert_eq!(user["object"], "user");
    assert_eq!(user["email_addresses"][0]["email_address"], "alice@example.test");
    assert_eq!(user["email_addresses"][0]["object"], "email_address");
    assert_eq!(user["primary_email_address_id"], user["email_addresses"][0]["id"]);
    assert!(user["email_addresses"][0]["id"]
        .as_str()
        .unwrap()
        .starts_with("idn_"));
    let acme = provisioned.org("a").unwrap();
    let org = data(3);
    assert_eq!(org["id"], acme.id.as_str());
    assert_eq!(org["object"], "organization");
    assert_eq!(org["slug"], "acme");
    assert_eq!(org["name"], "Acme");
    assert_eq!(org["created_by"], alice.id.as_str(), "the admin creates the org");
    assert_eq!(org["members_count"], 2);
    let bob = provisioned.user("bob").unwrap();
    let memberships: Vec<Value> = (5..9).map(data).collect();
    let bob_in_acme = memberships
        .iter()
        .find(|m| {
            m["public_user_data"]["user_id"] == bob.id.as_str() && m["organization"]["id"] == acme.id.as_str()
        })
        .unwrap();
    assert_eq!(bob_in_acme["object"], "organization_membership");
    assert_eq!(bob_in_acme["role"], "org:member");
    assert_eq!(bob_in_acme["public_user_data"]["identifier"], "bob@example.test");
    assert!(bob_in_acme["id"].as_str().unwrap().starts_with("orgmem_"));
    let deleted = data(9);
    assert_eq!(deleted["id"], bob_in_acme["id"], "the same membership is deleted");
    assert_eq!(deleted["public_user_data"]["user_id"], bob.id.as_str());
    assert_eq!(deleted["organization"]["id"], acme.id.as_str());
    assert_eq!(deleted["organization"]["members_count"], 1);
    let updated = data(10);
    assert_eq!(updated["role"], "org:admin");
    assert_eq!(
        updated["public_user_data"]["user_id"],
        provisioned.user("carol").unwrap().id.as_str()
    );

    // Changes for non-members are refused before anything is sent.
    let sent = seen.lock().unwrap().len();
    assert!(sessions.remove_member(&mut world, "bob", "a").await.is_err());
    assert_eq!(seen.lock().unwrap().len(), sent);

    // A refusing route is an error naming the event and the status, never the secret.
    let mut failing = MintConfig::new(ISSUER);
    failing.provisioning = Provisioning::Webhooks {
        url: format!("{base}/fail"),
        secret: SECRET.into(),
    };
    let mut sessions = Sessions::mint(failing, client.clone()).await.unwrap();
    let error = sessions.provision(&spec()).await.unwrap_err();
    let text = error.to_string();
    assert!(text.contains("user.created") && text.contains("500"), "{text}");
    assert!(text.contains("crashed (secret [redacted])"), "{text}");
    assert!(!text.contains("MfKQ9r8G"), "{text}");

    // A secret that is not whsec_… is refused up front.
    let mut bad = MintConfig::new(ISSUER);
    bad.provisioning = Provisioning::Webhooks {
        url: "/hooks".into(),
        secret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
    };
    let error = Sessions::mint(bad, client).await.unwrap_err();
    assert_eq!(error.step, "webhook secret");
    assert!(!error.to_string().contains("MfKQ9r8G"), "{error}");
}

#[tokio::test]
async fn token_commands_get_ids_in_arguments_and_environment() {
    let dir = scratch("command");
    let token_sh = script(
        &dir,
        "token.sh",
        r#"printf 'tok.%s.%s.%s.%s.%s|%s|%s|%s|%s|%s\n' "$TENANTRY_USER_ID" "$TENANTRY_USER_EMAIL" "$TENANTRY_ORG_ID" "$TENANTRY_ORG_SLUG" "$TENANTRY_ORG_ROLE" "$1" "$2" "$3" "$4" "$5""#,
    );
    let config = CommandConfig {
        argv: vec![
            token_sh.clone(),
            "{{ user_id }}".into(),
            "email={{user_email}}".into(),
            "{{ org_id }}".into(),
            "{{ org_slug }}".into(),
            "{{ role }}".into(),
        ],
        timeout: Duration::from_secs(10),
        provisioning: Provisioning::None,
    };
    let client = nowhere();
    let mut sessions = Sessions::command(config.clone(), client.clone()).unwrap();
    assert_eq!(sessions.issuer_base(), None);
    let world = sessions.provision(&spec()).await.unwrap();
    let bob = world.user("bob").unwrap();
    let globex = world.org("b").unwrap();
    assert_clerk_id(&bob.id, "user_");
    assert_clerk_id(&globex.id, "org_");

    let token = sessions.token(&world, "bob", Some("b")).await.unwrap();
    assert_eq!(
        token,
        format!(
            "tok.{id}.bob@example.test.{org}.globex.org:admin|{id}|email=bob@example.test|{org}|globex|org:admin",
            id = bob.id,
            org = globex.id
        )
    );
    let personal = sessions.token(&world, "bob", None).await.unwrap();
    assert_eq!(
        personal,
        format!(
            "tok.{id}.bob@example.test...|{id}|email=bob@example.test|||",
            id = bob.id
        )
    );

    // Tokens are redacted from transcripts.
    let reply = client
        .send(Request::new("GET", "/api/me").header("x-session", token.clone()))
        .await;
    assert!(
        reply.transcript.contains("x-session: [redacted]"),
        "{}",
        reply.transcript
    );
    assert!(!reply.transcript.contains(&token));

    // A failing command: its name and stderr, never its stdout.
    let fail_sh = script(
        &dir,
        "fail.sh",
        "echo tok-LEAKED-by-a-failing-command; echo 'boom: bad credentials' >&2; exit 3",
    );
    let mut failing = Sessions::command(
        CommandConfig {
            argv: vec![fail_sh.clone()],
            ..config.clone()
        },
        nowhere(),
    )
    .unwrap();
    let error = failing.token(&world, "bob", Some("a")).await.unwrap_err();
    assert_eq!(error.step, "token command");
    assert!(error.detail.contains(&fail_sh), "{error}");
    assert!(error.detail.contains("boom: bad credentials"), "{error}");
    assert!(error.detail.contains('3'), "{error}");
    assert!(!error.to_string().contains("LEAKED"), "{error}");

    // Empty output, a timeout, an unknown placeholder, a missing program.
    let empty_sh = script(&dir, "empty.sh", "echo '   '");
    let mut empty = Sessions::command(
        CommandConfig {
            argv: vec![empty_sh],
            ..config.clone()
        },
        nowhere(),
    )
    .unwrap();
    let error = empty.token(&world, "bob", None).await.unwrap_err();
    assert!(error.detail.contains("printed nothing"), "{error}");
    let slow_sh = script(&dir, "slow.sh", "exec sleep 30");
    let mut slow = Sessions::command(
        CommandConfig {
            argv: vec![slow_sh],
            timeout: Duration::from_millis(300),
            ..config.clone()
        },
        nowhere(),
    )
    .unwrap();
    let error = slow.token(&world, "bob", None).await.unwrap_err();
    assert!(error.detail.contains("did not finish"), "{error}");
    let mut unknown = Sessions::command(
        CommandConfig {
            argv: vec![token_sh, "{{ org_name }}".into()],
            ..config.clone()
        },
        nowhere(),
    )
    .unwrap();
    let error = unknown.token(&world, "bob", None).await.unwrap_err();
    assert!(error.detail.contains("org_name"), "{error}");
    let mut missing = Sessions::command(
        CommandConfig {
            argv: vec![dir.join("nope.sh").to_string_lossy().into_owned()],
            ..config.clone()
        },
        nowhere(),
    )
    .unwrap();
    let error = missing.token(&world, "bob", None).await.unwrap_err();
    assert!(error.detail.contains("could not start"), "{error}");
    assert!(Sessions::command(
        CommandConfig {
            argv: vec![],
            ..config
        },
        nowhere()
    )
    .is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

fn expected_world_json(world: &World) -> Value {
    json!({
        "orgs": world.orgs.iter().map(|o| json!({
            "key": o.key, "id": o.id, "slug": o.slug, "name": o.name,
        })).collect::<Vec<_>>(),
        "users": world.users.iter().map(|u| json!({
            "key": u.key, "id": u.id, "email": u.email,
            "memberships": u.memberships.iter().map(|(org, role)| json!({
                "org": org, "org_id": world.org(org).unwrap().id, "role": role,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

#[tokio::test]
async fn setup_commands_receive_the_world_on_stdin() {
    let dir = scratch("setup");
    let setup_sh = script(&dir, "setup.sh", r#"cat > "$1""#);
    let out = dir.join("world.json");
    let token_sh = script(&dir, "token.sh", "echo static-token-for-tests");
    let mut sessions = Sessions::command(
        CommandConfig {
            argv: vec![token_sh],
            timeout: Duration::from_secs(10),
            provisioning: Provisioning::Command {
                argv: vec![setup_sh, out.to_string_lossy().into_owned()],
                timeout: Duration::from_secs(10),
            },
        },
        nowhere(),
    )
    .unwrap();
    let mut world = sessions.provision(&spec()).await.unwrap();
    let read = || -> Value { serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap() };
    let written = read();
    assert_eq!(written, expected_world_json(&world));
    assert_eq!(
        written["users"][1]["memberships"][1]["org_id"],
        world.org("b").unwrap().id.as_str()
    );
    assert_eq!(written["users"][1]["memberships"][1]["role"], "org:admin");

    // Membership changes run it again with the updated world.
    sessions.remove_member(&mut world, "bob", "a").await.unwrap();
    let written = read();
    assert_eq!(written, expected_world_json(&world));
    assert_eq!(written["users"][1]["memberships"].as_array().unwrap().len(), 1);
    sessions
        .set_role(&mut world, "carol", "b", "org:admin")
        .await
        .unwrap();
    assert_eq!(read()["users"][2]["memberships"][0]["role"], "org:admin");

    // A failing setup command: the error quotes its stderr.
    let broken_sh = script(
        &dir,
        "broken.sh",
        "cat > /dev/null; echo 'no database' >&2; exit 2",
    );
    let mut broken = Sessions::mint(
        MintConfig {
            provisioning: Provisioning::Command {
                argv: vec![broken_sh.clone()],
                timeout: Duration::from_secs(10),
            },
            ..MintConfig::new(ISSUER)
        },
        nowhere(),
    )
    .await
    .unwrap();
    let error = broken.provision(&spec()).await.unwrap_err();
    assert_eq!(error.step, "setup command");
    assert!(
        error.detail.contains(&broken_sh) && error.detail.contains("no database"),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
