//! Prints a fresh RSA public key (PEM) and a v2 session token signed with it,
//! as JSON, for checking the token format with third-party verifiers such as
//! `@clerk/backend`'s networkless `verifyToken(token, { jwtKey })`.
//!
//! `cargo run -p tenantry-reference --example mint_session_token`

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tenantry_reference::identity::keys::KeyRing;
use tenantry_reference::identity::permissions;
use tenantry_reference::identity::token::{mint, OrgClaim, SessionClaims};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let ring = KeyRing::new(Duration::from_secs(120))?;
    let key = ring.active();
    let encoded = permissions::encode(&["org:projects:read".into(), "org:projects:write".into()])?;
    let claims = SessionClaims {
        sub: "user_example".into(),
        sid: Some("sess_example".into()),
        iss: "https://clerk.tenantry.test".into(),
        azp: Some("http://localhost:3000".into()),
        exp: now + 60,
        iat: now,
        nbf: now - 5,
        jti: "jti_example".into(),
        v: 2,
        sts: "active".into(),
        fva: Some([0, -1]),
        o: Some(OrgClaim {
            id: "org_example".into(),
            slg: "example".into(),
            rol: "admin".into(),
            per: Some(encoded.per),
            fpm: Some(encoded.fpm),
        }),
        fea: Some(encoded.fea),
    };
    let token = mint(&key, &claims)?;
    println!(
        "{}",
        serde_json::json!({ "token": token, "public_pem": key.public_pem(), "kid": key.kid() })
    );
    Ok(())
}
