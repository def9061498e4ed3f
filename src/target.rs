//! The `--target` options shared by the commands that talk to a target: a
//! profile file, the URL of a running reference server, or (without
//! `--target`) the reference stack started for the run.

use std::path::PathBuf;

use anyhow::Context;
use tenantry_harness::client::Client;
use tenantry_harness::profile::Profile;
use tenantry_harness::tokens::{self, RsaKey};
use tenantry_reference::config::Isolation;

use crate::reference_stack::{self, Stack, ORIGIN};

#[derive(Debug, clap::Args)]
pub struct TargetArgs {
    /// The target: a profile file (TOML; see docs/profiles.md), or the base URL of a
    /// running reference server (with --secret-key). Without it, the reference stack
    /// is started for you.
    #[arg(long, value_name = "PROFILE|URL")]
    target: Option<String>,
    #[command(flatten)]
    url: UrlTargetArgs,
    /// The isolation layers the reference stack relies on (its database.isolation):
    /// both (default), app-filter-only (row-level security off) or rls-only (no org
    /// filter in the app's statements). Reference stack only.
    #[arg(
        long,
        value_name = "MODE",
        value_parser = clap::builder::PossibleValuesParser::new(["both", "app-filter-only", "rls-only"])
    )]
    reference_isolation: Option<String>,
    /// Inject a named flaw into the reference stack (repeatable; reference stack only).
    #[cfg(feature = "inject")]
    #[arg(long = "inject", value_name = "NAME")]
    inject: Vec<String>,
}

impl TargetArgs {
    /// The target's profile, and the reference stack when it was started
    /// for this run (stop it when done).
    pub async fn open(&self) -> anyhow::Result<(Profile, Option<Stack>)> {
        #[cfg(feature = "inject")]
        let flaws = self.inject.clone();
        #[cfg(not(feature = "inject"))]
        let flaws: Vec<String> = Vec::new();
        match &self.target {
            Some(target) => {
                if !flaws.is_empty() {
                    anyhow::bail!("--inject applies to the reference stack only; drop --target");
                }
                if self.reference_isolation.is_some() {
                    anyhow::bail!(
                        "--reference-isolation applies to the reference stack started for the run only; \
                         drop --target (a running reference server takes database.isolation from its config)"
                    );
                }
                Ok((self.profile(target)?, None))
            }
            None => {
                let isolation = match &self.reference_isolation {
                    Some(mode) => mode.parse::<Isolation>().map_err(anyhow::Error::msg)?,
                    None => Isolation::Both,
                };
                let stack = reference_stack::start(&flaws, isolation).await?;
                Ok((stack.profile(), Some(stack)))
            }
        }
    }

    /// The profile `target` names.
    fn profile(&self, target: &str) -> anyhow::Result<Profile> {
        self.url.profile(target)
    }
}

/// How a `--target` given as a URL (a running reference server) is reached.
#[derive(Debug, Clone, clap::Args)]
pub struct UrlTargetArgs {
    /// With a URL --target: the reference server's Backend API secret key.
    #[arg(
        long,
        env = "TENANTRY_TARGET_SECRET_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    secret_key: Option<String>,
    /// With a URL --target: the origin to request session tokens as (their azp).
    #[arg(long, value_name = "ORIGIN")]
    origin: Option<String>,
}

impl UrlTargetArgs {
    /// The profile `target` names: a profile file, or a running reference
    /// server's base URL.
    pub fn profile(&self, target: &str) -> anyhow::Result<Profile> {
        if target.starts_with("http://") || target.starts_with("https://") {
            let key = self
                .secret_key
                .clone()
                .context("--secret-key (or TENANTRY_TARGET_SECRET_KEY) is required with a URL --target")?;
            let origin = self.origin.as_deref().unwrap_or(ORIGIN);
            return Ok(Profile::reference(target, &key, origin));
        }
        Ok(Profile::load(&PathBuf::from(target))?)
    }
}

/// `--signing-key`: the target's own token-signing key, when the operator
/// holds it.
#[derive(Debug, clap::Args)]
pub struct SigningKeyArgs {
    /// The target's session-token signing key (PEM: PKCS#8 `PRIVATE KEY` or PKCS#1
    /// `RSA PRIVATE KEY`), if you hold it: the token cases that need a valid signature
    /// (claim checks: exp, nbf, iss, azp, sts, org and role tamper) run too. It must be
    /// a key of the target's JWKS. The reference stack's own key is used without it.
    /// The key never appears in output or reports.
    #[arg(long, value_name = "PEM_FILE")]
    signing_key: Option<PathBuf>,
}

impl SigningKeyArgs {
    /// The key file read and parsed, before anything is sent: a bad one is
    /// an error naming the option and the file.
    pub fn load(&self) -> anyhow::Result<Option<RsaKey>> {
        let Some(path) = &self.signing_key else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--signing-key {}: cannot read it", path.display()))?;
        let key = RsaKey::from_pem("", &text)
            .map_err(|e| anyhow::anyhow!("--signing-key {}: {e}", path.display()))?;
        Ok(Some(key))
    }

    /// The key to re-sign tokens with: `loaded` (checked against the
    /// target's JWKS and named by it), or else the reference stack's own.
    pub async fn resolve(
        loaded: Option<RsaKey>,
        stack: Option<&Stack>,
        profile: &Profile,
        client: &Client,
    ) -> anyhow::Result<Option<RsaKey>> {
        match loaded {
            Some(key) => Ok(Some(
                tokens::adopt_signing_key(profile, client, key)
                    .await
                    .context("--signing-key")?,
            )),
            None => stack.map(Stack::signing_key).transpose(),
        }
    }
}
