//! Clerk v2 session tokens: minting and verification.
//!
//! Verification is the tenancy boundary's first step, so it is strict and
//! every refusal has a typed reason: RS256 only (checked on the raw header,
//! before any key is chosen), a known `kid` (no key is ever taken from the
//! token: `jwk`, `jku`, `x5u`, `x5c` and `crit` headers are refused outright),
//! the signature, then every claim with its exact JSON type — `exp`/`nbf`/`iat`
//! with a leeway of at most 5 s, `iss` exact, `azp` on the allow-list (and
//! required when the list is set), `sid` present (template tokens have none),
//! `v` = 2, `sts` = `active`.

use std::sync::Arc;

use base64::Engine;
use jsonwebtoken::{Algorithm, Header};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::keys::{KeyRing, SigningKey};
use super::permissions;

/// Most leeway the verifier grants on time claims.
pub const MAX_LEEWAY_SECS: i64 = crate::config::AuthConfig::MAX_LEEWAY_SECS;

/// The `o` claim: the active organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgClaim {
    /// Org id (`org_…`).
    pub id: String,
    /// Org slug.
    pub slg: String,
    /// Role without the `org:` prefix (`admin`, `member`, custom).
    pub rol: String,
    /// Permission names (see [`permissions`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per: Option<String>,
    /// Feature permission bitmasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fpm: Option<String>,
}

/// The claims of a v2 session token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// User id.
    pub sub: String,
    /// Session id; absent on template tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Issuer.
    pub iss: String,
    /// Authorized party (the origin that asked for the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Token id.
    pub jti: String,
    /// Claims version: 2.
    pub v: i64,
    /// Session status: `active` or `pending`.
    pub sts: String,
    /// Minutes since the first and second factor verification (-1: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fva: Option<[i64; 2]>,
    /// The active organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub o: Option<OrgClaim>,
    /// Features with scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fea: Option<String>,
}

impl SessionClaims {
    /// The claims of an active session's token for `user_id` in session
    /// `session_id`, issued at `now`, valid for `lifetime_secs`, with no
    /// active org (personal account) until [`SessionClaims::in_org`].
    pub fn session(issuer: &str, user_id: &str, session_id: &str, now: i64, lifetime_secs: i64) -> Self {
        Self {
            sub: user_id.into(),
            sid: Some(session_id.into()),
            iss: issuer.into(),
            azp: None,
            exp: now + lifetime_secs,
            iat: now,
            nbf: now - MAX_LEEWAY_SECS,
            jti: crate::ids::new_id(crate::ids::IdKind::TokenId),
            v: 2,
            sts: "active".into(),
            fva: Some([0, -1]),
            o: None,
            fea: None,
        }
    }

    /// Makes `org` the active org, with Clerk's role key (`org:admin`) and
    /// `org:<feature>:<perm>` permissions encoded as v2 does.
    pub fn in_org(
        mut self,
        id: &str,
        slug: &str,
        role_key: &str,
        permissions: &[String],
    ) -> Result<Self, permissions::PermissionError> {
        let encoded = permissions::encode(permissions)?;
        let rol = role_key.strip_prefix("org:").unwrap_or(role_key);
        self.o = Some(OrgClaim {
            id: id.into(),
            slg: slug.into(),
            rol: rol.into(),
            per: (!encoded.per.is_empty()).then_some(encoded.per),
            fpm: (!encoded.fpm.is_empty()).then_some(encoded.fpm),
        });
        self.fea = (!encoded.fea.is_empty()).then_some(encoded.fea);
        Ok(self)
    }

    /// Sets the authorized party (the origin that asked for the token).
    pub fn for_party(mut self, azp: &str) -> Self {
        self.azp = Some(azp.into());
        self
    }

    /// The org permissions these claims grant (`org:<feature>:<perm>`).
    pub fn org_permissions(&self) -> Vec<String> {
        match &self.o {
            Some(o) => permissions::decode(
                self.fea.as_deref().unwrap_or_default(),
                o.per.as_deref().unwrap_or_default(),
                o.fpm.as_deref().unwrap_or_default(),
            ),
            None => Vec::new(),
        }
    }

    /// The org role as Clerk's key (`org:admin`).
    pub fn org_role(&self) -> Option<String> {
        self.o.as_ref().map(|o| format!("org:{}", o.rol))
    }
}

