//! Validation: ranges and consistency, checked after the file and the
//! environment are merged. Every error names the dotted key (the loader adds
//! the environment variable when one set it) and says what is expected.

use super::{AuthConfig, Config, ConfigError, StoreKind};

impl Config {
    /// Checks ranges and consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::invalid(key, message);
        if !(1..=1000).contains(&self.database.pool_size) {
            return Err(invalid("database.pool_size", "expected 1..=1000"));
        }
        if !(100..=600_000).contains(&self.database.statement_timeout_ms) {
            return Err(invalid(
                "database.statement_timeout_ms",
                "expected 100..=600000 milliseconds",
            ));
        }
        if !(100..=3_600_000).contains(&self.server.request_timeout_ms) {
            return Err(invalid(
                "server.request_timeout_ms",
                "expected 100..=3600000 milliseconds",
            ));
        }
        if !(1024..=(64 << 20)).contains(&self.server.max_body_bytes) {
            return Err(invalid("server.max_body_bytes", "expected 1024..=67108864 bytes"));
        }
        if !(1..=1_000_000).contains(&self.server.max_connections) {
            return Err(invalid("server.max_connections", "expected 1..=1000000"));
        }
        for (key, value) in [
            (
                "server.header_read_timeout_ms",
                self.server.header_read_timeout_ms,
            ),
            ("server.idle_timeout_ms", self.server.idle_timeout_ms),
            ("server.body_timeout_ms", self.server.body_timeout_ms),
        ] {
            if !(100..=3_600_000).contains(&value) {
                return Err(invalid(key, "expected 100..=3600000 milliseconds"));
            }
        }
        if self.cache.stats_ttl_ms > 3_600_000 {
            return Err(invalid(
                "cache.stats_ttl_ms",
                "expected at most 3600000 milliseconds",
            ));
        }
        if !(1..=1_000_000).contains(&self.cache.max_entries) {
            return Err(invalid("cache.max_entries", "expected 1..=1000000"));
        }
        if !(1..=64).contains(&self.exports.workers) {
            return Err(invalid("exports.workers", "expected 1..=64"));
        }
        if !(1..=1_000_000).contains(&self.exports.queue_capacity) {
            return Err(invalid("exports.queue_capacity", "expected 1..=1000000"));
        }
        if !(100..=86_400_000).contains(&self.exports.lease_ms) {
            return Err(invalid(
                "exports.lease_ms",
                "expected 100..=86400000 milliseconds",
            ));
        }
        if !(1..=100).contains(&self.exports.max_attempts) {
            return Err(invalid("exports.max_attempts", "expected 1..=100"));
        }
        if !(10..=600_000).contains(&self.exports.poll_interval_ms) {
            return Err(invalid(
                "exports.poll_interval_ms",
                "expected 10..=600000 milliseconds",
            ));
        }
        if self.auth.issuer.trim().is_empty() {
            return Err(invalid(
                "auth.issuer",
                "expected the issuer URL of session tokens",
            ));
        }
        if !(0..=AuthConfig::MAX_LEEWAY_SECS).contains(&self.auth.leeway_secs) {
            return Err(invalid("auth.leeway_secs", "expected 0..=5 seconds"));
        }
        if self.auth.authorized_parties.iter().any(|p| p.trim().is_empty()) {
            return Err(invalid(
                "auth.authorized_parties",
                "expected origins like https://app.example.com",
            ));
        }
        if !(60_000..=86_400_000).contains(&self.auth.key_overlap_ms) {
            return Err(invalid(
                "auth.key_overlap_ms",
                "expected 60000..=86400000 milliseconds",
            ));
        }
        if let Some(key) = &self.identity.secret_key {
            let rest = key
                .strip_prefix("sk_test_")
                .or_else(|| key.strip_prefix("sk_live_"));
            let ok = rest.is_some_and(|r| r.len() >= 32 && r.bytes().all(|b| b.is_ascii_alphanumeric()));
            if !ok {
                return Err(invalid(
                    "identity.secret_key",
                    "expected sk_test_ or sk_live_ followed by at least 32 letters and digits",
                ));
            }
        }
        if !(30..=3600).contains(&self.identity.session_token_lifetime_secs) {
            return Err(invalid(
                "identity.session_token_lifetime_secs",
                "expected 30..=3600 seconds",
            ));
        }
        if !(300..=31_536_000).contains(&self.identity.session_lifetime_secs) {
            return Err(invalid(
                "identity.session_lifetime_secs",
                "expected 300..=31536000 seconds",
            ));
        }
        if !(60..=3600).contains(&self.identity.code_ttl_secs) {
            return Err(invalid("identity.code_ttl_secs", "expected 60..=3600 seconds"));
        }
        if !(100..=600_000).contains(&self.identity.key_refresh_interval_ms) {
            return Err(invalid(
                "identity.key_refresh_interval_ms",
                "expected 100..=600000 milliseconds",
            ));
        }
        if !(1..=256).contains(&self.identity.pool_size) {
            return Err(invalid("identity.pool_size", "expected 1..=256"));
        }
        if self.identity.client_trust && !self.identity.test_outbox {
            return Err(invalid(
                "identity.client_trust",
                "needs a way to deliver email codes, and this server has no mailer: \
                 set identity.test_outbox = true (test deployments) or identity.client_trust = false",
            ));
        }
        self.validate_rate_limit()?;
        self.validate_oauth()?;
        self.circuit
            .validate()
            .map_err(|(key, message)| invalid(key, message))?;
        if let Some(url) = &self.database.url {
            if url.parse::<tokio_postgres::Config>().is_err() {
                return Err(invalid(
                    "database.url",
                    "expected a Postgres URL like postgres://admin:pw@127.0.0.1:5432/app",
                ));
            }
            match &self.database.app_password {
                None => {
                    return Err(invalid(
                        "database.app_password",
                        "required when database.url is set: the password of the tenantry_app role",
                    ))
                }
                Some(pw) if pw.len() < 12 => {
                    return Err(invalid(
                        "database.app_password",
                        "expected at least 12 characters",
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn validate_oauth(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::invalid(key, message);
        let o = &self.oauth;
        if !(1..=3600).contains(&o.state_ttl_secs) {
            return Err(invalid(
                "oauth.state_ttl_secs",
                "expected 1..=3600 seconds".into(),
            ));
        }
        if o.store_kind() == StoreKind::Redis
            && redis::parse_redis_url(o.redis_url.as_deref().unwrap_or_default()).is_none()
        {
            return Err(invalid(
                "oauth.redis_url",
                "expected a Redis URL like redis://127.0.0.1:6379 (required with oauth.state_store = \"redis\")".into(),
            ));
        }
        if o.token_key.is_some() && o.token_key_bytes().is_none() {
            return Err(invalid(
                "oauth.token_key",
                "expected base64 of exactly 32 bytes (e.g. `head -c 32 /dev/urandom | base64`)".into(),
            ));
        }
        if let Some(bad) = o
            .return_paths
            .iter()
            .find(|p| !p.starts_with('/') || p.starts_with("//") || p.contains(['?', '#', '\\']))
        {
            return Err(invalid(
                "oauth.return_paths",
                format!("`{bad}`: expected relative paths like /settings/integrations"),
            ));
        }
        for (name, p) in &o.providers {
            let name_ok = !name.is_empty()
                && name.len() <= 32
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !name_ok || p.client_id.is_empty() || p.client_secret.is_empty() {
                return Err(invalid(
                    "oauth.providers",
                    format!("provider `{name}`: expected a lowercase name, client_id and client_secret"),
                ));
            }
            if p.authorize_url.is_some() != p.token_url.is_some() {
                return Err(invalid(
                    "oauth.providers",
                    format!("provider `{name}`: set both authorize_url and token_url, or neither (the mock)"),
                ));
            }
        }
        if let Some(url) = &self.server.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.ends_with('/') {
                return Err(invalid(
                    "server.public_url",
                    "expected an origin like https://app.example.com (no trailing slash)".into(),
                ));
            }
        }
        Ok(())
    }

    fn validate_rate_limit(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::invalid(key, message);
        let rl = &self.rate_limit;
        if rl.store_kind() == StoreKind::Redis {
            let url = rl.redis_url.as_deref().unwrap_or_default();
            if redis::parse_redis_url(url).is_none() {
                return Err(invalid(
                    "rate_limit.redis_url",
                    "expected a Redis URL like redis://127.0.0.1:6379 (required with rate_limit.store = \"redis\")"
                        .into(),
                ));
            }
        }
        if !(1..=10_000).contains(&rl.store_timeout_ms) {
            return Err(invalid(
                "rate_limit.store_timeout_ms",
                "expected 1..=10000 milliseconds".into(),
            ));
        }
        if !(100..=3_600_000).contains(&rl.reload_interval_ms) {
            return Err(invalid(
                "rate_limit.reload_interval_ms",
                "expected 100..=3600000 milliseconds".into(),
            ));
        }
        if rl
            .bypass_orgs
            .iter()
            .any(|o| o.trim().is_empty() || o.len() > 256)
        {
            return Err(invalid(
                "rate_limit.bypass_orgs",
                "expected organization ids like org_… (non-empty, at most 256 bytes)".into(),
            ));
        }
        // Policy names are typed (`PolicyName`): an unknown one is refused
        // when the file is parsed, with its position and the known names.
        for (name, o) in &rl.policies {
            if o.limit.is_some_and(|l| !(1..=1_000_000).contains(&l)) {
                return Err(invalid(
                    &format!("rate_limit.policies.\"{name}\".limit"),
                    "expected 1..=1000000 requests".into(),
                ));
            }
            if o.window_secs.is_some_and(|w| !(1..=86_400).contains(&w)) {
                return Err(invalid(
                    &format!("rate_limit.policies.\"{name}\".window_secs"),
                    "expected 1..=86400 seconds".into(),
                ));
            }
        }
        Ok(())
    }
}
