//! TPL-001..003: JWT templates created through the Backend API, their
//! tokens read through the Frontend API (and the app's template helper),
//! their claims decoded without verification and compared with the
//! definition.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::flows::now;
use super::idp::{jwt_of, Device};
use super::Run;
use crate::audit::AuditError;
use crate::client::{unverified_claims, Reply};
use crate::session::SessionError;

/// Claims the identity service adds to every template token.
const STANDARD_CLAIMS: &[&str] = &["sub", "iss", "iat", "nbf", "exp", "jti", "azp"];

/// Seconds of disagreement allowed between our clock and the service's.
const CLOCK_SLACK: i64 = 60;

/// A signed-in user with an active org: (user id, email, device, session,
/// org (id, slug)).
struct Member {
    user: String,
    device: Device,
    session: String,
    org: (String, String),
}

async fn member(run: &mut Run<'_>, purpose: &str, extra: Value) -> Result<Member, AuditError> {
    let email = run.email(purpose);
    let password = run.password();
    let user = run.idp.create_user(&email, &password, extra).await?;
    let org = run
        .idp
        .create_org(&format!("Templates {purpose} {}", run.tag), &user)
        .await?;
    let mut device = Device::default();
    let session = run
        .idp
        .sign_in(&mut device, &email, &password)
        .await
        .map_err(|why| SessionError::new("sign in", why))?;
    run.idp.touch(&mut device, &session, Some(&org.0)).await;
    Ok(Member {
        user,
        device,
        session,
        org,
    })
}

async fn create_template(run: &Run<'_>, body: Value) -> Reply {
    run.idp.backend("POST", "/v1/jwt_templates", Some(body)).await
}

/// A template token of `name` for `m`, decoded; an error if refused.
async fn template_claims(run: &Run<'_>, m: &mut Member, name: &str) -> Result<(Value, Reply), AuditError> {
    let reply = run.idp.template_token(&mut m.device, &m.session, name).await;
    let claims = jwt_of(&reply).and_then(|jwt| unverified_claims(&jwt));
    match claims {
        Some(claims) => Ok((claims, reply)),
        None => Err(SessionError::new("template token", reply.transcript).into()),
    }
}

/// TPL-001: the token carries exactly the template's claims, rendered for
/// the active org and the user (org id, role, public metadata), plus the
/// standard ones — nothing else of the user (email, names, private or
/// unsafe metadata) and nothing of another org.
pub(super) async fn claims(run: &mut Run<'_>) -> Result<(), AuditError> {
    const ID: &str = "TPL-001";
    let plan = run.canary();
    let private = run.canary();
    let unsafe_note = run.canary();
    let first_name = format!("First{}", &run.canary()[4..12]);
    let last_name = format!("Last{}", &run.canary()[4..12]);
    let audience = format!("tenantry-{}", run.tag);
    let mut m = member(
        run,
        "tpl001",
        json!({
            "first_name": first_name,
            "last_name": last_name,
            "public_metadata": { "plan": plan },
            "private_metadata": { "secret": private },
            "unsafe_metadata": { "note": unsafe_note },
        }),
    )
    .await?;
    let other = run
        .idp
        .create_org(&format!("Templates other {}", run.tag), &m.user)
        .await?;
    let name = format!("tpl001-{}", run.tag);
    let created = create_template(
        run,
        json!({
            "name": name,
            "claims": {
                "org_id": "{{org.id}}",
                "role": "{{org.role}}",
                "plan": "{{user.public_metadata.plan}}",
                "aud": audience,
            }
        }),
    )
    .await;
    if created.status != 200 {
        return Err(SessionError::new("create jwt template", created.transcript).into());
    }
    for (active, foreign) in [(m.org.clone(), other.clone()), (other.clone(), m.org.clone())] {
        run.idp.touch(&mut m.device, &m.session, Some(&active.0)).await;
        let (claims, reply) = template_claims(run, &mut m, &name).await?;
        let expected = json!({
            "org_id": active.0,
            "role": "org:admin",
            "plan": plan,
            "aud": audience,
            "sub": m.user,
        });
        let mut wrong = Vec::new();
        for (claim, value) in expected.as_object().into_iter().flatten() {
            if &claims[claim] != value {
                wrong.push(format!("`{claim}` is {} (defined: {value})", claims[claim]));
            }
        }
        let defined: BTreeSet<&str> = ["org_id", "role", "plan", "aud"]
            .into_iter()
            .chain(STANDARD_CLAIMS.iter().copied())
            .collect();
        for claim in claims.as_object().into_iter().flatten().map(|(k, _)| k) {
            if !defined.contains(claim.as_str()) {
                wrong.push(format!("`{claim}` is not defined by the template"));
            }
        }
        let text = claims.to_string();
        for (what, needle) in [
            ("the user's private metadata", private.as_str()),
            ("the user's unsafe metadata", unsafe_note.as_str()),
            ("the user's first name", first_name.as_str()),
            ("the user's last name", last_name.as_str()),
            ("another org's id", foreign.0.as_str()),
        ] {
            if text.contains(needle) {
                wrong.push(format!("it carries {what}"));
            }
        }
        if !wrong.is_empty() {
            run.finding(
                ID,
                format!(
                    "the template token with org {} active: {}",
                    active.0,
                    wrong.join("; ")
                ),
                vec![format!("claims: {claims}"), reply.transcript],
            );
        }
    }
    Ok(())
}