/// Why a token was refused. Every variant maps to 401 at the proxy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejected {
    /// Not three base64url parts of JSON.
    #[error("the token is malformed")]
    Malformed,
    /// The header names an algorithm other than RS256 (or none).
    #[error("algorithm `{0}` is not allowed")]
    AlgorithmNotAllowed(String),
    /// The header carries a key, a key URL or critical extensions.
    #[error("header `{0}` is not accepted")]
    ForbiddenHeader(&'static str),
    /// No `kid`, or one we do not know.
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// A claim is missing or has the wrong JSON type.
    #[error("claim `{0}` is missing or has the wrong type")]
    BadClaim(&'static str),
    /// `exp` is past (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("the token was issued in the future")]
    IssuedInFuture,
    /// `iss` is not ours.
    #[error("foreign issuer")]
    WrongIssuer,
    /// `azp` is missing while an allow-list is set.
    #[error("authorized party missing")]
    MissingAuthorizedParty,
    /// `azp` is not on the allow-list.
    #[error("authorized party not allowed")]
    AuthorizedPartyNotAllowed,
    /// No `sid`: a JWT-template token, never a session token.
    #[error("not a session token")]
    NotASessionToken,
    /// `v` is not 2.
    #[error("unsupported claims version")]
    UnsupportedVersion,
    /// `sts` is not `active` (e.g. `pending`).
    #[error("the session is not active")]
    SessionNotActive,
}

/// What the verifier checks claims against.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// The exact `iss`.
    pub issuer: String,
    /// Allowed `azp` values; empty means `azp` is not checked.
    pub authorized_parties: Vec<String>,
    /// Leeway on time claims, clamped to 0..=5 s.
    pub leeway_secs: i64,
}

/// Verifies session tokens against a key ring.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Arc<KeyRing>,
    config: VerifierConfig,
    #[cfg(feature = "inject")]
    flaws: crate::inject::Flaws,
}

/// The `kid` a token's header names, read without verifying anything.
pub fn header_kid(token: &str) -> Option<String> {
    let header = b64_json(token.split('.').next()?).ok()?;
    header.get("kid")?.as_str().map(String::from)
}

/// The length of `.signature` at the end of a three-part token.
fn signature_text_len(token: &str) -> usize {
    token.rfind('.').map_or(0, |dot| token.len() - dot)
}

/// The payload as a JSON object whose members are all distinct: a claim
/// given twice is refused, not resolved first-wins or last-wins, since two
/// readers of one token must never see different claims.
fn claims_object(part: &str) -> Result<Value, TokenRejected> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenRejected::Malformed)?;
    let DistinctObject(map) = serde_json::from_slice(&bytes).map_err(|_| TokenRejected::Malformed)?;
    Ok(Value::Object(map))
}

/// A JSON object, refused when a member name repeats.
struct DistinctObject(serde_json::Map<String, Value>);

impl<'de> Deserialize<'de> for DistinctObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = DistinctObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object with distinct member names")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut map = serde_json::Map::new();
                while let Some((name, value)) = access.next_entry::<String, Value>()? {
                    if map.contains_key(&name) {
                        return Err(serde::de::Error::custom(format!("member `{name}` repeats")));
                    }
                    map.insert(name, value);
                }
                Ok(DistinctObject(map))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

fn b64_json(part: &str) -> Result<Value, TokenRejected> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenRejected::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenRejected::Malformed)
}

impl Verifier {
    /// A verifier over `keys`.
    pub fn new(keys: Arc<KeyRing>, mut config: VerifierConfig) -> Self {
        config.leeway_secs = config.leeway_secs.clamp(0, MAX_LEEWAY_SECS);
        Self {
            keys,
            config,
            #[cfg(feature = "inject")]
            flaws: crate::inject::Flaws::none(),
        }
    }

    /// Injects flaws.
    #[cfg(feature = "inject")]
    pub fn with_flaws(mut self, flaws: crate::inject::Flaws) -> Self {
        self.flaws = flaws;
        self
    }

