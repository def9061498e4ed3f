//! JWT templates: named claim sets with shortcodes, rendered per user and org.
//!
//! A claim value that is a string may hold shortcodes, `{{path || path || 'literal'}}`:
//! - a path names a value of the context (`user.id`, `user.primary_email_address`,
//!   `user.public_metadata.plan`, `org.id`, `org.slug`, `org.role`, …); an unknown
//!   path or a missing value resolves to null;
//! - `||` takes the first alternative that is not null; quoted alternatives
//!   (`'…'` or `"…"`) are literals;
//! - a string that is exactly one shortcode becomes the resolved JSON value
//!   (object, number, null, …); a shortcode inside a longer string is
//!   interpolated as text (null as the empty string) and the result is a string.
//!
//! Objects and arrays are rendered recursively. The reserved claims (`azp exp
//! iat iss jti nbf sub`, plus `sid` and `v`, which template tokens never carry)
//! cannot be set by a template: saving such a template is refused.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::keys::SigningKey;

/// Claims a template may not define.
pub const RESERVED_CLAIMS: &[&str] = &["azp", "exp", "iat", "iss", "jti", "nbf", "sub", "sid", "v"];

/// A JWT template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// Unique name (what `/tokens/{template}` names).
    pub name: String,
    /// The claims, with shortcodes.
    pub claims: Map<String, Value>,
    /// Token lifetime in seconds (30..=315 360 000, Clerk's bounds).
    pub lifetime: i64,
    /// Allowed clock skew in seconds (`nbf` = `iat` − skew), 0..=300.
    pub allowed_clock_skew: i64,
}

/// Why a template cannot be saved or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template defines a reserved claim.
    #[error("claim `{0}` is reserved and cannot be set by a template")]
    ReservedClaim(String),
    /// The name is empty or not `[A-Za-z0-9_-]`.
    #[error("template names are 1..=64 characters of letters, digits, `-` and `_`")]
    BadName,
    /// Lifetime or skew out of range.
    #[error("{0}")]
    OutOfRange(&'static str),
    /// A shortcode does not close or is empty.
    #[error("malformed shortcode in claim `{claim}`: {detail}")]
    BadShortcode {
        /// The top-level claim.
        claim: String,
        /// What is wrong.
        detail: String,
    },
}

impl Template {
    /// Checks a template before it is stored.
    pub fn validate(&self) -> Result<(), TemplateError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(TemplateError::BadName);
        }
        if let Some(reserved) = self.claims.keys().find(|k| RESERVED_CLAIMS.contains(&k.as_str())) {
            return Err(TemplateError::ReservedClaim(reserved.clone()));
        }
        if !(30..=315_360_000).contains(&self.lifetime) {
            return Err(TemplateError::OutOfRange(
                "lifetime must be 30..=315360000 seconds",
            ));
        }
        if !(0..=300).contains(&self.allowed_clock_skew) {
            return Err(TemplateError::OutOfRange(
                "allowed_clock_skew must be 0..=300 seconds",
            ));
        }
        for (claim, value) in &self.claims {
            check_shortcodes(value).map_err(|detail| TemplateError::BadShortcode {
                claim: claim.clone(),
                detail,
            })?;
        }
        Ok(())
    }

    /// Renders the template's claims against `context` (an object with
    /// `user`, `org` and `session` members).
    pub fn render(&self, context: &Value) -> Result<Map<String, Value>, TemplateError> {
        self.validate()?;
        let mut out = Map::new();
        for (claim, value) in &self.claims {
            out.insert(claim.clone(), render_value(value, context));
        }
        Ok(out)
    }

    /// Renders and signs a template token: the rendered claims plus `sub`,
    /// `iss`, `iat`, `nbf` (`iat` − skew), `exp` (`iat` + lifetime), `jti`
    /// and, when given, `azp`. No `sid`: never a session token.
    pub fn mint(
        &self,
        key: &SigningKey,
        context: &Value,
        subject: &str,
        issuer: &str,
        azp: Option<&str>,
        now: i64,
    ) -> Result<String, MintError> {
        let mut claims = self.render(context)?;
        claims.insert("sub".into(), subject.into());
        claims.insert("iss".into(), issuer.into());
        claims.insert("iat".into(), now.into());
        claims.insert("nbf".into(), (now - self.allowed_clock_skew).into());
        claims.insert("exp".into(), (now + self.lifetime).into());
        claims.insert(
            "jti".into(),
            crate::ids::new_id(crate::ids::IdKind::TokenId).into(),
        );
        if let Some(azp) = azp {
            claims.insert("azp".into(), azp.into());
        }
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(key.kid().to_string());
        header.typ = Some("JWT".into());
        Ok(jsonwebtoken::encode(
            &header,
            &Value::Object(claims),
            key.encoding_key(),
        )?)
    }
}

