//! The bypass list: trusted orgs that are never limited (and cost no store
//! call). Operators change `rate_limit.bypass_orgs` in the config file; the
//! server notices the change (polling the file) or a SIGHUP and swaps the
//! list in without a restart. A file that no longer parses keeps the old list
//! and logs why, with file:line:column. Reading the file is the caller's
//! ([`ReadList`]: the server passes the config loader's), so the limiter does
//! not depend on the configuration's shape.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// The current bypass list.
#[derive(Debug, Default)]
pub struct Bypass {
    orgs: RwLock<Arc<BTreeSet<String>>>,
}

impl Bypass {
    /// A list of `orgs`.
    pub fn new(orgs: impl IntoIterator<Item = String>) -> Self {
        Self {
            orgs: RwLock::new(Arc::new(orgs.into_iter().collect())),
        }
    }

    /// Whether `org` is on the list.
    pub fn contains(&self, org: &str) -> bool {
        self.orgs.read().unwrap_or_else(|p| p.into_inner()).contains(org)
    }

    /// The list, sorted.
    pub fn list(&self) -> Vec<String> {
        self.orgs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Replaces the list; returns whether it changed.
    pub fn replace(&self, orgs: impl IntoIterator<Item = String>) -> bool {
        let fresh: BTreeSet<String> = orgs.into_iter().collect();
        let mut current = self.orgs.write().unwrap_or_else(|p| p.into_inner());
        if **current == fresh {
            return false;
        }
        *current = Arc::new(fresh);
        true
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Reads the bypass list from a config file, or says why it cannot.
pub type ReadList = fn(&Path) -> Result<Vec<String>, String>;

/// Re-reads `path` with `read` and applies the list. Only the file is read:
/// the environment cannot have changed since the server started (and a
/// process that embeds the server may carry variables meant for something
/// else), and the rest of the file is not applied at run time.
pub fn reload(path: &Path, bypass: &Bypass, read: ReadList) {
    match read(path) {
        Ok(orgs) => {
            if bypass.replace(orgs) {
                tracing::info!(orgs = bypass.list().len(), "rate-limit bypass list reloaded");
            }
        }
        Err(e) => tracing::warn!(error = %e, "config reload failed; keeping the current bypass list"),
    }
}

/// Watches `path` every `interval` (and on SIGHUP) until the task is
/// dropped, reading the list with `read`.
pub async fn watch(path: PathBuf, bypass: Arc<Bypass>, interval: Duration, read: ReadList) {
    let mut last = stamp(&path);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        let signalled = async {
            match hangup.as_mut() {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tick.tick() => {
                let now = stamp(&path);
                if now != last {
                    last = now;
                    reload(&path, &bypass, read);
                }
            }
            _ = signalled => {
                tracing::info!("SIGHUP: reloading the rate-limit bypass list");
                last = stamp(&path);
                reload(&path, &bypass, read);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_reports_changes() {
        let b = Bypass::new(["org_a".to_string()]);
        assert!(b.contains("org_a"));
        assert!(!b.replace(["org_a".to_string()]));
        assert!(b.replace(["org_b".to_string()]));
        assert!(!b.contains("org_a"));
        assert_eq!(b.list(), ["org_b"]);
    }
}