    /// Verifies `token` at `now` (seconds since the epoch).
    pub fn verify(&self, token: &str, now: i64) -> Result<SessionClaims, TokenRejected> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenRejected::Malformed);
        };
        if header.is_empty() || payload.is_empty() {
            return Err(TokenRejected::Malformed);
        }
        let header = b64_json(header)?;
        let header = header.as_object().ok_or(TokenRejected::Malformed)?;
        #[cfg(feature = "inject")]
        if let Some(claims) = self.flawed_algorithms(header, token, payload)? {
            return self.check_claims(claims, now);
        }
        if signature.is_empty() {
            return Err(TokenRejected::Malformed);
        }
        match header.get("alg") {
            Some(Value::String(alg)) if alg == "RS256" => {}
            Some(Value::String(alg)) => return Err(TokenRejected::AlgorithmNotAllowed(alg.clone())),
            _ => return Err(TokenRejected::AlgorithmNotAllowed(String::new())),
        }
        for forbidden in ["jwk", "jku", "x5u", "x5c", "crit"] {
            if header.contains_key(forbidden) {
                return Err(TokenRejected::ForbiddenHeader(forbidden));
            }
        }
        let key = match header.get("kid") {
            Some(Value::String(kid)) => self.keys.find(kid).ok_or(TokenRejected::UnknownKey)?,
            _ => return Err(TokenRejected::UnknownKey),
        };
        // The signature over exactly the received `header.payload` bytes,
        // with the key parsed once; only then is the payload decoded.
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenRejected::Malformed)?;
        let signed = &token[..token.len() - signature_text_len(token)];
        if !key.verifies_rs256(signed.as_bytes(), &signature) {
            return Err(TokenRejected::BadSignature);
        }
        self.check_claims(claims_object(payload)?, now)
    }

    /// `jwt-alg-none` and `jwt-hs256-confusion`: the classic ways a verifier
    /// lets the token choose how it is checked.
    #[cfg(feature = "inject")]
    fn flawed_algorithms(
        &self,
        header: &serde_json::Map<String, Value>,
        token: &str,
        payload: &str,
    ) -> Result<Option<Value>, TokenRejected> {
        use crate::inject::Flaw;
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or_default();
        if self.flaws.has(Flaw::JwtAlgNone) && alg.eq_ignore_ascii_case("none") {
            return b64_json(payload).map(Some);
        }
        if self.flaws.has(Flaw::JwtHs256Confusion) && alg == "HS256" {
            let key = jsonwebtoken::DecodingKey::from_secret(self.keys.active().public_pem().as_bytes());
            let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
            validation.required_spec_claims.clear();
            validation.validate_exp = false;
            validation.validate_nbf = false;
            validation.validate_aud = false;
            return jsonwebtoken::decode::<Value>(token, &key, &validation)
                .map(|data| Some(data.claims))
                .map_err(|_| TokenRejected::BadSignature);
        }
        Ok(None)
    }

    /// The time claims at `now`, within the leeway: what changes between two
    /// checks of one token (a cache of verified tokens re-runs only this).
    pub fn check_times(&self, exp: i64, nbf: i64, iat: i64, now: i64) -> Result<(), TokenRejected> {
        let leeway = self.config.leeway_secs;
        if now > exp.saturating_add(leeway) && !flaw!(self.flaws, JwtSkipExp) {
            return Err(TokenRejected::Expired);
        }
        if nbf > now.saturating_add(leeway) {
            return Err(TokenRejected::NotYetValid);
        }
        if iat > now.saturating_add(leeway) {
            return Err(TokenRejected::IssuedInFuture);
        }
        Ok(())
    }

    /// Whether the ring still holds the key `kid` (rotated-out keys leave it
    /// after the overlap).
    pub fn knows_key(&self, kid: &str) -> bool {
        self.keys.find(kid).is_some()
    }

    fn check_claims(&self, claims: Value, now: i64) -> Result<SessionClaims, TokenRejected> {
        let object = claims.as_object().ok_or(TokenRejected::Malformed)?;
        let int = |name: &'static str| match object.get(name) {
            Some(Value::Number(n)) => n.as_i64().ok_or(TokenRejected::BadClaim(name)),
            _ => Err(TokenRejected::BadClaim(name)),
        };
        let text = |name: &'static str| match object.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(TokenRejected::BadClaim(name)),
        };
        self.check_times(int("exp")?, int("nbf")?, int("iat")?, now)?;
        if text("iss")? != self.config.issuer {
            return Err(TokenRejected::WrongIssuer);
        }
        if !self.config.authorized_parties.is_empty() && !flaw!(self.flaws, JwtIgnoreAzp) {
            match object.get("azp") {
                None | Some(Value::Null) => return Err(TokenRejected::MissingAuthorizedParty),
                Some(Value::String(azp)) if self.config.authorized_parties.iter().any(|a| a == azp) => {}
                Some(_) => return Err(TokenRejected::AuthorizedPartyNotAllowed),
            }
        }
        match object.get("sid") {
            Some(Value::String(s)) if !s.is_empty() => {}
            None if flaw!(self.flaws, TemplateTokenAsSession) => {}
            None => return Err(TokenRejected::NotASessionToken),
            Some(_) => return Err(TokenRejected::BadClaim("sid")),
        }
        if int("v")? != 2 {
            return Err(TokenRejected::UnsupportedVersion);
        }
        if text("sts")? != "active" {
            return Err(TokenRejected::SessionNotActive);
        }
        text("sub")?;
        // The typed view; any remaining type error (e.g. `o` not an object) refuses.
        serde_json::from_value::<SessionClaims>(claims).map_err(|_| TokenRejected::BadClaim("o"))
    }
}

