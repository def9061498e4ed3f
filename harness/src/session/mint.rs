//! Session source `mint`: the harness acts as the target's Clerk instance.
//!
//! It holds an RSA-2048 signing key, serves its JWKS on a loopback listener
//! at `/.well-known/jwks.json` and at `/v1/jwks` (the Backend API path, so a
//! Clerk SDK whose `apiUrl` / `CLERK_API_URL` points at the listener fetches
//! it), optionally writes the public key as PEM (for apps configured with
//! Clerk's `jwtKey`), and signs Clerk v2 session tokens for `user@org`.
//! Users and orgs get Clerk-shaped ids from the harness; the target learns
//! them through [`Provisioning`].

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::provision::{assign_ids, clerk_id, random_alnum, Provisioner, Provisioning};
use crate::world::{Org, User, World, WorldSpec};

use super::SessionError;

/// How the harness mints tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintConfig {
    /// `iss` of minted tokens (the Frontend API URL the app expects).
    pub issuer: String,
    /// `azp` of minted tokens (the app's origin), if any.
    pub azp: Option<String>,
    /// Token lifetime (`exp - iat`).
    pub lifetime: Duration,
    /// Where the JWKS listener binds (`127.0.0.1:0`: any free loopback port).
    pub listen: SocketAddr,
    /// Where to write the public key as SPKI PEM, if anywhere.
    pub public_pem: Option<PathBuf>,
    /// How the world gets into the target.
    pub provisioning: Provisioning,
}

impl MintConfig {
    /// Tokens issued by `issuer`, 60 s lifetime, no `azp`, JWKS on any free
    /// loopback port, no PEM file, no provisioning.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            azp: None,
            lifetime: Duration::from_secs(60),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            public_pem: None,
            provisioning: Provisioning::None,
        }
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    let mut rest = body.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The signing key with its public forms.
struct SigningKey {
    pair: KeyPair,
    kid: String,
    jwk: Value,
    public_pem: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn crypto(e: impl std::fmt::Display) -> SessionError {
    SessionError::new("signing key", e.to_string())
}

impl SigningKey {
    fn generate() -> Result<Self, SessionError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(crypto)?;
        let public = pair.public_key();
        let spki: PublicKeyX509Der = public.as_der().map_err(crypto)?;
        // Clerk's kid is the instance id.
        let kid = clerk_id("ins_")?;
        let jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": kid,
            "n": b64url(public.modulus().big_endian_without_leading_zero()),
            "e": b64url(public.exponent().big_endian_without_leading_zero()),
        });
        Ok(Self {
            public_pem: pem("PUBLIC KEY", spki.as_ref()),
            pair,
            kid,
            jwk,
        })
    }

    /// An RS256 JWT of `claims` with `kid` in the header.
    fn sign(&self, claims: &Value) -> Result<String, SessionError> {
        let header = json!({ "alg": "RS256", "typ": "JWT", "kid": self.kid });
        let mut jwt = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                jwt.as_bytes(),
                &mut signature,
            )
            .map_err(crypto)?;
        jwt.push('.');
        jwt.push_str(&b64url(&signature));
        Ok(jwt)
    }
}

/// Stops the JWKS server when dropped.
#[derive(Debug)]
struct Server {
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Serves `jwks` on `listen`; returns the base URL.
async fn serve_jwks(listen: SocketAddr, jwks: Value) -> Result<(Server, String), SessionError> {
    use axum::routing::get;

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| SessionError::new("jwks listener", format!("cannot listen on {listen}: {e}")))?;
    let mut addr = listener
        .local_addr()
        .map_err(|e| SessionError::new("jwks listener", e.to_string()))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(Ipv4Addr::LOCALHOST.into());
    }
    let jwks = Arc::new(jwks);
    let handler = move || {
        let jwks = Arc::clone(&jwks);
        async move { axum::Json((*jwks).clone()) }
    };
    let app = axum::Router::new()
        .route("/.well-known/jwks.json", get(handler.clone()))
        .route("/v1/jwks", get(handler));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async move {
            // Fires when the sender is dropped, i.e. with the Sessions.
            let _ = stopped.await;
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            tracing::warn!(error = %e, "the mint's JWKS server stopped");
        }
    });
    Ok((Server { _stop: stop }, format!("http://{addr}")))
}

