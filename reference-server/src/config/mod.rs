//! Server configuration: a TOML file, then `TENANTRY_<SECTION>_<KEY>`
//! environment variables over it, validated at start. Every error names the
//! key (and the file position or environment variable it came from) and says
//! what is expected.
//!
//! One job per file: `types` the sections and their defaults, [`env`] the
//! environment overlay (keys derived from the types' schema), `validate`
//! ranges and consistency; this file reads the file and puts them together.

pub mod env;
mod types;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use self::env::{EnvKey, UnknownVariable};
pub use self::types::*;

/// A configuration error, naming where the bad value came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has a wrong key or type.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("config key `{key}`{origin}: {message}")]
    Invalid {
        /// The dotted key.
        key: String,
        /// ` (from ENV_VAR)` or empty.
        origin: String,
        /// What is expected.
        message: String,
    },
}

impl ConfigError {
    /// `key` is invalid: `message` says what is expected.
    pub fn invalid(key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            origin: String::new(),
            message: message.into(),
        }
    }
}

/// A loaded configuration and what the environment held that it ignored.
#[derive(Debug)]
pub struct Loaded {
    /// The validated configuration.
    pub config: Config,
    /// `TENANTRY_*` variables that set no key (each names the closest key).
    pub warnings: Vec<UnknownVariable>,
}

impl Config {
    /// Loads `path` (if given), applies this process's `TENANTRY_*`
    /// variables, validates. Variables that name no key are logged (WARN).
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let loaded = Self::load_from(path, &env::process()?)?;
        for warning in &loaded.warnings {
            tracing::warn!("{warning}");
        }
        Ok(loaded.config)
    }

    /// As [`Config::load`], with the environment given (name to value).
    pub fn load_from(path: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Loaded, ConfigError> {
        let config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                Self::parse(&text, path)?
            }
            None => Config::default(),
        };
        let keys = env::keys(&config)?;
        let warnings = env::unknown(&keys, env);
        let (config, from_env) = env::overlay(config, &keys, env)?;
        if let Err(ConfigError::Invalid { key, origin, message }) = config.validate() {
            // Name the variable behind a bad value (or behind the key that
            // made this one required).
            let origin = match from_env.get(&key) {
                Some(variable) => format!(" (from {variable})"),
                None if key == "database.app_password" => from_env
                    .get("database.url")
                    .map(|v| format!(" (database.url is set by {v})"))
                    .unwrap_or(origin),
                None => origin,
            };
            return Err(ConfigError::Invalid { key, origin, message });
        }
        Ok(Loaded { config, warnings })
    }

    /// Parses TOML text; `path` is used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|span| line_column(text, span.start))
                .unwrap_or((1, 1));
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().to_string(),
            }
        })
    }

    /// The keys this configuration has and the variables that set them.
    pub fn env_keys(&self) -> Result<Vec<EnvKey>, ConfigError> {
        env::keys(self)
    }

    /// `rate_limit.bypass_orgs` of the file at `path` (the file only: the
    /// environment cannot have changed since the server started). For the
    /// bypass list's reloads.
    pub fn bypass_orgs_in(path: &Path) -> Result<Vec<String>, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let config = Self::parse(&text, path).map_err(|e| e.to_string())?;
        Ok(config.rate_limit.bypass_orgs)
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

#[cfg(test)]
mod tests;
