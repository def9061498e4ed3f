//! World provisioning for targets that mirror orgs and users locally.
//!
//! When the harness is the identity service (session sources `mint` and
//! `command`), it assigns Clerk-shaped ids itself ([`assign_ids`]) and then
//! tells the target what exists, the way the target learns it in production:
//!
//! - [`Provisioning::Webhooks`]: Clerk-format events (`user.created`,
//!   `organization.created`, `organizationMembership.created|updated|deleted`)
//!   signed with the Svix scheme ([`WebhookSecret`]) and POSTed to the
//!   target's webhook route;
//! - [`Provisioning::Command`]: a setup command that reads the whole world
//!   as JSON ([`world_json`]) on standard input;
//! - [`Provisioning::None`]: the target needs nothing (it reads everything
//!   from the token).

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::Engine;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::client::{Client, Request};
use crate::session::SessionError;
use crate::world::{Org, User, World, WorldSpec};

/// How the world gets into the target.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Provisioning {
    /// Nothing to do: the target reads users and orgs from the token.
    #[default]
    None,
    /// Clerk-format webhooks signed with the Svix scheme.
    Webhooks {
        /// The target's webhook route: an absolute URL or a path on the target.
        url: String,
        /// The Svix signing secret (`whsec_…`).
        secret: String,
    },
    /// A setup command that receives the world as JSON on standard input,
    /// run again with the updated world after every membership change.
    Command {
        /// Program and arguments (no shell).
        argv: Vec<String>,
        /// Time limit per run.
        timeout: Duration,
    },
}

impl std::fmt::Debug for Provisioning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Provisioning::None => f.write_str("None"),
            // Never the secret.
            Provisioning::Webhooks { url, .. } => f
                .debug_struct("Webhooks")
                .field("url", url)
                .finish_non_exhaustive(),
            Provisioning::Command { argv, timeout } => f
                .debug_struct("Command")
                .field("argv", argv)
                .field("timeout", timeout)
                .finish(),
        }
    }
}

/// A Svix signing secret, decoded: the HMAC-SHA256 key of webhook signatures.
#[derive(Clone)]
pub struct WebhookSecret {
    key: hmac::Key,
    /// The secret as given and its base64 part, to scrub from error text.
    text: [String; 2],
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

impl WebhookSecret {
    /// The key of `secret` (`whsec_` followed by standard base64).
    pub fn parse(secret: &str) -> Result<Self, SessionError> {
        let encoded = secret.strip_prefix("whsec_").ok_or_else(|| {
            SessionError::new(
                "webhook secret",
                "expected a Svix signing secret starting with `whsec_` (Clerk dashboard → Webhooks → Signing Secret)",
            )
        })?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| {
                SessionError::new(
                    "webhook secret",
                    "the part after `whsec_` is not valid base64; copy the signing secret again",
                )
            })?;
        if key.is_empty() {
            return Err(SessionError::new(
                "webhook secret",
                "the signing secret is empty after `whsec_`",
            ));
        }
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            text: [secret.to_string(), encoded.to_string()],
        })
    }

    /// `text` with the secret (and its base64 part) replaced by `[redacted]`.
    pub fn scrub(&self, text: &str) -> String {
        self.text
            .iter()
            .fold(text.to_string(), |t, s| t.replace(s.as_str(), "[redacted]"))
    }

    /// The `svix-signature` header value for message `msg_id` sent at
    /// `timestamp` (unix seconds) with `body`:
    /// `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut signed = format!("{msg_id}.{timestamp}.").into_bytes();
        signed.extend_from_slice(body);
        let tag = hmac::sign(&self.key, &signed);
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
        )
    }
}