/// TPL-002: `exp` = `iat` + the template's lifetime, `nbf` = `iat` − its
/// allowed clock skew, `aud` as defined, `iat` now.
pub(super) async fn lifetime(run: &mut Run<'_>) -> Result<(), AuditError> {
    const ID: &str = "TPL-002";
    let mut m = member(run, "tpl002", json!({})).await?;
    let audience = format!("tenantry-aud-{}", run.tag);
    for (lifetime, skew) in [(45_i64, 7_i64), (120, 0)] {
        let name = format!("tpl002-{lifetime}-{}", run.tag);
        let created = create_template(
            run,
            json!({
                "name": name,
                "claims": { "aud": audience },
                "lifetime": lifetime,
                "allowed_clock_skew": skew,
            }),
        )
        .await;
        if created.status != 200 {
            return Err(SessionError::new("create jwt template", created.transcript).into());
        }
        let (claims, reply) = template_claims(run, &mut m, &name).await?;
        let mut wrong = Vec::new();
        match (
            claims["iat"].as_i64(),
            claims["exp"].as_i64(),
            claims["nbf"].as_i64(),
        ) {
            (Some(iat), Some(exp), nbf) => {
                if (iat - now()).abs() > CLOCK_SLACK {
                    wrong.push(format!("`iat` is {} s from now", iat - now()));
                }
                if exp - iat != lifetime {
                    wrong.push(format!("it lives {} s (lifetime: {lifetime} s)", exp - iat));
                }
                match nbf {
                    Some(nbf) if iat - nbf != skew => wrong.push(format!(
                        "`nbf` is {} s before `iat` (allowed clock skew: {skew} s)",
                        iat - nbf
                    )),
                    None => wrong.push("no `nbf`".into()),
                    Some(_) => {}
                }
            }
            _ => wrong.push("no numeric `iat` and `exp`".into()),
        }
        if claims["aud"] != audience.as_str() {
            wrong.push(format!("`aud` is {} (defined: \"{audience}\")", claims["aud"]));
        }
        if !wrong.is_empty() {
            run.finding(
                ID,
                format!(
                    "template with lifetime {lifetime} s, skew {skew} s: {}",
                    wrong.join("; ")
                ),
                vec![format!("claims: {claims}"), reply.transcript],
            );
        }
    }
    Ok(())
}

