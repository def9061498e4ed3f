//! Tokens: a fixed RSA test key (so committed seed tokens stay valid), the
//! verifier configured as the reference stack does, signing helpers, and a
//! reference model of what the verifier may accept.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{Map, Value};
use tenantry_reference::identity::keys::{KeyRing, SigningKey};
use tenantry_reference::identity::token::{mint, SessionClaims, Verifier, VerifierConfig};

/// The verification time of every target.
pub const NOW: i64 = 1_800_000_000;
/// The issuer the verifier expects.
pub const ISSUER: &str = "https://clerk.tenantry.fuzz";
/// The only authorized party.
pub const PARTY: &str = "http://localhost:3000";
/// The test key's id.
pub const KID: &str = "ins_fuzz_test_key";
/// Leeway on time claims (the verifier's maximum).
pub const LEEWAY: i64 = 5;

/// A test-only RSA-2048 key (PKCS#8 DER), committed so seeds verify.
const TEST_KEY: &[u8] = include_bytes!("../keys/test-rsa2048.pk8");
/// Another key, never trusted: what an attacker signs with.
const OTHER_KEY: &[u8] = include_bytes!("../keys/other-rsa2048.pk8");

/// The key ring, verifier and keys every token target shares.
pub struct Setup {
    /// The verifier under test (trusts only the test key).
    pub verifier: Verifier,
    /// The test key.
    pub key: Arc<SigningKey>,
    /// An untrusted key with the same `kid`.
    pub other: SigningKey,
    /// The test key's public key, loaded independently of the ring.
    pub public: DecodingKey,
    /// The test key's public PEM as an HMAC secret (RS→HS confusion).
    pub hs_confusion: EncodingKey,
    /// A valid session token.
    pub valid: String,
}

/// The shared setup, built once per process.
pub fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let key = SigningKey::from_pkcs8(KID.into(), TEST_KEY).expect("the test key loads");
        let other = SigningKey::from_pkcs8(KID.into(), OTHER_KEY).expect("the other key loads");
        let public = DecodingKey::from_rsa_pem(key.public_pem().as_bytes()).expect("public pem");
        let hs_confusion = EncodingKey::from_secret(key.public_pem().as_bytes());
        let ring = Arc::new(KeyRing::with_key(key, Duration::from_secs(3600)));
        let verifier = Verifier::new(
            Arc::clone(&ring),
            VerifierConfig {
                issuer: ISSUER.into(),
                authorized_parties: vec![PARTY.into()],
                leeway_secs: LEEWAY,
            },
        );
        let key = ring.active();
        let valid = mint(&key, &valid_claims()).expect("mint");
        Setup {
            verifier,
            key,
            other,
            public,
            hs_confusion,
            valid,
        }
    })
}

/// The claims of the valid token: a member's session in `org_a`.
pub fn valid_claims() -> SessionClaims {
    let mut claims = SessionClaims::session(ISSUER, "user_fuzz", "sess_fuzz", NOW - 10, 60)
        .in_org("org_a", "acme", "org:admin", &["org:projects:read".into()])
        .expect("permissions encode")
        .for_party(PARTY);
    claims.jti = "jti_fuzz".into();
    claims
}

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `message.signature` with RS256 under `key`.
pub fn sign_rs256(message: &str, key: &EncodingKey) -> String {
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, Algorithm::RS256).expect("sign");
    format!("{message}.{signature}")
}

/// `message.signature` with HS256 under `key`.
pub fn sign_hs256(message: &str, key: &EncodingKey) -> String {
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, Algorithm::HS256).expect("sign");
    format!("{message}.{signature}")
}

/// Whether `signature` is an RS256 signature of `message` by the test key,
/// checked without the key ring or the verifier.
pub fn signed_by_test_key(message: &str, signature: &str) -> bool {
    jsonwebtoken::crypto::verify(signature, message.as_bytes(), &setup().public, Algorithm::RS256)
        .unwrap_or(false)
}

fn json_part(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// Why the model refuses a token (for assertion messages).
pub type Refusal = &'static str;

/// The reference model of the verifier's documented rules: RS256 only, no
/// key-carrying headers, the test `kid`, a signature by the test key, and
/// every claim that matters with its JSON type. `Ok` carries the payload.
pub fn model(token: &str) -> Result<Map<String, Value>, Refusal> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err("not three parts");
    };
    let header = json_part(header).ok_or("header not a JSON object")?;
    if header.get("alg") != Some(&Value::String("RS256".into())) {
        return Err("alg");
    }
    if ["jwk", "jku", "x5u", "x5c", "crit"]
        .iter()
        .any(|h| header.contains_key(*h))
    {
        return Err("key-carrying header");
    }
    if header.get("kid") != Some(&Value::String(KID.into())) {
        return Err("kid");
    }
    let message = &token[..token.len() - signature.len() - 1];
    if !signed_by_test_key(message, signature) {
        return Err("signature");
    }
    let claims = json_part(payload).ok_or("payload not a JSON object")?;
    claims_ok(&claims)?;
    Ok(claims)
}

/// The claim rules alone.
pub fn claims_ok(claims: &Map<String, Value>) -> Result<(), Refusal> {
    let int = |name| {
        claims
            .get(name)
            .and_then(Value::as_i64)
            .filter(|_| claims[name].is_i64() || claims[name].is_u64())
    };
    let text = |name| claims.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
    let (Some(exp), Some(nbf), Some(iat)) = (int("exp"), int("nbf"), int("iat")) else {
        return Err("time claim type");
    };
    if (NOW as i128) > exp as i128 + LEEWAY as i128 {
        return Err("expired");
    }
    if nbf as i128 > (NOW + LEEWAY) as i128 || iat as i128 > (NOW + LEEWAY) as i128 {
        return Err("not yet valid");
    }
    if text("iss") != Some(ISSUER) {
        return Err("iss");
    }
    if claims.get("azp").and_then(Value::as_str) != Some(PARTY) {
        return Err("azp");
    }
    if text("sid").is_none() {
        return Err("sid");
    }
    if int("v") != Some(2) {
        return Err("v");
    }
    if claims.get("sts").and_then(Value::as_str) != Some("active") {
        return Err("sts");
    }
    if text("sub").is_none() {
        return Err("sub");
    }
    Ok(())
}

/// The bytes of a base64url part of a token this module made.
pub fn decode_part(part: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(part).expect("a part we encoded")
}