const ALNUM: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` random alphanumerics from the OS random number generator.
pub(crate) fn random_alnum(len: usize) -> Result<String, SessionError> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).map_err(|e| SessionError::new("ids", format!("no randomness: {e}")))?;
        // Rejection sampling keeps every character equally likely.
        for b in buf {
            let i = usize::from(b & 63);
            if i < ALNUM.len() && out.len() < len {
                out.push(char::from(ALNUM[i]));
            }
        }
    }
    Ok(out)
}

/// A fresh Clerk-shaped id: `prefix` (`user_`, `org_`, `sess_`, …) and 27
/// random alphanumerics.
pub fn clerk_id(prefix: &str) -> Result<String, SessionError> {
    Ok(format!("{prefix}{}", random_alnum(27)?))
}

/// The world of `spec` with ids the harness assigns (`user_…`, `org_…`); slugs,
/// names, emails and memberships as the spec says.
pub fn assign_ids(spec: &WorldSpec) -> Result<World, SessionError> {
    let mut world = World::default();
    for org in &spec.orgs {
        world.orgs.push(Org {
            key: org.key.clone(),
            id: clerk_id("org_")?,
            slug: org.slug.clone(),
            name: org.name.clone(),
        });
    }
    for user in &spec.users {
        world.users.push(User {
            key: user.key.clone(),
            id: clerk_id("user_")?,
            email: user.email.clone(),
            memberships: user.memberships.clone(),
        });
    }
    Ok(world)
}

/// The world as a setup command reads it:
/// `{"orgs":[{key,id,slug,name}], "users":[{key,id,email,memberships:[{org,org_id,role}]}]}`.
pub fn world_json(world: &World) -> Value {
    json!({
        "orgs": world.orgs.iter().map(|o| json!({
            "key": o.key, "id": o.id, "slug": o.slug, "name": o.name,
        })).collect::<Vec<_>>(),
        "users": world.users.iter().map(|u| json!({
            "key": u.key,
            "id": u.id,
            "email": u.email,
            "memberships": u.memberships.iter().map(|(org, role)| json!({
                "org": org,
                "org_id": world.org(org).map(|o| o.id.as_str()),
                "role": role,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Longest stderr excerpt quoted in an error.
const STDERR_EXCERPT: usize = 400;

/// Runs `argv` (no shell) with `env` added, `stdin` on standard input, for
/// at most `timeout`; returns standard output. A failure names the program
/// and quotes standard error (never standard output, which may hold a
/// token).
pub(crate) async fn run_command(
    step: &'static str,
    argv: &[String],
    env: &[(&str, &str)],
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Vec<u8>, SessionError> {
    let Some(program) = argv.first() else {
        return Err(SessionError::new(step, "the command is empty"));
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(&argv[1..])
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| SessionError::new(step, format!("could not start `{program}`: {e}")))?;
    let input = child.stdin.take();
    let run = async move {
        let write = async move {
            if let (Some(mut pipe), Some(bytes)) = (input, stdin) {
                // A command that exits without reading its input is judged
                // by its exit status, not by the broken pipe.
                let _ = pipe.write_all(&bytes).await;
                let _ = pipe.shutdown().await;
            }
        };
        let (_, output) = tokio::join!(write, child.wait_with_output());
        output
    };
    let output = match tokio::time::timeout(timeout, run).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => {
            return Err(SessionError::new(step, format!("`{program}` failed: {e}")));
        }
        Err(_) => {
            return Err(SessionError::new(
                step,
                format!(
                    "`{program}` did not finish within {:.1} s (killed)",
                    timeout.as_secs_f64()
                ),
            ))
        }
    };
    if !output.status.success() {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let mut stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let printed = stdout.trim();
        if !printed.is_empty() {
            stderr = stderr.replace(printed, "[redacted]");
        }
        let excerpt: String = stderr.trim().chars().take(STDERR_EXCERPT).collect();
        return Err(SessionError::new(
            step,
            format!("`{program}` exited with {}: stderr: {excerpt:?}", output.status),
        ));
    }
    Ok(output.stdout)
}

/// Applies [`Provisioning`] to a world: provisions it once, then mirrors
/// membership changes.
#[derive(Debug)]
pub struct Provisioner {
    client: Client,
    how: How,
}

#[derive(Debug)]
enum How {
    None,
    Webhooks(Box<Webhooks>),
    Command { argv: Vec<String>, timeout: Duration },
}

/// What a Clerk instance would remember between events: stable ids and
/// creation times.
#[derive(Debug)]
struct Webhooks {
    url: String,
    secret: WebhookSecret,
    instance_id: String,
    /// user id -> email address id.
    email_ids: HashMap<String, String>,
    /// user or org id -> created_at (ms).
    created: HashMap<String, i64>,
    /// org id -> creator's user id.
    creators: HashMap<String, String>,
    /// (user id, org id) -> (membership id, created_at).
    memberships: HashMap<(String, String), (String, i64)>,
}

impl Provisioner {
    /// A provisioner sending through `client`. The webhook secret is
    /// checked here and redacted from the client's transcripts.
    pub fn new(provisioning: Provisioning, client: Client) -> Result<Self, SessionError> {
        let how = match provisioning {
            Provisioning::None => How::None,
            Provisioning::Webhooks { url, secret } => {
                client.register_secret(&secret);
                client.register_secret(secret.trim_start_matches("whsec_"));
                How::Webhooks(Box::new(Webhooks {
                    url,
                    secret: WebhookSecret::parse(&secret)?,
                    instance_id: clerk_id("ins_")?,
                    email_ids: HashMap::new(),
                    created: HashMap::new(),
                    creators: HashMap::new(),
                    memberships: HashMap::new(),
                }))
            }
            Provisioning::Command { argv, timeout } => {
                if argv.is_empty() {
                    return Err(SessionError::new(
                        "setup command",
                        "the setup command is empty; expected [\"program\", \"arg\", …]",
                    ));
                }
                How::Command { argv, timeout }
            }
        };
        Ok(Self { client, how })
    }

    /// Makes `world` exist at the target: `user.created` for every user,
    /// `organization.created` for every org, `organizationMembership.created`
    /// for every membership (in that order); or one run of the setup command.
    pub async fn provision(&mut self, world: &World) -> Result<(), SessionError> {
        match &mut self.how {
            How::None => Ok(()),
            How::Command { argv, timeout } => run_setup(argv, *timeout, world).await,
            How::Webhooks(hooks) => {
                let events = hooks.world_events(world)?;
                for (kind, data) in events {
                    hooks.deliver(&self.client, kind, data).await?;
                }
                Ok(())
            }
        }
    }

    /// Tells the target that `user` left `org` (keys; `world` as it was
    /// before): `organizationMembership.deleted`, or the setup command with
    /// the membership gone.
    pub async fn member_removed(&mut self, world: &World, user: &str, org: &str) -> Result<(), SessionError> {
        member(world, user, org)?;
        let mut after = world.clone();
        if let Some(u) = after.user_mut(user) {
            u.memberships.retain(|(o, _)| o != org);
        }
        match &mut self.how {
            How::None => Ok(()),
            How::Command { argv, timeout } => run_setup(argv, *timeout, &after).await,
            How::Webhooks(hooks) => {
                let role = member(world, user, org)?.to_string();
                let data = hooks.membership_change(&after, user, org, &role)?;
                hooks
                    .deliver(&self.client, "organizationMembership.deleted", data)
                    .await?;
                if let (Some(u), Some(o)) = (world.user(user), world.org(org)) {
                    hooks.memberships.remove(&(u.id.clone(), o.id.clone()));
                }
                Ok(())
            }
        }
    }

    /// Tells the target that `user` joined `org` (keys) as `role` (`world`
    /// as it was before): `organizationMembership.created`, or the setup
    /// command with the new membership.
    pub async fn member_added(
        &mut self,
        world: &World,
        user: &str,
        org: &str,
        role: &str,
    ) -> Result<(), SessionError> {
        let mut after = world.clone();
        match after.user_mut(user) {
            Some(u) if !u.memberships.iter().any(|(o, _)| o == org) => {
                u.memberships.push((org.to_string(), role.to_string()));
            }
            Some(_) => {
                return Err(SessionError::new(
                    "membership",
                    format!("`{user}` is already a member of `{org}`"),
                ))
            }
            None => {
                return Err(SessionError::new(
                    "membership",
                    format!("no user `{user}` in the world"),
                ))
            }
        }
        if after.org(org).is_none() {
            return Err(SessionError::new(
                "membership",
                format!("no org `{org}` in the world"),
            ));
        }
        match &mut self.how {
            How::None => Ok(()),
            How::Command { argv, timeout } => run_setup(argv, *timeout, &after).await,
            How::Webhooks(hooks) => {
                let data = hooks.membership_change(&after, user, org, role)?;
                hooks
                    .deliver(&self.client, "organizationMembership.created", data)
                    .await
            }
        }
    }

    /// Tells the target that `user`'s role in `org` (keys) is now `role`
    /// (`world` as it was before): `organizationMembership.updated`, or the
    /// setup command with the new role.
    pub async fn role_changed(
        &mut self,
        world: &World,
        user: &str,
        org: &str,
        role: &str,
    ) -> Result<(), SessionError> {
        member(world, user, org)?;
        let mut after = world.clone();
        if let Some(u) = after.user_mut(user) {
            for (o, r) in &mut u.memberships {
                if o == org {
                    *r = role.to_string();
                }
            }
        }
        match &mut self.how {
            How::None => Ok(()),
            How::Command { argv, timeout } => run_setup(argv, *timeout, &after).await,
            How::Webhooks(hooks) => {
                let data = hooks.membership_change(&after, user, org, role)?;
                hooks
                    .deliver(&self.client, "organizationMembership.updated", data)
                    .await
            }
        }
    }
}

/// `user`'s role in `org` (keys), or an error if not a member.
fn member<'w>(world: &'w World, user: &str, org: &str) -> Result<&'w str, SessionError> {
    world.role(user, org).ok_or_else(|| {
        SessionError::new(
            "membership",
            format!("user `{user}` is not a member of org `{org}`"),
        )
    })
}

async fn run_setup(argv: &[String], timeout: Duration, world: &World) -> Result<(), SessionError> {
    let input = world_json(world).to_string().into_bytes();
    run_command("setup command", argv, &[], Some(input), timeout)
        .await
        .map(|_| ())
}

fn members_of<'w>(world: &'w World, org: &str) -> Vec<(&'w User, &'w str)> {
    world
        .users
        .iter()
        .filter_map(|u| {
            u.memberships
                .iter()
                .find(|(o, _)| o == org)
                .map(|(_, r)| (u, r.as_str()))
        })
        .collect()
}

fn public_user_data(user: &User) -> Value {
    json!({
        "user_id": user.id,
        "identifier": user.email,
        "first_name": null,
        "last_name": null,
        "image_url": "",
        "has_image": false,
    })
}

impl Webhooks {
    fn email_id(&mut self, user: &User) -> Result<String, SessionError> {
        if let Some(id) = self.email_ids.get(&user.id) {
            return Ok(id.clone());
        }
        let id = clerk_id("idn_")?;
        self.email_ids.insert(user.id.clone(), id.clone());
        Ok(id)
    }

    fn created_at(&mut self, id: &str, now: i64) -> i64 {
        *self.created.entry(id.to_string()).or_insert(now)
    }

    fn user_json(&mut self, user: &User, now: i64) -> Result<Value, SessionError> {
        let email_id = self.email_id(user)?;
        let created = self.created_at(&user.id, now);
        Ok(json!({
            "id": user.id,
            "object": "user",
            "username": null,
            "first_name": null,
            "last_name": null,
            "image_url": "",
            "has_image": false,
            "primary_email_address_id": email_id,
            "primary_phone_number_id": null,
            "primary_web3_wallet_id": null,
            "password_enabled": false,
            "two_factor_enabled": false,
            "totp_enabled": false,
            "backup_code_enabled": false,
            "email_addresses": [{
                "id": email_id,
                "object": "email_address",
                "email_address": user.email,
                "verification": { "status": "verified", "strategy": "admin", "attempts": null, "expire_at": null },
                "linked_to": [],
            }],
            "phone_numbers": [],
            "web3_wallets": [],
            "external_accounts": [],
            "enterprise_accounts": [],
            "public_metadata": {},
            "private_metadata": {},
            "unsafe_metadata": {},
            "external_id": null,
            "last_sign_in_at": null,
            "banned": false,
            "locked": false,
            "created_at": created,
            "updated_at": now,
            "last_active_at": null,
        }))
    }

    fn org_json(&mut self, world: &World, org: &Org, now: i64) -> Value {
        let members = members_of(world, &org.key);
        let creator = self.creators.get(&org.id).cloned().or_else(|| {
            members
                .iter()
                .find(|(_, r)| *r == "org:admin")
                .or(members.first())
                .map(|(u, _)| u.id.clone())
        });
        if let Some(c) = &creator {
            self.creators.entry(org.id.clone()).or_insert_with(|| c.clone());
        }
        let created = self.created_at(&org.id, now);
        json!({
            "id": org.id,
            "object": "organization",
            "name": org.name,
            "slug": org.slug,
            "image_url": "",
            "has_image": false,
            "members_count": members.len(),
            "pending_invitations_count": 0,
            "max_allowed_memberships": 0,
            "admin_delete_enabled": true,
            "public_metadata": {},
            "private_metadata": {},
            "created_by": creator,
            "created_at": created,
            "updated_at": now,
        })
    }

    fn membership_json(
        &mut self,
        world: &World,
        user: &User,
        org: &Org,
        role: &str,
        now: i64,
    ) -> Result<Value, SessionError> {
        let key = (user.id.clone(), org.id.clone());
        let (id, created) = match self.memberships.get(&key) {
            Some(m) => m.clone(),
            None => {
                let m = (clerk_id("orgmem_")?, now);
                self.memberships.insert(key, m.clone());
                m
            }
        };
        Ok(json!({
            "id": id,
            "object": "organization_membership",
            "role": role,
            // The harness knows roles, not the permissions behind them.
            "permissions": [],
            "public_metadata": {},
            "private_metadata": {},
            "organization": self.org_json(world, org, now),
            "public_user_data": public_user_data(user),
            "created_at": created,
            "updated_at": now,
        }))
    }

    /// (type, data) of every event that provisions `world`, in order.
    fn world_events(&mut self, world: &World) -> Result<Vec<(&'static str, Value)>, SessionError> {
        let now = now_ms();
        let mut events = Vec::new();
        for user in &world.users {
            events.push(("user.created", self.user_json(user, now)?));
        }
        for org in &world.orgs {
            events.push(("organization.created", self.org_json(world, org, now)));
        }
        for org in &world.orgs {
            for (user, role) in members_of(world, &org.key) {
                events.push((
                    "organizationMembership.created",
                    self.membership_json(world, user, org, role, now)?,
                ));
            }
        }
        Ok(events)
    }

    /// The membership of `user` in `org` (keys) with `role`, against `world`
    /// as it is after the change.
    fn membership_change(
        &mut self,
        world: &World,
        user: &str,
        org: &str,
        role: &str,
    ) -> Result<Value, SessionError> {
        let (Some(u), Some(o)) = (world.user(user), world.org(org)) else {
            return Err(SessionError::new(
                "webhook",
                format!("no user `{user}` or org `{org}` in the world"),
            ));
        };
        self.membership_json(world, u, o, role, now_ms())
    }

    async fn deliver(&self, client: &Client, kind: &str, data: Value) -> Result<(), SessionError> {
        let timestamp_ms = now_ms();
        let event = json!({
            "data": data,
            "object": "event",
            "type": kind,
            "timestamp": timestamp_ms,
            "instance_id": self.instance_id,
            "event_attributes": { "http_request": { "client_ip": "", "user_agent": "" } },
        });
        let body = event.to_string().into_bytes();
        let msg_id = clerk_id("msg_")?;
        let timestamp = timestamp_ms / 1000;
        let signature = self.secret.sign(&msg_id, timestamp, &body);
        let request = Request::new("POST", self.url.clone())
            .header("svix-id", msg_id)
            .header("svix-timestamp", timestamp.to_string())
            .header("svix-signature", signature)
            .header("user-agent", "Svix-Webhooks/1.0 (tenantry)")
            .raw("application/json", body);
        let reply = client.send(request).await;
        if (200..300).contains(&reply.status) {
            return Ok(());
        }
        let excerpt: String = String::from_utf8_lossy(&reply.body).chars().take(300).collect();
        // A target may echo what it was configured with.
        let excerpt = self.secret.scrub(&excerpt);
        Err(SessionError::new(
            "webhook",
            format!(
                "`{kind}` to {}: HTTP {}: {excerpt}",
                self.url,
                if reply.status == 0 {
                    "no response".to_string()
                } else {
                    reply.status.to_string()
                }
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Svix's published test vector (svix-webhooks, libraries' shared tests).
    #[test]
    fn signatures_match_svixs_test_vector() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_ne!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265331,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(!format!("{secret:?}").contains("MfKQ"));
        assert_eq!(
            secret.scrub("bad whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw / MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "bad [redacted] / [redacted]"
        );
    }

    #[test]
    fn secrets_must_be_whsec_base64() {
        assert_eq!(
            WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .unwrap_err()
                .step,
            "webhook secret"
        );
        assert!(WebhookSecret::parse("whsec_not base64!").is_err());
        assert!(WebhookSecret::parse("whsec_").is_err());
        let p = Provisioning::Webhooks {
            url: "/hooks".into(),
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        };
        assert!(!format!("{p:?}").contains("MfKQ"));
    }

    #[test]
    fn clerk_ids_have_27_alphanumerics() {
        let a = clerk_id("user_").unwrap();
        let b = clerk_id("user_").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 5 + 27);
        assert!(a[5..].chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
    }
}
