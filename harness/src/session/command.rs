//! Session source `command`: an external command prints a session token for
//! `user@org` — for targets whose tokens only their own tooling can make
//! (a CLI of the app, a script calling the identity provider's API).
//!
//! The command runs without a shell. In its arguments `{{ user_id }}`,
//! `{{ user_email }}`, `{{ org_id }}`, `{{ org_slug }}` and `{{ role }}` are
//! filled (empty for the personal account); the same values are in its
//! environment as `TENANTRY_USER_ID`, `TENANTRY_USER_EMAIL`,
//! `TENANTRY_ORG_ID`, `TENANTRY_ORG_SLUG` and `TENANTRY_ORG_ROLE`. Its
//! standard output, trimmed, is the token. Users and orgs get Clerk-shaped
//! ids from the harness; the target learns them through [`Provisioning`].

use std::time::Duration;

use crate::client::Client;
use crate::provision::{assign_ids, run_command, Provisioner, Provisioning};
use crate::template::fill;
use crate::world::{Org, User, World, WorldSpec};

use super::SessionError;

/// How the token command is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandConfig {
    /// Program and arguments, with placeholders.
    pub argv: Vec<String>,
    /// Time limit per run.
    pub timeout: Duration,
    /// How the world gets into the target.
    pub provisioning: Provisioning,
}

/// An external token command.
#[derive(Debug)]
pub(super) struct CommandSource {
    argv: Vec<String>,
    timeout: Duration,
    client: Client,
    pub(super) provisioner: Provisioner,
}

impl CommandSource {
    pub(super) fn new(config: CommandConfig, client: Client) -> Result<Self, SessionError> {
        if config.argv.is_empty() {
            return Err(SessionError::new(
                "token command",
                "the command is empty; expected [\"program\", \"arg\", …]",
            ));
        }
        Ok(Self {
            provisioner: Provisioner::new(config.provisioning, client.clone())?,
            argv: config.argv,
            timeout: config.timeout,
            client,
        })
    }

    pub(super) async fn provision(&mut self, spec: &WorldSpec) -> Result<World, SessionError> {
        let world = assign_ids(spec)?;
        self.provisioner.provision(&world).await?;
        Ok(world)
    }

    /// Runs the command for `user` with `org` active.
    pub(super) async fn token(&self, user: &User, org: Option<&Org>) -> Result<String, SessionError> {
        let (org_id, org_slug, role) = match org {
            Some(org) => {
                let role = user
                    .memberships
                    .iter()
                    .find(|(o, _)| *o == org.key)
                    .map(|(_, r)| r.as_str())
                    .ok_or_else(|| {
                        SessionError::new(
                            "token command",
                            format!("user `{}` is not a member of org `{}`", user.key, org.key),
                        )
                    })?;
                (org.id.as_str(), org.slug.as_str(), role)
            }
            None => ("", "", ""),
        };
        let mut vars = |name: &str| -> Option<String> {
            Some(
                match name {
                    "user_id" => user.id.as_str(),
                    "user_email" => user.email.as_str(),
                    "org_id" => org_id,
                    "org_slug" => org_slug,
                    "role" => role,
                    _ => return None,
                }
                .to_string(),
            )
        };
        let mut argv = Vec::with_capacity(self.argv.len());
        for arg in &self.argv {
            argv.push(fill(arg, &mut vars).map_err(|e| {
                SessionError::new(
                    "token command",
                    format!("argument `{arg}`: {e}; known: user_id, user_email, org_id, org_slug, role"),
                )
            })?);
        }
        let env = [
            ("TENANTRY_USER_ID", user.id.as_str()),
            ("TENANTRY_USER_EMAIL", user.email.as_str()),
            ("TENANTRY_ORG_ID", org_id),
            ("TENANTRY_ORG_SLUG", org_slug),
            ("TENANTRY_ORG_ROLE", role),
        ];
        let stdout = run_command("token command", &argv, &env, None, self.timeout).await?;
        let token = String::from_utf8_lossy(&stdout).trim().to_string();
        if token.is_empty() {
            return Err(SessionError::new(
                "token command",
                format!(
                    "`{}` printed nothing for {}@{}; it must print the token on standard output",
                    self.argv[0],
                    user.key,
                    org.map(|o| o.key.as_str()).unwrap_or("personal")
                ),
            ));
        }
        self.client.register_secret(&token);
        Ok(token)
    }
}
