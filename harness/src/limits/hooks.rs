//! [`LimitsHooks`] from a profile's `[rate_limit.hooks]`: the operator's
//! own commands put an org on the bypass list and stop and start the
//! limiter's store, so RL-005 and RL-011 run against any target, and
//! `store_url` lets RL-012 watch the store.

use std::time::Duration;

use futures::future::BoxFuture;

use super::LimitsHooks;
use crate::profile::LimitHooksSpec;
use crate::provision::run_command;
use crate::template;

/// The hooks a profile declares.
#[derive(Debug, Clone)]
pub struct CommandHooks {
    spec: LimitHooksSpec,
}

impl CommandHooks {
    /// Hooks running `spec`'s commands.
    pub fn new(spec: LimitHooksSpec) -> Self {
        Self { spec }
    }

    /// Runs the command of `key` (`argv`, placeholders filled from `vars`,
    /// which also go into the environment as `TENANTRY_<NAME>`); a missing
    /// command or a failure is the reason the check does not run.
    async fn run(
        &self,
        key: &'static str,
        argv: Option<&Vec<String>>,
        vars: &[(&str, &str)],
    ) -> Result<(), String> {
        let Some(argv) = argv else {
            return Err(format!("[rate_limit.hooks] has no `{key}` command"));
        };
        let mut lookup = |name: &str| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string());
        let argv = argv
            .iter()
            .map(|arg| template::fill(arg, &mut lookup))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("`{key}`: {e}"))?;
        let env: Vec<(String, &str)> = vars
            .iter()
            .map(|(name, value)| (format!("TENANTRY_{}", name.to_ascii_uppercase()), *value))
            .collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        run_command(key, &argv, &env, None, self.spec.timeout)
            .await
            .map(|_| ())
            .map_err(|e| format!("the `{key}` hook failed: {}", e.detail))
    }
}

impl LimitsHooks for CommandHooks {
    fn add_bypass_org<'a>(&'a self, org_id: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.run(
                "add_bypass_org",
                self.spec.add_bypass_org.as_ref(),
                &[("org_id", org_id)],
            )
            .await
        })
    }

    fn bypass_reload_within(&self) -> Duration {
        self.spec.bypass_reload
    }

    fn stop_store(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.run("stop_store", self.spec.stop_store.as_ref(), &[]))
    }

    fn start_store(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.run("start_store", self.spec.start_store.as_ref(), &[]))
    }

    fn store_url(&self) -> Option<String> {
        self.spec.store_url.clone()
    }
}