/// The claim names of a token.
fn claim_names(claims: &Value) -> BTreeSet<String> {
    claims
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// TPL-003: a missing or broken template never yields a 500 or a token
/// with more than the session token's claims; the app's helper falls back
/// to the caller's own session token or refuses cleanly.
pub(super) async fn fallback(run: &mut Run<'_>) -> Result<(), AuditError> {
    const ID: &str = "TPL-003";
    let mut m = member(run, "tpl003", json!({})).await?;
    let session_reply = run.idp.token(&mut m.device, &m.session).await;
    let Some(session_token) = jwt_of(&session_reply) else {
        return Err(SessionError::new("session token", session_reply.transcript).into());
    };
    let session_claims = unverified_claims(&session_token).unwrap_or(Value::Null);
    let allowed = claim_names(&session_claims);
    let missing = format!("tpl003-missing-{}", run.tag);
    let mut names = vec![("a missing template".to_string(), missing)];
    // Broken templates: the service should refuse to save them; if it does
    // save them, their tokens are judged like a missing template's.
    for (what, claims) in [
        ("a template defining `sid`", json!({ "sid": "{{session.id}}" })),
        (
            "a template with an unclosed shortcode",
            json!({ "x": "{{user.id" }),
        ),
    ] {
        let name = format!("tpl003-{}-{}", names.len(), run.tag);
        let created = create_template(run, json!({ "name": name, "claims": claims })).await;
        if created.status >= 500 {
            run.finding(
                ID,
                format!("saving {what} answered {}", created.status),
                vec![created.transcript],
            );
        } else if created.status == 200 {
            names.push((what.to_string(), name));
        }
    }
    for (what, name) in &names {
        let reply = run.idp.template_token(&mut m.device, &m.session, name).await;
        judge_fallback(run, &reply, what, "the Frontend API", &allowed, &m.session, false);
    }
    let Some(helper) = run.app.template_helper.clone() else {
        return Ok(());
    };
    for (what, name) in &names {
        let request = helper.request.render(&mut |var| match var {
            "template" => Some(name.clone()),
            _ => None,
        })?;
        let reply = run
            .app_client
            .send_patiently(run.with_token(request, &session_token))
            .await;
        let jwt = if (200..300).contains(&reply.status) {
            super::text_at(&reply.json(), &helper.jwt_pointer)
        } else {
            None
        };
        if (200..300).contains(&reply.status) && jwt.is_none() {
            run.finding(
                ID,
                format!(
                    "the app's template helper answered {} for {what} with no token",
                    reply.status
                ),
                vec![reply.transcript.clone()],
            );
        }
        let reply = match jwt {
            Some(jwt) => {
                run.idp.client().register_secret(&jwt);
                let mut shaped = reply.clone();
                shaped.body = json!({ "jwt": jwt }).to_string().into_bytes();
                shaped
            }
            None => reply,
        };
        judge_fallback(
            run,
            &reply,
            what,
            "the app's template helper",
            &allowed,
            &m.session,
            true,
        );
    }
    Ok(())
}

/// Judges one answer for an unusable template: no 5xx; a token, if any,
/// no wider than the session token and (for the app's fallback) the
/// caller's own session.
fn judge_fallback(
    run: &mut Run<'_>,
    reply: &Reply,
    what: &str,
    route: &str,
    allowed: &BTreeSet<String>,
    session: &str,
    own_session: bool,
) {
    const ID: &str = "TPL-003";
    if reply.status >= 500 {
        run.finding(
            ID,
            format!(
                "{route} answered {} for {what} (fall back to the session token or refuse cleanly)",
                reply.status
            ),
            vec![reply.transcript.clone()],
        );
        return;
    }
    let Some(claims) = jwt_of(reply).and_then(|jwt| unverified_claims(&jwt)) else {
        return;
    };
    let wider: Vec<String> = claim_names(&claims)
        .into_iter()
        .filter(|c| !allowed.contains(c) && !STANDARD_CLAIMS.contains(&c.as_str()))
        .collect();
    if !wider.is_empty() {
        run.finding(
            ID,
            format!(
                "{route} issued a token for {what} with claims the session token does not carry: {}",
                wider.join(", ")
            ),
            vec![format!("claims: {claims}"), reply.transcript.clone()],
        );
    }
    if !own_session && !claims["sid"].is_null() {
        run.finding(
            ID,
            format!("{route} issued a token with `sid` for {what}: it would pass as a session token"),
            vec![format!("claims: {claims}"), reply.transcript.clone()],
        );
    }
    if own_session && !claims["sid"].is_null() && claims["sid"] != session {
        run.finding(
            ID,
            format!("{route} fell back to another session's token for {what}"),
            vec![format!("claims: {claims}"), reply.transcript.clone()],
        );
    }
}