/// Signs `claims` with the ring's active key (RS256, `kid` set).
pub fn mint(key: &SigningKey, claims: &SessionClaims) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid().to_string());
    header.typ = Some("JWT".into());
    jsonwebtoken::encode(&header, claims, key.encoding_key())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn claims() -> SessionClaims {
        let mut claims = SessionClaims::session("https://clerk.tenantry.test", "user_1", "sess_1", NOW, 60)
            .in_org(
                "org_a",
                "acme",
                "org:admin",
                &["org:projects:read".into(), "org:projects:write".into()],
            )
            .unwrap()
            .for_party("http://localhost:3000");
        claims.jti = "jti_1".into();
        claims
    }

    fn setup() -> (Arc<KeyRing>, Verifier) {
        let ring = Arc::new(KeyRing::new(Duration::from_secs(120)).unwrap());
        let verifier = Verifier::new(
            Arc::clone(&ring),
            VerifierConfig {
                issuer: "https://clerk.tenantry.test".into(),
                authorized_parties: vec!["http://localhost:3000".into()],
                leeway_secs: 60, // clamped to 5
            },
        );
        (ring, verifier)
    }

    fn b64(value: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    /// Re-signs `payload` with `header` using the ring's active key.
    fn sign_raw(ring: &KeyRing, header: &Value, payload: &Value) -> String {
        let key = ring.active();
        let message = format!("{}.{}", b64(header), b64(payload));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), key.encoding_key(), Algorithm::RS256).unwrap();
        format!("{message}.{signature}")
    }

    fn header(ring: &KeyRing) -> Value {
        serde_json::json!({ "alg": "RS256", "typ": "JWT", "kid": ring.active().kid() })
    }

    #[test]
    fn a_minted_token_verifies_with_its_claims_and_permissions() {
        let (ring, verifier) = setup();
        let token = mint(&ring.active(), &claims()).unwrap();
        let verified = verifier.verify(&token, NOW).unwrap();
        assert_eq!(verified, claims());
        assert_eq!(verified.org_role().as_deref(), Some("org:admin"));
        let mut perms = verified.org_permissions();
        perms.sort();
        assert_eq!(perms, vec!["org:projects:read", "org:projects:write"]);
    }

    #[test]
    fn tokens_signed_before_a_rotation_verify_during_the_overlap() {
        let (ring, verifier) = setup();
        let token = mint(&ring.active(), &claims()).unwrap();
        ring.rotate().unwrap();
        assert!(verifier.verify(&token, NOW).is_ok());
        let fresh = mint(&ring.active(), &claims()).unwrap();
        assert!(verifier.verify(&fresh, NOW).is_ok());
    }

    /// The signature covers the exact received bytes; a claim given twice
    /// is refused even when validly signed; a signature that is not
    /// base64url is malformed, not merely bad.
    #[test]
    fn the_signature_covers_the_received_bytes_and_claims_are_distinct() {
        let (ring, verifier) = setup();
        let key = ring.active();
        let sign_text = |payload: &str| {
            let h = b64(&header(&ring));
            let p = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload);
            let message = format!("{h}.{p}");
            let signature =
                jsonwebtoken::crypto::sign(message.as_bytes(), key.encoding_key(), Algorithm::RS256).unwrap();
            format!("{message}.{signature}")
        };
        let good = serde_json::to_string(&claims()).unwrap();
        let token = sign_text(&good);
        assert!(verifier.verify(&token, NOW).is_ok());
        // `sub` twice, the second naming another user: signed, still refused.
        let doubled = format!("{},\"sub\":\"user_2\"}}", good.trim_end_matches('}'));
        assert_eq!(
            verifier.verify(&sign_text(&doubled), NOW),
            Err(TokenRejected::Malformed)
        );
        // A valid signature moved onto other claims does not verify.
        let (_, signature) = token.rsplit_once('.').unwrap();
        let other = sign_text(&good.replace("user_1", "user_2"));
        let (signed, _) = other.rsplit_once('.').unwrap();
        assert_eq!(
            verifier.verify(&format!("{signed}.{signature}"), NOW),
            Err(TokenRejected::BadSignature)
        );
        // Padding or standard-alphabet characters in the signature are not base64url.
        assert_eq!(
            verifier.verify(&format!("{token}="), NOW),
            Err(TokenRejected::Malformed)
        );
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let standard = signature.replace('-', "+").replace('_', "/");
        if standard != signature {
            assert_eq!(
                verifier.verify(&format!("{signed}.{standard}"), NOW),
                Err(TokenRejected::Malformed)
            );
        }
    }

    #[test]
    fn every_refusal_has_its_reason() {
        let (ring, verifier) = setup();
        let good = serde_json::to_value(claims()).unwrap();
        let with = |f: &dyn Fn(&mut Value)| {
            let mut p = good.clone();
            f(&mut p);
            sign_raw(&ring, &header(&ring), &p)
        };
        let cases: Vec<(String, TokenRejected)> = vec![
            ("abc".into(), TokenRejected::Malformed),
            ("a.b.c.d".into(), TokenRejected::Malformed),
            (
                format!("{}.{}.", b64(&header(&ring)), b64(&good)),
                TokenRejected::Malformed,
            ),
            (
                format!(
                    "{}.{}.sig",
                    b64(&serde_json::json!({ "alg": "none" })),
                    b64(&good)
                ),
                TokenRejected::AlgorithmNotAllowed("none".into()),
            ),
            (
                format!(
                    "{}.{}.sig",
                    b64(&serde_json::json!({ "alg": "HS256", "kid": ring.active().kid() })),
                    b64(&good)
                ),
                TokenRejected::AlgorithmNotAllowed("HS256".into()),
            ),
            (
                format!("{}.{}.sig", b64(&serde_json::json!({ "typ": "JWT" })), b64(&good)),
                TokenRejected::AlgorithmNotAllowed(String::new()),
            ),
            (
                sign_raw(
                    &ring,
                    &serde_json::json!({ "alg": "RS256", "kid": ring.active().kid(), "jku": "http://127.0.0.1:1/jwks" }),
                    &good,
                ),
                TokenRejected::ForbiddenHeader("jku"),
            ),
            (
                sign_raw(
                    &ring,
                    &serde_json::json!({ "alg": "RS256", "kid": ring.active().kid(), "jwk": {} }),
                    &good,
                ),
                TokenRejected::ForbiddenHeader("jwk"),
            ),
            (
                sign_raw(
                    &ring,
                    &serde_json::json!({ "alg": "RS256", "kid": ring.active().kid(), "crit": ["x"] }),
                    &good,
                ),
                TokenRejected::ForbiddenHeader("crit"),
            ),
            (
                sign_raw(
                    &ring,
                    &serde_json::json!({ "alg": "RS256", "kid": "../../etc/passwd" }),
                    &good,
                ),
                TokenRejected::UnknownKey,
            ),
            (with(&|p| p["exp"] = (NOW - 6).into()), TokenRejected::Expired),
            (
                with(&|p| p["exp"] = "never".into()),
                TokenRejected::BadClaim("exp"),
            ),
            (with(&|p| p["nbf"] = (NOW + 6).into()), TokenRejected::NotYetValid),
            (
                with(&|p| p["iat"] = (NOW + 6).into()),
                TokenRejected::IssuedInFuture,
            ),
            (
                with(&|p| p["iss"] = "https://evil.example".into()),
                TokenRejected::WrongIssuer,
            ),
            (
                with(&|p| p["iss"] = serde_json::json!(["https://clerk.tenantry.test"])),
                TokenRejected::BadClaim("iss"),
            ),
            (
                with(&|p| p["azp"] = "http://evil.example".into()),
                TokenRejected::AuthorizedPartyNotAllowed,
            ),
            (
                with(&|p| {
                    p.as_object_mut().unwrap().remove("azp");
                }),
                TokenRejected::MissingAuthorizedParty,
            ),
            (
                with(&|p| {
                    p.as_object_mut().unwrap().remove("sid");
                }),
                TokenRejected::NotASessionToken,
            ),
            (with(&|p| p["v"] = 1.into()), TokenRejected::UnsupportedVersion),
            (
                with(&|p| p["sts"] = "pending".into()),
                TokenRejected::SessionNotActive,
            ),
            (with(&|p| p["o"] = "org_a".into()), TokenRejected::BadClaim("o")),
        ];
        for (token, expected) in cases {
            assert_eq!(verifier.verify(&token, NOW), Err(expected.clone()), "{expected}");
        }
        // Tampering after signing breaks the signature.
        let token = mint(&ring.active(), &claims()).unwrap();
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let mut tampered = good.clone();
        tampered["o"]["rol"] = "admin2".into();
        parts[1] = b64(&tampered);
        assert_eq!(
            verifier.verify(&parts.join("."), NOW),
            Err(TokenRejected::BadSignature)
        );
        // Within the 5 s leeway (the configured 60 s was clamped).
        assert!(verifier
            .verify(&with(&|p| p["exp"] = (NOW - 5).into()), NOW)
            .is_ok());
    }
}
