//! Prints a fresh RSA public key (PEM) and a v2 session token signed with it,
//! as JSON, for checking the token format with third-party verifiers such as
//! `@clerk/backend`'s networkless `verifyToken(token, { jwtKey })`.
//!
//! `cargo run -p tenantry-reference --example mint_session_token`

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tenantry_reference::identity::keys::KeyRing;
use tenantry_reference::identity::token::{mint, SessionClaims};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let ring = KeyRing::new(Duration::from_secs(120))?;
    let key = ring.active();
    let claims = SessionClaims::session(
        "https://clerk.tenantry.test",
        "user_example",
        "sess_example",
        now,
        60,
    )
    .in_org(
        "org_example",
        "example",
        "org:admin",
        &["org:projects:read".into(), "org:projects:write".into()],
    )?
    .for_party("http://localhost:3000");
    let token = mint(&key, &claims)?;
    println!(
        "{}",
        serde_json::json!({ "token": token, "public_pem": key.public_pem(), "kid": key.kid() })
    );
    Ok(())
}
