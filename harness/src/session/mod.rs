//! Session sources: how the harness gets a session token for `user@org`.
//!
//! - `clerk-api` ([`clerk`], [`Sessions::clerk`]): a Clerk-compatible
//!   identity service (the reference server's, or a Clerk development
//!   instance) provisions the world and issues real tokens.
//! - `mint` ([`mint`], [`Sessions::mint`]): the harness acts as the target's
//!   Clerk instance — it signs Clerk v2 session tokens with its own RSA key
//!   and serves the JWKS at `/.well-known/jwks.json` and `/v1/jwks` on a
//!   loopback listener (and can write the public key as PEM).
//! - `command` ([`command`], [`Sessions::command`]): an external command
//!   prints a token for `user@org`.
//!
//! With `mint` and `command` the harness assigns Clerk-shaped ids itself and
//! tells the target about the world per [`Provisioning`]: Clerk-format
//! webhooks signed with the Svix scheme, a setup command, or nothing.
//!
//! Every source provisions a [`WorldSpec`] into a [`World`], hands out tokens
//! for `user@org` (or the personal account), and applies membership changes.

pub mod clerk;
pub mod command;
pub mod mint;

use std::collections::HashMap;

use crate::client::{Client, Request};
use crate::oracle::new_canary;
use crate::world::{Org, User, World, WorldSpec};

pub use crate::provision::Provisioning;
pub use clerk::{ClerkApi, Session};
pub use command::CommandConfig;
pub use mint::MintConfig;

/// Why a session source did not cooperate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("identity service: {step}: {detail}")]
pub struct SessionError {
    /// The step.
    pub step: &'static str,
    /// What came back.
    pub detail: String,
}

impl SessionError {
    /// An error at `step`.
    pub fn new(step: &'static str, detail: impl Into<String>) -> Self {
        Self {
            step,
            detail: detail.into(),
        }
    }
}

/// Where the token goes on a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Placement {
    /// `Authorization: Bearer <token>`.
    #[default]
    Header,
    /// `Cookie: __session=<token>`.
    Cookie,
}

impl Placement {
    /// `request` carrying `token`.
    pub fn apply(self, request: Request, token: &str) -> Request {
        match self {
            Placement::Header => request.bearer(token),
            Placement::Cookie => request.header("cookie", format!("__session={token}")),
        }
    }
}

