//! SES-005..008: sign-in on a new device, email codes, sign-out.
//!
//! Each check drives the identity service's Frontend API as a browser and,
//! when the caller declared it, the app's own sign-in handler; the Backend
//! API's session list is the ground truth for "a session exists".

use serde_json::{json, Value};

use super::idp::{jwt_of, Device};
use super::{text_at, AppSignIn, Run};
use crate::audit::AuditError;
use crate::client::{unverified_claims, Reply};
use crate::session::SessionError;

/// The longest a signed-out session's last token may stay valid (seconds).
/// Clerk's session tokens live 60 s; ten minutes is generous.
pub const MAX_EXPOSURE_SECS: i64 = 600;

/// The sign-in statuses that wait for an email code.
fn needs_code(status: &str) -> bool {
    matches!(status, "needs_client_trust" | "needs_second_factor")
}

/// The attempt in a Frontend API answer.
fn attempt(reply: &Reply) -> Value {
    reply.json()["response"].clone()
}

/// Whether a Frontend API answer says the attempt completed.
fn completed(reply: &Reply) -> bool {
    (200..300).contains(&reply.status) && attempt(reply)["status"] == "complete"
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What the app's sign-in handler answered.
struct AppStep {
    reply: Reply,
    complete: bool,
    session: Option<String>,
    sign_in: Option<String>,
    status: String,
}

impl AppStep {
    fn of(flow: &AppSignIn, reply: Reply) -> Self {
        let body = reply.json();
        let ok = (200..300).contains(&reply.status);
        let status = text_at(&body, &flow.status_pointer).unwrap_or_default();
        Self {
            complete: ok && status == flow.complete,
            session: text_at(&body, &flow.session_pointer).filter(|_| ok),
            sign_in: text_at(&body, &flow.sign_in_pointer).filter(|_| ok),
            status,
            reply,
        }
    }
}

async fn app_start(
    run: &Run<'_>,
    flow: &AppSignIn,
    device: &mut Device,
    email: &str,
    password: &str,
) -> Result<AppStep, AuditError> {
    let request = flow.start.render(&mut |name| match name {
        "email" => Some(email.to_string()),
        "password" => Some(password.to_string()),
        _ => None,
    })?;
    let reply = run.idp.browse(&run.app_client, device, request).await;
    Ok(AppStep::of(flow, reply))
}

async fn app_code(
    run: &Run<'_>,
    flow: &AppSignIn,
    device: &mut Device,
    sign_in: &str,
    code: &str,
) -> Result<AppStep, AuditError> {
    let request = flow.code.render(&mut |name| match name {
        "sign_in" => Some(sign_in.to_string()),
        "code" => Some(code.to_string()),
        _ => None,
    })?;
    let reply = run.idp.browse(&run.app_client, device, request).await;
    Ok(AppStep::of(flow, reply))
}

/// A fresh user (no second factor of its own) and its password.
async fn user(run: &mut Run<'_>, purpose: &str) -> Result<(String, String, String), AuditError> {
    let email = run.email(purpose);
    let password = run.password();
    let id = run.idp.create_user(&email, &password, json!({})).await?;
    Ok((id, email, password))
}

/// Findings for every active session of `user` (none may exist yet).
async fn no_session_yet(run: &mut Run<'_>, user: &str, when: &str) -> Result<(), AuditError> {
    let (active, reply) = run.idp.active_sessions(user).await?;
    if !active.is_empty() {
        run.finding(
            "SES-005",
            format!(
                "{} active session(s) exist {when}, before the email code was entered",
                active.len()
            ),
            vec![reply.transcript],
        );
    }
    Ok(())
}

/// SES-005: a valid password on a new device yields no session and no
/// token until the email code is entered — through any route.
pub(super) async fn client_trust_safety(run: &mut Run<'_>) -> Result<(), AuditError> {
    const ID: &str = "SES-005";
    let (user_id, email, password) = user(run, "ses005").await?;
    let mut device = Device::default();
    let start = run.idp.start_sign_in(&mut device, &email, &password).await;
    let first = attempt(&start);
    let status = first["status"].as_str().unwrap_or_default().to_string();
    if start.status != 200 {
        return Err(SessionError::new("sign in", start.transcript).into());
    }
    if !needs_code(&status) {
        // No second step on a new device: nothing to skip.
        return Ok(());
    }
    let sign_in = first["id"].as_str().unwrap_or_default().to_string();
    if !first["created_session_id"].is_null() {
        run.finding(
            ID,
            format!("the attempt at `{status}` already names a session"),
            vec![start.transcript.clone()],
        );
    }
    // Every route to a token, mid-flow.
    let mut tries: Vec<(&str, Reply)> = Vec::new();
    tries.push((
        "a Frontend API token for the attempt's id",
        run.idp.token(&mut device, &sign_in).await,
    ));
    tries.push((
        "a Backend API token for the attempt's id",
        run.idp
            .backend("POST", &format!("/v1/sessions/{sign_in}/tokens"), Some(json!({})))
            .await,
    ));
    for (route, reply) in tries {
        if jwt_of(&reply).is_some() {
            run.finding(
                ID,
                format!("{route} was issued while the sign-in waits at `{status}`"),
                vec![reply.transcript],
            );
        }
    }
    let client = run
        .idp
        .browse(
            &run.idp.client().clone(),
            &mut device,
            crate::client::Request::new("GET", "/v1/client"),
        )
        .await;
    let sessions = client.json()["response"]["sessions"]
        .as_array()
        .map_or(0, Vec::len);
    if sessions > 0 {
        run.finding(
            ID,
            format!("the device lists {sessions} session(s) while the sign-in waits at `{status}`"),
            vec![client.transcript],
        );
    }
    let steps = [
        (
            "a wrong email code",
            run.idp.attempt_code(&mut device, &sign_in, "0000000").await,
        ),
        (
            "the password again as first factor",
            run.idp
                .frontend(
                    &mut device,
                    &format!("/v1/client/sign_ins/{sign_in}/attempt_first_factor"),
                    json!({ "strategy": "password", "password": password }),
                )
                .await,
        ),
        (
            "a second password sign-in on the same device",
            run.idp.start_sign_in(&mut device, &email, &password).await,
        ),
    ];
    for (step, reply) in steps {
        if completed(&reply) {
            run.finding(
                ID,
                format!("{step} completed a sign-in that waited at `{status}`"),
                vec![reply.transcript],
            );
        }
    }
    no_session_yet(run, &user_id, "after every route to a token was tried").await?;

    // The app's handler on a new device.
    let Some(flow) = run.app.sign_in.clone() else {
        return Ok(());
    };
    let (user_id, email, password) = user(run, "ses005-app").await?;
    let mut device = Device::default();
    let step = app_start(run, &flow, &mut device, &email, &password).await?;
    if step.complete || step.session.is_some() {
        run.finding(
            ID,
            format!(
                "the app's sign-in handler answered {} with a session for a new device \
                 before the email code (the identity service asks for `{status}`)",
                step.reply.status
            ),
            vec![step.reply.transcript.clone()],
        );
    }
    no_session_yet(run, &user_id, "after the app's sign-in handler answered").await
}

/// Follows the app's sign-in handler to the end as a user does, reading
/// codes from the outbox: the session id, or why the user is stuck.
async fn app_sign_in(
    run: &Run<'_>,
    flow: &AppSignIn,
    device: &mut Device,
    email: &str,
    password: &str,
) -> Result<Result<String, (String, Reply)>, AuditError> {
    let mut step = app_start(run, flow, device, email, password).await?;
    for _ in 0..3 {
        if step.complete {
            return Ok(match step.session {
                Some(session) => Ok(session),
                None => Err(("it answered complete without a session".into(), step.reply)),
            });
        }
        if !(200..300).contains(&step.reply.status) {
            return Ok(Err((format!("it answered {}", step.reply.status), step.reply)));
        }
        let Some(sign_in) = step.sign_in.clone() else {
            return Ok(Err((
                format!("it stopped at `{}` naming no attempt to continue", step.status),
                step.reply,
            )));
        };
        let Some(code) = run.idp.code_for(email, &sign_in).await? else {
            return Ok(Err((
                format!(
                    "it stopped at `{}` and no email code was sent, so the user can never finish",
                    step.status
                ),
                step.reply,
            )));
        };
        step = app_code(run, flow, device, &sign_in, &code).await?;
    }
    Ok(Err((
        format!("still at `{}` after three steps", step.status),
        step.reply,
    )))
}

/// A fresh token works on the app: judged on the profile's probe.
async fn token_works(
    run: &mut Run<'_>,
    device: &mut Device,
    session: &str,
    org: (&str, &str),
    how: &str,
) -> Result<(), AuditError> {
    let touched = run.idp.touch(device, session, Some(org.0)).await;
    let reply = run.idp.token(device, session).await;
    let Some(jwt) = jwt_of(&reply) else {
        run.finding(
            "SES-006",
            format!("{how}: signed in, but no session token ({})", reply.status),
            vec![touched.transcript, reply.transcript],
        );
        return Ok(());
    };
    if let Some(probe) = run.probe(org, &jwt).await {
        if !(200..300).contains(&probe.status) {
            run.finding(
                "SES-006",
                format!("{how}: signed in, but the token is refused ({})", probe.status),
                vec![probe.transcript],
            );
        }
    }
    Ok(())
}

/// SES-006: a user who hits `needs_client_trust` (a new device) can finish
/// signing in and gets a working token.
pub(super) async fn client_trust_liveness(run: &mut Run<'_>) -> Result<(), AuditError> {
    const ID: &str = "SES-006";
    let (user_id, email, password) = user(run, "ses006").await?;
    let name = format!("Sign-in {}", run.tag);
    let org = run.idp.create_org(&name, &user_id).await?;
    let mut device = Device::default();
    match run.idp.sign_in(&mut device, &email, &password).await {
        Ok(session) => {
            token_works(run, &mut device, &session, (&org.0, &org.1), "Frontend API").await?;
        }
        Err(why) => run.finding(
            ID,
            "a new device cannot finish signing in through the Frontend API".into(),
            vec![why],
        ),
    }
    let Some(flow) = run.app.sign_in.clone() else {
        return Ok(());
    };
    let (user_id, email, password) = user(run, "ses006-app").await?;
    let org = run.idp.create_org(&format!("{name} app"), &user_id).await?;
    let mut device = Device::default();
    match app_sign_in(run, &flow, &mut device, &email, &password).await? {
        Ok(session) => {
            token_works(
                run,
                &mut device,
                &session,
                (&org.0, &org.1),
                "the app's sign-in handler",
            )
            .await?;
        }
        Err((why, reply)) => run.finding(
            ID,
            format!("a new device cannot finish signing in through the app's sign-in handler: {why}"),
            vec![reply.transcript],
        ),
    }
    Ok(())
}

/// Starts a sign-in on a fresh device and has a code sent: (device,
/// attempt id, code); `None` when no code step comes.
async fn coded_attempt(
    run: &Run<'_>,
    email: &str,
    password: &str,
) -> Result<Option<(Device, String, String)>, AuditError> {
    let mut device = Device::default();
    let start = run.idp.start_sign_in(&mut device, email, password).await;
    let first = attempt(&start);
    if start.status != 200 {
        return Err(SessionError::new("sign in", start.transcript).into());
    }
    if !needs_code(first["status"].as_str().unwrap_or_default()) {
        return Ok(None);
    }
    let id = first["id"].as_str().unwrap_or_default().to_string();
    let prepared = run.idp.prepare_code(&mut device, &id).await;
    if prepared.status != 200 {
        return Err(SessionError::new("prepare email code", prepared.transcript).into());
    }
    let code = run
        .idp
        .code_for(email, &id)
        .await?
        .ok_or_else(|| SessionError::new("read the test outbox", format!("no code for sign-in {id}")))?;
    Ok(Some((device, id, code)))
}

/// SES-007: a code sent for one sign-in attempt never completes another —
/// neither a spent one nor one still pending.
pub(super) async fn code_replay(run: &mut Run<'_>) -> Result<(), AuditError> {
    const ID: &str = "SES-007";
    let (_, email, password) = user(run, "ses007").await?;
    let Some((mut first_device, first, first_code)) = coded_attempt(run, &email, &password).await? else {
        return Ok(());
    };
    // A pending code of attempt 1 on attempt 2.
    let Some((mut device, second, second_code)) = coded_attempt(run, &email, &password).await? else {
        return Ok(());
    };
    if first_code != second_code {
        let reply = run.idp.attempt_code(&mut device, &second, &first_code).await;
        if completed(&reply) {
            run.finding(
                ID,
                "the pending code of one sign-in attempt completed another attempt".into(),
                vec![reply.transcript],
            );
        }
    }
    // Spent codes of attempts 1 and 2 on attempt 3.
    let done = run.idp.attempt_code(&mut first_device, &first, &first_code).await;
    let done2 = run.idp.attempt_code(&mut device, &second, &second_code).await;
    if let Some((mut device, third, third_code)) = coded_attempt(run, &email, &password).await? {
        for (code, done) in [(&first_code, &done), (&second_code, &done2)] {
            if !completed(done) || *code == third_code {
                continue;
            }
            let reply = run.idp.attempt_code(&mut device, &third, code).await;
            if completed(&reply) {
                run.finding(
                    ID,
                    "a code already used to sign in completed a later sign-in attempt".into(),
                    vec![reply.transcript],
                );
            }
        }
    }

    // The app's code step.
    let Some(flow) = run.app.sign_in.clone() else {
        return Ok(());
    };
    let (_, email, password) = user(run, "ses007-app").await?;
    let mut a = Device::default();
    let step = app_start(run, &flow, &mut a, &email, &password).await?;
    let Some(first) = step.sign_in.filter(|_| !step.complete) else {
        return Ok(());
    };
    let Some(first_code) = run.idp.code_for(&email, &first).await? else {
        return Ok(());
    };
    let done = app_code(run, &flow, &mut a, &first, &first_code).await?;
    let mut b = Device::default();
    let step = app_start(run, &flow, &mut b, &email, &password).await?;
    let Some(second) = step.sign_in.filter(|_| !step.complete) else {
        return Ok(());
    };
    let second_code = run.idp.code_for(&email, &second).await?;
    if !done.complete || second_code.as_deref() == Some(first_code.as_str()) {
        return Ok(());
    }
    let replay = app_code(run, &flow, &mut b, &second, &first_code).await?;
    if replay.complete || replay.session.is_some() {
        run.finding(
            ID,
            "the app's code step accepted a code already used by another sign-in attempt".into(),
            vec![replay.reply.transcript],
        );
    }
    Ok(())
}

/// Fresh tokens for a signed-out session `sid`, by every route: findings
/// for each one issued.
async fn refresh_refused(run: &mut Run<'_>, device: &mut Device, sid: &str, template: &str, how: &str) {
    let tries = [
        ("the Frontend API", run.idp.token(device, sid).await),
        (
            "the Backend API",
            run.idp
                .backend("POST", &format!("/v1/sessions/{sid}/tokens"), Some(json!({})))
                .await,
        ),
        (
            "a JWT template",
            run.idp.template_token(device, sid, template).await,
        ),
    ];
    for (route, reply) in tries {
        if jwt_of(&reply).is_some() {
            run.finding(
                "SES-008",
                format!("after {how}, {route} still issued a token for the session"),
                vec![reply.transcript],
            );
        }
    }
}

/// SES-008: a session ended by the Backend API (revoked) or by the user
/// (signed out) gets no fresh token by any route, and its last token's
/// exposure is bounded by its `exp`.
pub(super) async fn signed_out(run: &mut Run<'_>) -> Result<(), AuditError> {
    const ID: &str = "SES-008";
    let (user_id, email, password) = user(run, "ses008").await?;
    let org = run
        .idp
        .create_org(&format!("Sign-out {}", run.tag), &user_id)
        .await?;
    let template = format!("ses008-{}", run.tag);
    let created = run
        .idp
        .backend(
            "POST",
            "/v1/jwt_templates",
            Some(json!({ "name": template, "claims": { "org_id": "{{org.id}}" } })),
        )
        .await;
    if created.status != 200 {
        return Err(SessionError::new("create jwt template", created.transcript).into());
    }
    for how in ["revocation by the Backend API", "sign-out by the user"] {
        let mut device = Device::default();
        let session = run
            .idp
            .sign_in(&mut device, &email, &password)
            .await
            .map_err(|why| SessionError::new("sign in", why))?;
        run.idp.touch(&mut device, &session, Some(&org.0)).await;
        let before = run.idp.token(&mut device, &session).await;
        let Some(token) = jwt_of(&before) else {
            return Err(SessionError::new("session token", before.transcript).into());
        };
        let ended = if how.starts_with("revocation") {
            run.idp
                .backend("POST", &format!("/v1/sessions/{session}/revoke"), None)
                .await
        } else {
            run.idp
                .frontend(
                    &mut device,
                    &format!("/v1/client/sessions/{session}/end"),
                    json!({}),
                )
                .await
        };
        if ended.status != 200 {
            return Err(SessionError::new("end the session", ended.transcript).into());
        }
        refresh_refused(run, &mut device, &session, &template, how).await;
        let claims = unverified_claims(&token).unwrap_or(Value::Null);
        let evidence = vec![format!("claims of the last token: {claims}")];
        match claims["exp"].as_i64() {
            None => run.finding(
                ID,
                format!("the session's last token has no `exp`: after {how} it stays valid for ever"),
                evidence,
            ),
            Some(exp) if exp - now() > MAX_EXPOSURE_SECS => run.finding(
                ID,
                format!(
                    "the session's last token stays valid {} s after {how} (bound: {MAX_EXPOSURE_SECS} s)",
                    exp - now()
                ),
                evidence,
            ),
            Some(_) => {}
        }
    }
    Ok(())
}