/// Why a template token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The template is invalid.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

fn check_shortcodes(value: &Value) -> Result<(), String> {
    match value {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(start) = rest.find("{{") {
                let after = &rest[start + 2..];
                let end = after
                    .find("}}")
                    .ok_or_else(|| format!("`{s}` opens `{{{{` without closing it"))?;
                if after[..end].trim().is_empty() {
                    return Err(format!("`{s}` has an empty shortcode"));
                }
                rest = &after[end + 2..];
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(check_shortcodes),
        Value::Object(map) => map.values().try_for_each(check_shortcodes),
        _ => Ok(()),
    }
}

fn render_value(value: &Value, context: &Value) -> Value {
    match value {
        Value::String(s) => render_string(s, context),
        Value::Array(items) => Value::Array(items.iter().map(|v| render_value(v, context)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), render_value(v, context)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn render_string(s: &str, context: &Value) -> Value {
    let trimmed = s.trim();
    if let Some(inner) = trimmed.strip_prefix("{{").and_then(|t| t.strip_suffix("}}")) {
        if !inner.contains("{{") && !inner.contains("}}") {
            return resolve(inner, context);
        }
    }
    if !s.contains("{{") {
        return Value::String(s.to_string());
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        match resolve(&after[..end], context) {
            Value::Null => {}
            Value::String(text) => out.push_str(&text),
            other => out.push_str(&other.to_string()),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Value::String(out)
}

/// The first non-null alternative of `a || b || 'literal'`.
fn resolve(expression: &str, context: &Value) -> Value {
    for alternative in expression.split("||").map(str::trim) {
        let literal = alternative
            .strip_prefix('\'')
            .and_then(|a| a.strip_suffix('\''))
            .or_else(|| alternative.strip_prefix('"').and_then(|a| a.strip_suffix('"')));
        let value = match literal {
            Some(text) => Value::String(text.to_string()),
            None => lookup(alternative, context),
        };
        if !value.is_null() {
            return value;
        }
    }
    Value::Null
}

fn lookup(path: &str, context: &Value) -> Value {
    let mut current = context;
    for segment in path.split('.') {
        match current.get(segment) {
            Some(next) => current = next,
            None => return Value::Null,
        }
    }
    current.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context() -> Value {
        json!({
            "user": {
                "id": "user_1",
                "primary_email_address": "ada@example.com",
                "first_name": "Ada",
                "last_name": null,
                "public_metadata": { "plan": "pro", "limits": { "seats": 5 } }
            },
            "org": { "id": "org_a", "slug": "acme", "role": "org:admin" },
            "session": { "id": "sess_1" }
        })
    }

    fn template(claims: Value) -> Template {
        Template {
            name: "supabase".into(),
            claims: claims.as_object().unwrap().clone(),
            lifetime: 60,
            allowed_clock_skew: 5,
        }
    }

    #[test]
    fn renders_shortcodes_fallbacks_literals_and_nesting() {
        let rendered = template(json!({
            "uid": "{{user.id}}",
            "email": "{{user.primary_email_address}}",
            "plan": "{{user.public_metadata.plan}}",
            "limits": "{{user.public_metadata.limits}}",
            "org": { "id": "{{org.id}}", "slug": "{{org.slug}}", "role": "{{org.role}}" },
            "tier": "{{user.public_metadata.tier || 'free'}}",
            "surname": "{{user.last_name || user.first_name}}",
            "unknown": "{{user.shoe_size}}",
            "greeting": "Hello {{user.first_name}} {{user.last_name}}!",
            "seats_text": "seats: {{user.public_metadata.limits.seats}}",
            "aud": "tenantry",
            "list": ["{{org.id}}", 1, true],
        }))
        .render(&context())
        .unwrap();
        assert_eq!(
            Value::Object(rendered),
            json!({
                "uid": "user_1",
                "email": "ada@example.com",
                "plan": "pro",
                "limits": { "seats": 5 },
                "org": { "id": "org_a", "slug": "acme", "role": "org:admin" },
                "tier": "free",
                "surname": "Ada",
                "unknown": null,
                "greeting": "Hello Ada !",
                "seats_text": "seats: 5",
                "aud": "tenantry",
                "list": ["org_a", 1, true],
            })
        );
    }

    #[test]
    fn without_an_active_org_org_shortcodes_are_null() {
        let mut context = context();
        context.as_object_mut().unwrap().remove("org");
        let rendered = template(json!({ "org_id": "{{org.id}}", "o": "org={{org.id}}" }))
            .render(&context)
            .unwrap();
        assert_eq!(Value::Object(rendered), json!({ "org_id": null, "o": "org=" }));
    }

    #[test]
    fn reserved_claims_names_and_ranges_are_refused() {
        for reserved in RESERVED_CLAIMS {
            let t = template(json!({ *reserved: "x" }));
            assert_eq!(
                t.validate(),
                Err(TemplateError::ReservedClaim(reserved.to_string()))
            );
        }
        let mut t = template(json!({}));
        t.name = "has space".into();
        assert_eq!(t.validate(), Err(TemplateError::BadName));
        let mut t = template(json!({}));
        t.lifetime = 10;
        assert!(matches!(t.validate(), Err(TemplateError::OutOfRange(_))));
        let t = template(json!({ "a": "{{user.id" }));
        assert!(matches!(t.validate(), Err(TemplateError::BadShortcode { .. })));
        let t = template(json!({ "a": ["{{ }}"] }));
        assert!(matches!(t.validate(), Err(TemplateError::BadShortcode { .. })));
    }

    #[test]
    fn template_tokens_carry_no_sid_and_are_refused_as_session_tokens() {
        use super::super::keys::KeyRing;
        use super::super::token::{TokenRejected, Verifier, VerifierConfig};
        use std::sync::Arc;
        let ring = Arc::new(KeyRing::new(std::time::Duration::from_secs(60)).unwrap());
        let token = template(json!({ "org": "{{org.id}}" }))
            .mint(
                &ring.active(),
                &context(),
                "user_1",
                "https://clerk.tenantry.test",
                None,
                1_800_000_000,
            )
            .unwrap();
        let verifier = Verifier::new(
            Arc::clone(&ring),
            VerifierConfig {
                issuer: "https://clerk.tenantry.test".into(),
                authorized_parties: vec![],
                leeway_secs: 5,
            },
        );
        assert_eq!(
            verifier.verify(&token, 1_800_000_000),
            Err(TokenRejected::NotASessionToken)
        );
        let payload: Value = {
            use base64::Engine;
            let part = token.split('.').nth(1).unwrap();
            serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(part)
                    .unwrap(),
            )
            .unwrap()
        };
        assert_eq!(payload["org"], "org_a");
        assert_eq!(payload["exp"], 1_800_000_060i64);
        assert_eq!(payload["nbf"], 1_800_000_000i64 - 5);
        assert!(payload.get("sid").is_none());
    }
}