/// A token the identity service issues besides the app's own session token;
/// the token suite checks that each is refused as a session token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issued<'a> {
    /// From the Backend API with the secret key: no `azp`.
    BackendApi,
    /// Requested by a browser at another origin (another app of the same
    /// instance): `azp` is that origin.
    ForOrigin(&'a str),
    /// From JWT template `name`: no `sid`.
    Template(&'a str),
}

/// A session source with its state (signed-in devices, minted keys, …).
#[derive(Debug)]
pub struct Sessions {
    source: Source,
    placement: Placement,
}

#[derive(Debug)]
enum Source {
    Clerk(ClerkSource),
    Mint(Box<mint::MintSource>),
    Command(command::CommandSource),
}

impl Sessions {
    /// `clerk-api`: the Clerk-compatible identity service behind `client`.
    pub fn clerk(client: Client, secret_key: &str, origin: Option<&str>) -> Self {
        Self {
            source: Source::Clerk(ClerkSource {
                api: ClerkApi::new(client.clone(), secret_key, origin),
                client,
                password: None,
                devices: HashMap::new(),
            }),
            placement: Placement::Header,
        }
    }

    /// `mint`: the harness signs Clerk v2 tokens itself and serves their
    /// JWKS on `config.listen` until the returned value is dropped; the
    /// world reaches the target per `config.provisioning`, through `client`.
    pub async fn mint(config: MintConfig, client: Client) -> Result<Self, SessionError> {
        Ok(Self {
            source: Source::Mint(Box::new(mint::MintSource::start(config, client).await?)),
            placement: Placement::Header,
        })
    }

    /// `command`: `config.argv` prints a token for `user@org`; the world
    /// reaches the target per `config.provisioning`, through `client`.
    pub fn command(config: CommandConfig, client: Client) -> Result<Self, SessionError> {
        Ok(Self {
            source: Source::Command(command::CommandSource::new(config, client)?),
            placement: Placement::Header,
        })
    }

    /// `mint`: the base URL of the JWKS listener (`http://127.0.0.1:<port>`),
    /// the `apiUrl` / `CLERK_API_URL` to give a Clerk SDK. `None` for other
    /// sources.
    pub fn issuer_base(&self) -> Option<String> {
        match &self.source {
            Source::Mint(m) => Some(m.base().to_string()),
            _ => None,
        }
    }

    /// `mint`: the URL of the JWKS (`…/.well-known/jwks.json`). `None` for
    /// other sources.
    pub fn jwks_url(&self) -> Option<String> {
        self.issuer_base()
            .map(|base| format!("{base}/.well-known/jwks.json"))
    }

    /// `clerk-api`: the password every user provisioned so far signs in
    /// with (chosen per run, registered as a secret with the client). `None`
    /// for other sources, or before a world is provisioned.
    pub fn password(&self) -> Option<&str> {
        match &self.source {
            Source::Clerk(c) => c.password.as_deref(),
            _ => None,
        }
    }

    /// `mint`: the public key as SPKI PEM (Clerk's `jwtKey`). `None` for
    /// other sources.
    pub fn public_pem(&self) -> Option<&str> {
        match &self.source {
            Source::Mint(m) => Some(m.public_pem()),
            _ => None,
        }
    }

    /// `mint`: the signing key as (`kid`, PKCS#8 DER), for attacks that need
    /// validly signed tokens with chosen claims. `None` for other sources.
    pub fn signing_key_pkcs8(&self) -> Result<Option<(String, Vec<u8>)>, SessionError> {
        match &self.source {
            Source::Mint(m) => m.signing_key_pkcs8().map(Some),
            _ => Ok(None),
        }
    }

    /// `clerk-api`: creates JWT template `name` with `claims`; `false` for
    /// sources that have no templates.
    pub async fn create_template(
        &mut self,
        name: &str,
        claims: serde_json::Value,
    ) -> Result<bool, SessionError> {
        match &mut self.source {
            Source::Clerk(c) => c.api.create_template(name, claims).await.map(|_| true),
            _ => Ok(false),
        }
    }

    /// `clerk-api`: a token of kind `kind` for `user` with `org` active.
    /// `None` for sources that cannot issue one.
    pub async fn issued_token(
        &mut self,
        world: &World,
        user: &str,
        org: Option<&str>,
        kind: Issued<'_>,
    ) -> Result<Option<String>, SessionError> {
        let Source::Clerk(c) = &mut self.source else {
            return Ok(None);
        };
        let user = world
            .user(user)
            .ok_or_else(|| SessionError::new("token", format!("no user `{user}` in the world")))?;
        let org = match org {
            Some(key) => Some(
                world
                    .org(key)
                    .ok_or_else(|| SessionError::new("token", format!("no org `{key}` in the world")))?,
            ),
            None => None,
        };
        let session = c.device(user).await?;
        c.api.set_active(&session, org.map(|o| o.id.as_str())).await?;
        let token = match kind {
            Issued::BackendApi => c.api.backend_token(&session).await?,
            Issued::ForOrigin(origin) => c.api.token_for_origin(&session, origin).await?,
            Issued::Template(name) => c.api.template_token(&session, name).await?,
        };
        Ok(Some(token))
    }

    /// Tokens go here on requests.
    pub fn with_placement(mut self, placement: Placement) -> Self {
        self.placement = placement;
        self
    }

    /// Where tokens go.
    pub fn placement(&self) -> Placement {
        self.placement
    }

    /// Makes `spec` exist at the target.
    pub async fn provision(&mut self, spec: &WorldSpec) -> Result<World, SessionError> {
        check_spec(spec)?;
        match &mut self.source {
            Source::Clerk(c) => c.provision(spec).await,
            Source::Mint(m) => m.provision(spec).await,
            Source::Command(c) => c.provision(spec).await,
        }
    }

    /// A fresh token for `user` with `org` active (keys; `None`: the
    /// personal account).
    pub async fn token(
        &mut self,
        world: &World,
        user: &str,
        org: Option<&str>,
    ) -> Result<String, SessionError> {
        let user = world
            .user(user)
            .ok_or_else(|| SessionError::new("token", format!("no user `{user}` in the world")))?;
        let org = match org {
            Some(key) => Some(
                world
                    .org(key)
                    .ok_or_else(|| SessionError::new("token", format!("no org `{key}` in the world")))?,
            ),
            None => None,
        };
        match &mut self.source {
            Source::Clerk(c) => c.token(user, org).await,
            Source::Mint(m) => m.token(user, org),
            Source::Command(c) => c.token(user, org).await,
        }
    }

    /// Removes `user` from `org` (keys) at the target and in `world`.
    pub async fn remove_member(
        &mut self,
        world: &mut World,
        user: &str,
        org: &str,
    ) -> Result<(), SessionError> {
        let (user_id, org_id) = ids(world, user, org)?;
        match &mut self.source {
            Source::Clerk(c) => c.api.remove_member(&org_id, &user_id).await?,
            Source::Mint(m) => m.provisioner.member_removed(world, user, org).await?,
            Source::Command(c) => c.provisioner.member_removed(world, user, org).await?,
        }
        if let Some(u) = world.user_mut(user) {
            u.memberships.retain(|(o, _)| o != org);
        }
        Ok(())
    }

    /// Adds `user` to `org` (keys) as `role` at the target and in `world`.
    pub async fn add_member(
        &mut self,
        world: &mut World,
        user: &str,
        org: &str,
        role: &str,
    ) -> Result<(), SessionError> {
        let (user_id, org_id) = ids(world, user, org)?;
        match &mut self.source {
            Source::Clerk(c) => c.api.add_member(&org_id, &user_id, role).await?,
            Source::Mint(m) => m.provisioner.member_added(world, user, org, role).await?,
            Source::Command(c) => c.provisioner.member_added(world, user, org, role).await?,
        }
        if let Some(u) = world.user_mut(user) {
            u.memberships.push((org.to_string(), role.to_string()));
        }
        Ok(())
    }

    /// Changes `user`'s role in `org` (keys) at the target and in `world`.
    pub async fn set_role(
        &mut self,
        world: &mut World,
        user: &str,
        org: &str,
        role: &str,
    ) -> Result<(), SessionError> {
        let (user_id, org_id) = ids(world, user, org)?;
        match &mut self.source {
            Source::Clerk(c) => c.api.set_role(&org_id, &user_id, role).await?,
            Source::Mint(m) => m.provisioner.role_changed(world, user, org, role).await?,
            Source::Command(c) => c.provisioner.role_changed(world, user, org, role).await?,
        }
        if let Some(u) = world.user_mut(user) {
            for (o, r) in &mut u.memberships {
                if o == org {
                    *r = role.to_string();
                }
            }
        }
        Ok(())
    }
}

fn ids(world: &World, user: &str, org: &str) -> Result<(String, String), SessionError> {
    let u = world
        .user(user)
        .ok_or_else(|| SessionError::new("membership", format!("no user `{user}` in the world")))?;
    let o = world
        .org(org)
        .ok_or_else(|| SessionError::new("membership", format!("no org `{org}` in the world")))?;
    Ok((u.id.clone(), o.id.clone()))
}

/// Every membership names an org of the spec, every org has a member.
fn check_spec(spec: &WorldSpec) -> Result<(), SessionError> {
    for user in &spec.users {
        for (org, _) in &user.memberships {
            if !spec.orgs.iter().any(|o| &o.key == org) {
                return Err(SessionError::new(
                    "world",
                    format!(
                        "user `{}` is a member of `{org}`, which the world does not declare",
                        user.key
                    ),
                ));
            }
        }
    }
    for org in &spec.orgs {
        if !spec
            .users
            .iter()
            .any(|u| u.memberships.iter().any(|(o, _)| o == &org.key))
        {
            return Err(SessionError::new(
                "world",
                format!("org `{}` has no members", org.key),
            ));
        }
    }
    Ok(())
}

#[derive(Debug)]
struct ClerkSource {
    api: ClerkApi,
    client: Client,
    password: Option<String>,
    /// One signed-in device per user id.
    devices: HashMap<String, Session>,
}

impl ClerkSource {
    async fn provision(&mut self, spec: &WorldSpec) -> Result<World, SessionError> {
        let password = self
            .password
            .get_or_insert_with(|| format!("{}-{}", new_canary(), new_canary()))
            .clone();
        self.client.register_secret(&password);
        let mut world = World::default();
        for user in &spec.users {
            let id = self.api.create_user(&user.email, &password).await?;
            world.users.push(User {
                key: user.key.clone(),
                id,
                email: user.email.clone(),
                memberships: Vec::new(),
            });
        }
        for org in &spec.orgs {
            // The creator becomes admin: pick an admin member if there is one.
            let members: Vec<(usize, &str)> = spec
                .users
                .iter()
                .enumerate()
                .filter_map(|(i, u)| {
                    u.memberships
                        .iter()
                        .find(|(o, _)| o == &org.key)
                        .map(|(_, r)| (i, r.as_str()))
                })
                .collect();
            let (creator, creator_role) = members
                .iter()
                .copied()
                .find(|(_, r)| *r == "org:admin")
                .unwrap_or(members[0]);
            let creator_id = world.users[creator].id.clone();
            let (id, slug) = self.api.create_org(&org.name, &creator_id).await?;
            if creator_role != "org:admin" {
                self.api.set_role(&id, &creator_id, creator_role).await?;
            }
            world.users[creator]
                .memberships
                .push((org.key.clone(), creator_role.to_string()));
            for &(i, role) in members.iter().filter(|(i, _)| *i != creator) {
                self.api.add_member(&id, &world.users[i].id, role).await?;
                world.users[i]
                    .memberships
                    .push((org.key.clone(), role.to_string()));
            }
            world.orgs.push(Org {
                key: org.key.clone(),
                id,
                slug,
                name: org.name.clone(),
            });
        }
        Ok(world)
    }

    /// The user's signed-in device (signing in the first time).
    async fn device(&mut self, user: &User) -> Result<Session, SessionError> {
        if !self.devices.contains_key(&user.id) {
            let password = self.password.clone().ok_or_else(|| {
                SessionError::new("sign in", "the world was not provisioned by this source")
            })?;
            let session = self.api.sign_in(&user.email, &password).await?;
            self.devices.insert(user.id.clone(), session);
        }
        Ok(self.devices[&user.id].clone())
    }

    async fn token(&mut self, user: &User, org: Option<&Org>) -> Result<String, SessionError> {
        let session = self.device(user).await?;
        self.api.set_active(&session, org.map(|o| o.id.as_str())).await?;
        self.api.token(&session).await
    }
}
