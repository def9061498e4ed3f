//! The loader's tests: file errors, validation, the environment overlay.

use std::collections::BTreeSet;

use super::*;

/// `vars` as an environment.
fn vars(vars: &[(&str, &str)]) -> BTreeMap<String, String> {
    vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Loads `file` (TOML text, written to a scratch file) under `env`.
fn load(file: Option<&str>, env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    let Some(text) = file else {
        return Config::load_from(None, &vars(env));
    };
    let dir = std::env::temp_dir().join(format!(
        "tenantry-config-{}-{}",
        std::process::id(),
        crate::ids::new_id(crate::ids::IdKind::Project)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tenantry.toml");
    std::fs::write(&path, text).unwrap();
    let loaded = Config::load_from(Some(&path), &vars(env));
    std::fs::remove_dir_all(&dir).unwrap();
    loaded
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    let config = Config::parse(text, Path::new("tenantry.toml"))?;
    config.validate()?;
    Ok(config)
}

#[test]
fn defaults_are_valid() {
    let config = parse("").unwrap();
    assert_eq!(config.database.pool_size, 16);
    assert_eq!(config.server.listen.port(), 8080);
}

#[test]
fn unknown_key_names_file_line_and_column() {
    let err = parse("[database]\npool_size = 4\npoolsize = 5\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("tenantry.toml:3:1:"), "{err}");
    assert!(err.contains("unknown field `poolsize`"), "{err}");
}

#[test]
fn wrong_type_names_position() {
    let err = parse("[database]\npool_size = \"many\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("tenantry.toml:2:13:"), "{err}");
}

#[test]
fn out_of_range_names_the_key() {
    let err = parse("[database]\npool_size = 0\n").unwrap_err().to_string();
    assert_eq!(err, "config key `database.pool_size`: expected 1..=1000");
}

#[test]
fn url_requires_app_password() {
    let err = parse("[database]\nurl = \"postgres://a@127.0.0.1/db\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("database.app_password"), "{err}");
}

#[test]
fn isolation_defaults_to_both_and_takes_each_mode() {
    assert_eq!(parse("").unwrap().database.isolation, Isolation::Both);
    for mode in Isolation::ALL {
        let config = parse(&format!("[database]\nisolation = \"{mode}\"\n")).unwrap();
        assert_eq!(config.database.isolation, mode);
        assert_eq!(mode.name().parse::<Isolation>(), Ok(mode));
    }
    assert!(Isolation::Both.app_filter() && Isolation::Both.rls());
    assert!(Isolation::AppFilterOnly.app_filter() && !Isolation::AppFilterOnly.rls());
    assert!(!Isolation::RlsOnly.app_filter() && Isolation::RlsOnly.rls());
}

#[test]
fn a_bad_isolation_mode_names_the_position_and_the_modes() {
    let err = parse("[database]\nisolation = \"rls\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("tenantry.toml:2:13:"), "{err}");
    assert!(
        err.contains("both") && err.contains("app-filter-only") && err.contains("rls-only"),
        "{err}"
    );
    let err = load(None, &[("TENANTRY_DATABASE_ISOLATION", "none")])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "config key `database.isolation` (from TENANTRY_DATABASE_ISOLATION): expected both, app-filter-only or rls-only, got `none`"
    );
    let config = load(None, &[("TENANTRY_DATABASE_ISOLATION", "rls-only")]).unwrap();
    assert_eq!(config.config.database.isolation, Isolation::RlsOnly);
}

#[test]
fn env_overrides_the_file_and_names_the_variable_on_error() {
    let loaded = load(
        Some("[database]\npool_size = 4\n"),
        &[("TENANTRY_DATABASE_POOL_SIZE", "7")],
    )
    .unwrap();
    assert_eq!(loaded.config.database.pool_size, 7);
    let error = |var: &str, value: &str| load(None, &[(var, value)]).unwrap_err().to_string();
    assert_eq!(
        error("TENANTRY_SERVER_LISTEN", "nope"),
        "config key `server.listen` (from TENANTRY_SERVER_LISTEN): invalid socket address syntax, got `nope`"
    );
    assert_eq!(
        error("TENANTRY_DATABASE_POOL_SIZE", "many"),
        "config key `database.pool_size` (from TENANTRY_DATABASE_POOL_SIZE): expected an integer, got `many`"
    );
    assert_eq!(
        error("TENANTRY_DATABASE_POOL_SIZE", "-1"),
        "config key `database.pool_size` (from TENANTRY_DATABASE_POOL_SIZE): invalid value: integer `-1`, expected usize, got `-1`"
    );
    // In the type's range but not the key's: validation names the variable too.
    assert_eq!(
        error("TENANTRY_DATABASE_POOL_SIZE", "0"),
        "config key `database.pool_size` (from TENANTRY_DATABASE_POOL_SIZE): expected 1..=1000"
    );
    assert_eq!(
        error("TENANTRY_IDENTITY_CLIENT_TRUST", "yes"),
        "config key `identity.client_trust` (from TENANTRY_IDENTITY_CLIENT_TRUST): expected true or false, got `yes`"
    );
    assert_eq!(
        error("TENANTRY_RATE_LIMIT_POLICIES_API_EXPORTS_FAIL", "maybe"),
        "config key `rate_limit.policies.\"api.exports\".fail` (from TENANTRY_RATE_LIMIT_POLICIES_API_EXPORTS_FAIL): expected open or closed, got `maybe`"
    );
}

#[test]
fn every_key_of_every_section_has_a_variable() {
    let loaded = load(None, &[("TENANTRY_IDENTITY_SESSION_TOKEN_LIFETIME_SECS", "120")]).unwrap();
    assert_eq!(loaded.config.identity.session_token_lifetime_secs, 120);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let keys = Config::default().env_keys().unwrap();
    // Every leaf of the serialised defaults is a key (the schema walk misses
    // none), and no two keys share a variable.
    fn leaves(value: &serde_json::Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match value.as_object() {
            Some(table) if !table.is_empty() => {
                for (k, v) in table {
                    path.push(k.clone());
                    leaves(v, path, out);
                    path.pop();
                }
            }
            _ => out.push(path.clone()),
        }
    }
    let mut defaults = Vec::new();
    leaves(
        &serde_json::to_value(Config::default()).unwrap(),
        &mut Vec::new(),
        &mut defaults,
    );
    let paths: Vec<&Vec<String>> = keys.iter().map(|k| &k.path).collect();
    for leaf in &defaults {
        // An empty map (the policies' overrides) has keys the defaults lack.
        if leaf.last().map(String::as_str) != Some("policies") {
            assert!(paths.contains(&leaf), "{leaf:?} has no variable");
        }
    }
    let variables: BTreeSet<&str> = keys.iter().map(|k| k.variable.as_str()).collect();
    assert_eq!(variables.len(), keys.len(), "two keys share a variable");
    let by_variable = |v: &str| {
        keys.iter()
            .find(|k| k.variable == v)
            .unwrap_or_else(|| panic!("{v}"))
    };
    let policy = by_variable("TENANTRY_RATE_LIMIT_POLICIES_API_READ_LIMIT");
    assert_eq!(policy.key, "rate_limit.policies.\"api.read\".limit");
    assert_eq!((policy.kind.clone(), policy.optional), (env::Kind::Integer, true));
    assert!(by_variable("TENANTRY_OAUTH_PROVIDERS_SHOPIFY_CLIENT_SECRET").secret);
    assert!(by_variable("TENANTRY_DATABASE_APP_PASSWORD").secret);
    assert!(!by_variable("TENANTRY_DATABASE_POOL_SIZE").secret);
    assert_eq!(
        by_variable("TENANTRY_RATE_LIMIT_STORE").kind,
        env::Kind::OneOf(vec!["redis".into(), "memory".into()])
    );
}

#[test]
fn env_sets_maps_lists_choices_and_unsets_optional_keys() {
    let loaded = load(
        Some("[database]\nurl = \"postgres://a@127.0.0.1/db\"\napp_password = \"twelve-chars-at-least\"\n"),
        &[
            ("TENANTRY_DATABASE_URL", ""),
            ("TENANTRY_RATE_LIMIT_POLICIES_API_READ_LIMIT", "5"),
            ("TENANTRY_RATE_LIMIT_POLICIES_API_READ_ALGORITHM", "fixed-window"),
            (
                "TENANTRY_AUTH_AUTHORIZED_PARTIES",
                "https://a.example, https://b.example,",
            ),
            ("TENANTRY_OAUTH_PROVIDERS_SHOPIFY_SCOPES", "read_orders"),
            ("TENANTRY_RATE_LIMIT_STORE", "memory"),
        ],
    )
    .unwrap();
    let config = loaded.config;
    assert_eq!(config.database.url, None);
    let read = config.rate_limit.policy(crate::ratelimit::PolicyName::ApiRead);
    assert_eq!(
        (read.limit, read.algorithm),
        (5, crate::ratelimit::Algorithm::FixedWindow)
    );
    assert_eq!(
        read.window,
        std::time::Duration::from_secs(60),
        "the default window stays"
    );
    assert_eq!(
        config.auth.authorized_parties,
        ["https://a.example", "https://b.example"]
    );
    assert_eq!(config.oauth.providers["shopify"].scopes, "read_orders");
    assert_eq!(config.oauth.providers["shopify"].client_id, "tenantry-shopify");
    assert_eq!(config.rate_limit.store, Some(StoreKind::Memory));
}

#[test]
fn database_url_from_the_environment_needs_the_app_password_and_says_where_it_came_from() {
    let err = load(
        None,
        &[("TENANTRY_DATABASE_URL", "postgres://admin@127.0.0.1:5432/app")],
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "config key `database.app_password` (database.url is set by TENANTRY_DATABASE_URL): \
         required when database.url is set: the password of the tenantry_app role"
    );
}

#[test]
fn secrets_are_never_repeated_in_errors() {
    let secret = "sk_live_not-long-enough";
    let err = load(None, &[("TENANTRY_IDENTITY_SECRET_KEY", secret)])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("TENANTRY_IDENTITY_SECRET_KEY") && !err.contains(secret),
        "{err}"
    );
}

#[test]
fn an_unknown_variable_is_a_warning_naming_the_closest_key() {
    let loaded = load(
        None,
        &[
            ("TENANTRY_IDENTITY_SESSION_TOKEN_LIFETIME", "120"),
            ("TENANTRY_DATABSE_POOL_SIZE", "8"),
            ("TENANTRY_RATE_LIMIT_POLICIES_API_READS_LIMIT", "5"),
            ("TENANTRY_OAUTH_PROVIDERS_XERO_CLIENT_ID", "x"),
            // Read by tenantry for something else, or not ours: no warning.
            ("TENANTRY_LOG", "debug"),
            ("TENANTRY_REDIS_URL", "redis://127.0.0.1:6379"),
            ("PATH", "/usr/bin"),
        ],
    )
    .unwrap();
    // Nothing was applied.
    assert_eq!(loaded.config.identity.session_token_lifetime_secs, 60);
    let messages: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    insta::with_settings!({ snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"), prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("reference_config_unknown_variables", messages.join("\n"));
    });
}

/// The table of keys and variables, as `docs/configuration.md` shows it.
fn key_table() -> String {
    let config = Config::default();
    let defaults = serde_json::to_value(&config).unwrap();
    let mut out = String::from("| key | variable | value | default |\n|---|---|---|---|\n");
    for key in config.env_keys().unwrap() {
        let default = key.path.iter().try_fold(&defaults, |v, segment| v.get(segment));
        let default = match default {
            _ if key.secret => "(secret)".to_string(),
            None | Some(serde_json::Value::Null) => "unset".to_string(),
            Some(serde_json::Value::String(s)) => format!("`{s}`"),
            Some(serde_json::Value::Array(items)) if items.is_empty() => "empty".to_string(),
            Some(other) => format!("`{other}`"),
        };
        let kind = if key.optional {
            format!("{}; empty unsets", key.kind)
        } else {
            key.kind.to_string()
        };
        out.push_str(&format!(
            "| `{}` | `{}` | {kind} | {default} |\n",
            key.key, key.variable
        ));
    }
    out
}

#[test]
fn docs_configuration_md_lists_every_variable() {
    let table = key_table();
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md")).unwrap();
    assert!(
        doc.contains(&table),
        "docs/configuration.md does not hold the current table of keys; replace its table with:\n\n{table}"
    );
}