/// The harness as the target's Clerk instance.
#[derive(Debug)]
pub(super) struct MintSource {
    key: SigningKey,
    config: MintConfig,
    base: String,
    /// One session id per user id, stable across tokens.
    sessions: HashMap<String, String>,
    client: Client,
    pub(super) provisioner: Provisioner,
    _server: Server,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl MintSource {
    pub(super) async fn start(config: MintConfig, client: Client) -> Result<Self, SessionError> {
        let provisioner = Provisioner::new(config.provisioning.clone(), client.clone())?;
        let key = SigningKey::generate()?;
        if let Some(path) = &config.public_pem {
            tokio::fs::write(path, &key.public_pem).await.map_err(|e| {
                SessionError::new(
                    "public key",
                    format!("cannot write the PEM to {}: {e}", path.display()),
                )
            })?;
        }
        let (server, base) = serve_jwks(config.listen, json!({ "keys": [key.jwk] })).await?;
        Ok(Self {
            key,
            config,
            base,
            sessions: HashMap::new(),
            client,
            provisioner,
            _server: server,
        })
    }

    /// `http://127.0.0.1:<port>` of the JWKS listener.
    pub(super) fn base(&self) -> &str {
        &self.base
    }

    /// The signing key as (`kid`, PKCS#8 DER).
    pub(super) fn signing_key_pkcs8(&self) -> Result<(String, Vec<u8>), SessionError> {
        use aws_lc_rs::encoding::Pkcs8V1Der;
        let der: Pkcs8V1Der = self.key.pair.as_der().map_err(crypto)?;
        Ok((self.key.kid.clone(), der.as_ref().to_vec()))
    }

    /// The public key as SPKI PEM.
    pub(super) fn public_pem(&self) -> &str {
        &self.key.public_pem
    }

    pub(super) async fn provision(&mut self, spec: &WorldSpec) -> Result<World, SessionError> {
        let world = assign_ids(spec)?;
        self.provisioner.provision(&world).await?;
        Ok(world)
    }

    /// A v2 session token for `user` with `org` active.
    pub(super) fn token(&mut self, user: &User, org: Option<&Org>) -> Result<String, SessionError> {
        let sid = match self.sessions.get(&user.id) {
            Some(sid) => sid.clone(),
            None => {
                let sid = clerk_id("sess_")?;
                self.sessions.insert(user.id.clone(), sid.clone());
                sid
            }
        };
        let active = match org {
            Some(org) => {
                let role = user
                    .memberships
                    .iter()
                    .find(|(o, _)| *o == org.key)
                    .map(|(_, r)| r.as_str())
                    .ok_or_else(|| {
                        SessionError::new(
                            "token",
                            format!(
                                "user `{}` is not a member of org `{}`; Clerk would not make it active",
                                user.key, org.key
                            ),
                        )
                    })?;
                Some((org, role))
            }
            None => None,
        };
        let claims = session_claims(
            &self.config,
            &user.id,
            &sid,
            active,
            now_secs(),
            &random_alnum(20)?,
        );
        let jwt = self.key.sign(&claims)?;
        self.client.register_secret(&jwt);
        Ok(jwt)
    }
}

/// Clerk v2 session-token claims. The role goes in `o.rol` without its
/// `org:` prefix; the harness knows no custom permissions, so `o.per`,
/// `o.fpm` and `fea` are left out, as Clerk does for a role without any.
fn session_claims(
    config: &MintConfig,
    user_id: &str,
    sid: &str,
    org: Option<(&Org, &str)>,
    now: i64,
    jti: &str,
) -> Value {
    let lifetime = i64::try_from(config.lifetime.as_secs())
        .unwrap_or(i64::MAX)
        .max(1);
    let mut claims = Map::new();
    claims.insert("sub".into(), user_id.into());
    claims.insert("sid".into(), sid.into());
    claims.insert("iss".into(), config.issuer.as_str().into());
    if let Some(azp) = &config.azp {
        claims.insert("azp".into(), azp.as_str().into());
    }
    claims.insert("iat".into(), now.into());
    claims.insert("nbf".into(), (now - 5).into());
    claims.insert("exp".into(), now.saturating_add(lifetime).into());
    claims.insert("jti".into(), jti.into());
    claims.insert("v".into(), 2.into());
    claims.insert("sts".into(), "active".into());
    claims.insert("fva".into(), json!([0, -1]));
    if let Some((org, role)) = org {
        claims.insert(
            "o".into(),
            json!({
                "id": org.id,
                "rol": role.strip_prefix("org:").unwrap_or(role),
                "slg": org.slug,
            }),
        );
    }
    Value::Object(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_follow_clerk_v2() {
        let mut config = MintConfig::new("https://clerk.app.test");
        config.azp = Some("http://localhost:3000".into());
        config.lifetime = Duration::from_secs(90);
        let org = Org {
            key: "a".into(),
            id: "org_A".into(),
            slug: "acme".into(),
            name: "Acme".into(),
        };
        let claims = session_claims(
            &config,
            "user_1",
            "sess_1",
            Some((&org, "org:billing_admin")),
            1_800_000_000,
            "j1",
        );
        assert_eq!(
            claims,
            json!({
                "sub": "user_1", "sid": "sess_1", "iss": "https://clerk.app.test",
                "azp": "http://localhost:3000", "iat": 1_800_000_000, "nbf": 1_799_999_995,
                "exp": 1_800_000_090, "jti": "j1", "v": 2, "sts": "active", "fva": [0, -1],
                "o": { "id": "org_A", "rol": "billing_admin", "slg": "acme" },
            })
        );
        let personal = session_claims(&MintConfig::new("i"), "user_1", "sess_1", None, 0, "j");
        assert!(personal.get("o").is_none() && personal.get("azp").is_none());
    }

    #[test]
    fn pem_lines_are_64_characters() {
        let text = pem("PUBLIC KEY", &[7u8; 100]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "-----BEGIN PUBLIC KEY-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last().copied(), Some("-----END PUBLIC KEY-----"));
    }
}
