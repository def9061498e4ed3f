//! Named rate-limit policies and the decisions the stores make.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The route table's rate-limit policies, per organization. Each
/// org-required route names one (`api::routes`); `rate_limit.policies.<name>`
/// in the config overrides its defaults; headers and metrics carry its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PolicyName {
    /// `api.read`: reads, 600 per minute.
    #[serde(rename = "api.read")]
    ApiRead,
    /// `api.write`: creates, updates, deletes, 120 per minute.
    #[serde(rename = "api.write")]
    ApiWrite,
    /// `api.search`: full-text search, 60 per minute.
    #[serde(rename = "api.search")]
    ApiSearch,
    /// `api.exports`: whole-org exports, 10 per minute, failing closed.
    #[serde(rename = "api.exports")]
    ApiExports,
}

impl PolicyName {
    /// Every policy, in the route table's order.
    pub const ALL: [PolicyName; 4] = [
        PolicyName::ApiRead,
        PolicyName::ApiWrite,
        PolicyName::ApiSearch,
        PolicyName::ApiExports,
    ];

    /// The name in headers, metrics and config.
    pub fn name(self) -> &'static str {
        match self {
            PolicyName::ApiRead => "api.read",
            PolicyName::ApiWrite => "api.write",
            PolicyName::ApiSearch => "api.search",
            PolicyName::ApiExports => "api.exports",
        }
    }

    /// The policy before config overrides it.
    pub fn default_policy(self) -> Policy {
        let per_minute = |limit| Policy::new(self.name(), limit, Duration::from_secs(60));
        match self {
            PolicyName::ApiRead => per_minute(600),
            PolicyName::ApiWrite => per_minute(120),
            PolicyName::ApiSearch => per_minute(60),
            // Exports scan a whole org: when the limiter cannot count, refuse.
            PolicyName::ApiExports => per_minute(10).fail(FailMode::Closed),
        }
    }
}

/// A plain `enum` of the names, so a map keyed by policy (the config's
/// overrides) has one property per policy in the schema the environment
/// overlay walks.
impl schemars::JsonSchema for PolicyName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PolicyName".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "enum": PolicyName::ALL.map(PolicyName::name),
        })
    }
}

impl std::fmt::Display for PolicyName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a store counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// Exact sliding window (a log of admission times): in **every** interval
    /// of length `window`, at most `limit` requests are admitted. Memory:
    /// up to `limit` timestamps per org and policy. The default.
    SlidingWindow,
    /// Fixed window aligned to multiples of `window` (Redis time): at most
    /// `limit` per aligned window, so at most `2 × limit` in an arbitrary
    /// interval of length `window` (a burst at the end of one window and the
    /// start of the next). One counter per org and policy.
    FixedWindow,
}

impl Algorithm {
    /// The config and metrics name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::SlidingWindow => "sliding-window",
            Algorithm::FixedWindow => "fixed-window",
        }
    }

    /// The most requests admitted in any interval of one window.
    pub fn admission_bound(self, limit: u32) -> u64 {
        match self {
            Algorithm::SlidingWindow => u64::from(limit),
            Algorithm::FixedWindow => 2 * u64::from(limit),
        }
    }
}

/// What happens when the store cannot answer within the timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FailMode {
    /// Admit, marked with a header, a WARN log and a metric.
    Open,
    /// Refuse with 503 and `Retry-After: 1`, marked the same way.
    Closed,
}

impl FailMode {
    /// The config and metrics name.
    pub fn name(self) -> &'static str {
        match self {
            FailMode::Open => "open",
            FailMode::Closed => "closed",
        }
    }
}

/// A named policy: `limit` requests per `window` per organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The name (in headers and metrics): `[a-z0-9._-]`, 1..=64.
    pub name: String,
    /// Requests admitted per window.
    pub limit: u32,
    /// The window.
    pub window: Duration,
    /// The counting algorithm.
    pub algorithm: Algorithm,
    /// What to do when the store is down.
    pub fail: FailMode,
}

impl Policy {
    /// A sliding-window, fail-open policy.
    pub fn new(name: &str, limit: u32, window: Duration) -> Self {
        Self {
            name: name.into(),
            limit,
            window,
            algorithm: Algorithm::SlidingWindow,
            fail: FailMode::Open,
        }
    }

    /// With another algorithm.
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// With another failure mode.
    pub fn fail(mut self, fail: FailMode) -> Self {
        self.fail = fail;
        self
    }

    /// The window in milliseconds (at least 1).
    pub fn window_ms(&self) -> u64 {
        (self.window.as_millis() as u64).max(1)
    }

    /// Whether `name` is a valid policy name.
    pub fn valid_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    }
}

/// A store's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Admitted?
    pub allowed: bool,
    /// Requests left in the current window after this one.
    pub remaining: u32,
    /// Milliseconds until the quota (or, when refused, the next slot) frees.
    pub reset_ms: u64,
}

impl Decision {
    /// Seconds for `Retry-After` and `t=`: rounded up, at least 1.
    pub fn reset_secs(&self) -> u64 {
        self.reset_ms.div_ceil(1000).max(1)
    }
}

/// The store key of `subject` (an org id) under `policy`: `rl:{<org>}:<policy>`.
/// The org sits in a Redis Cluster hash tag; `%`, `{`, `}` and `:` in it are
/// percent-encoded, so the tag is exactly the org and no two orgs share a key.
pub fn key(subject: &str, policy: &str) -> String {
    let mut out = String::with_capacity(subject.len() + policy.len() + 8);
    out.push_str("rl:{");
    for c in subject.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            ':' => out.push_str("%3A"),
            c => out.push(c),
        }
    }
    out.push_str("}:");
    out.push_str(policy);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_put_exactly_the_org_in_the_hash_tag_and_never_collide() {
        assert_eq!(key("org_a", "api.read"), "rl:{org_a}:api.read");
        let hostile = ["a}:x", "a", "a%7D:x", "{a}", "a:b", "a%3Ab", "", "}{"];
        let keys: Vec<String> = hostile.iter().map(|o| key(o, "p")).collect();
        for (i, k) in keys.iter().enumerate() {
            let tag = &k[k.find('{').unwrap() + 1..k.find('}').unwrap()];
            assert!(!tag.contains(['{', '}', ':']), "{k}");
            for (j, other) in keys.iter().enumerate() {
                if i != j {
                    assert_ne!(k, other, "{} vs {}", hostile[i], hostile[j]);
                }
            }
        }
    }

    #[test]
    fn reset_seconds_round_up_and_are_at_least_one() {
        let d = |reset_ms| Decision {
            allowed: false,
            remaining: 0,
            reset_ms,
        };
        assert_eq!(d(0).reset_secs(), 1);
        assert_eq!(d(1).reset_secs(), 1);
        assert_eq!(d(1000).reset_secs(), 1);
        assert_eq!(d(1001).reset_secs(), 2);
    }

    #[test]
    fn policy_names_are_valid_and_round_trip_through_serde() {
        for name in PolicyName::ALL {
            assert!(Policy::valid_name(name.name()), "{name}");
            assert_eq!(name.default_policy().name, name.name());
            let json = serde_json::to_string(&name).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<PolicyName>(&json).unwrap(), name);
        }
    }

    #[test]
    fn names() {
        assert!(Policy::valid_name("api.read"));
        assert!(!Policy::valid_name("API"));
        assert!(!Policy::valid_name("a\"b"));
        assert!(!Policy::valid_name(""));
    }
}
