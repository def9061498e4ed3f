//! An org-keyed cache for expensive reads. The key type always contains the
//! org: there is no way to build a key without one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[cfg(feature = "inject")]
use crate::inject::Flaws;
use crate::tenant::OrgId;

/// A cache key: the org, and which read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrgKey {
    org: String,
    name: &'static str,
}

/// A TTL cache of `V` per (org, name).
#[derive(Debug)]
pub struct OrgCache<V> {
    entries: Mutex<HashMap<OrgKey, (Instant, V)>>,
    ttl: Duration,
    max_entries: usize,
    #[cfg(feature = "inject")]
    flaws: Flaws,
}

impl<V: Clone> OrgCache<V> {
    /// A cache whose entries live for `ttl`, at most `max_entries` of them.
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            max_entries: max_entries.max(1),
            #[cfg(feature = "inject")]
            flaws: Flaws::none(),
        }
    }

    /// Injects flaws.
    #[cfg(feature = "inject")]
    pub fn with_flaws(mut self, flaws: Flaws) -> Self {
        self.flaws = flaws;
        self
    }

    /// The key for `name` in `org`.
    pub fn key(&self, org: &OrgId, name: &'static str) -> OrgKey {
        let org = if flaw!(self.flaws, CacheKeyWithoutOrg) {
            String::new()
        } else {
            org.as_str().to_string()
        };
        OrgKey { org, name }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OrgKey, (Instant, V)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh cached value, if any.
    pub fn get(&self, key: &OrgKey) -> Option<V> {
        let entries = self.lock();
        entries
            .get(key)
            .filter(|(stored, _)| stored.elapsed() < self.ttl)
            .map(|(_, value)| value.clone())
    }

    /// Stores a value, evicting expired entries (and, if still full, all) first.
    pub fn put(&self, key: OrgKey, value: V) {
        let mut entries = self.lock();
        if entries.len() >= self.max_entries {
            let ttl = self.ttl;
            entries.retain(|_, (stored, _)| stored.elapsed() < ttl);
            if entries.len() >= self.max_entries {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), value));
    }

    /// Drops every entry of `org` (after a write in that org).
    pub fn invalidate(&self, org: &OrgId) {
        let key_org = self.key(org, "").org;
        self.lock().retain(|key, _| key.org != key_org);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_per_org_and_expire() {
        let cache = OrgCache::new(Duration::from_millis(50), 10);
        let a = OrgId::new("org_a").unwrap();
        let b = OrgId::new("org_b").unwrap();
        cache.put(cache.key(&a, "stats"), 1);
        assert_eq!(cache.get(&cache.key(&a, "stats")), Some(1));
        assert_eq!(cache.get(&cache.key(&b, "stats")), None);
        cache.invalidate(&a);
        assert_eq!(cache.get(&cache.key(&a, "stats")), None);
        cache.put(cache.key(&a, "stats"), 2);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&cache.key(&a, "stats")), None);
    }
}
