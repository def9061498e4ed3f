//! Org-scoped OAuth connect flows (connect a Shopify or QuickBooks account
//! to an organization).
//!
//! `connect` (an admin of the org asks) makes a `state` with 256 random
//! bits and a PKCE verifier, stores them server-side bound to org, user,
//! session, provider and return path with a TTL, and hands back the
//! provider's authorize URL. `callback` consumes the state atomically first
//! — whatever follows, it is spent — then requires the same org, user,
//! session and provider, exchanges the code with the verifier, and returns
//! the tokens for the caller to seal and store in that org only. Every state
//! failure looks the same to the client ([`OAuthError::InvalidState`]); the
//! log says which check failed.

pub mod mock_provider;
pub mod seal;
pub mod state;

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use self::seal::Sealer;
use self::state::{Behaviour, StateRecord, StateStore};
use crate::tenant::Tenant;

/// A configured provider.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Name (`shopify`).
    pub name: String,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// Authorize endpoint.
    pub authorize_url: String,
    /// Token endpoint.
    pub token_url: String,
    /// Our callback, registered with the provider.
    pub redirect_uri: String,
    /// Scopes asked for.
    pub scopes: String,
}

/// Why a connect or callback was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// No such provider configured.
    #[error("unknown provider")]
    UnknownProvider,
    /// `return_to` is not an allow-listed relative path.
    #[error("return path not allowed")]
    ReturnPathNotAllowed,
    /// Unknown, expired, spent, or bound to someone or something else.
    #[error("invalid state: {0}")]
    InvalidState(&'static str),
    /// The provider answered `error=…` (the state is spent).
    #[error("the provider reported an error")]
    Denied,
    /// No code in a non-error callback.
    #[error("no authorization code")]
    MissingCode,
    /// The token exchange failed.
    #[error("token exchange failed: {0}")]
    Exchange(String),
    /// The state store failed.
    #[error("state store unavailable: {0}")]
    Store(String),
}

/// What a connect hands back.
#[derive(Debug, Clone)]
pub struct ConnectStart {
    /// Where to send the browser.
    pub authorize_url: String,
    /// Seconds the state stays valid.
    pub expires_in: u64,
}

/// The tokens a successful callback yields.
#[derive(Debug, Clone)]
pub struct Connected {
    /// The provider.
    pub provider: String,
    /// The provider's account id.
    pub external_account: String,
    /// Granted scopes.
    pub scopes: String,
    /// Access token (seal before storing).
    pub access_token: String,
    /// Refresh token, if any.
    pub refresh_token: Option<String>,
    /// Where to send the browser.
    pub return_to: Option<String>,
}

/// Callback query parameters.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallbackParams {
    /// The code.
    pub code: Option<String>,
    /// The state.
    pub state: Option<String>,
    /// Set when the user refused or the provider failed.
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: Option<String>,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    account: Option<String>,
}

/// The OAuth service.
#[derive(Debug)]
pub struct OAuth {
    providers: HashMap<String, Provider>,
    store: StateStore,
    ttl: Duration,
    sealer: Sealer,
    return_paths: Vec<String>,
    http: reqwest::Client,
    #[cfg(feature = "inject")]
    flaws: crate::inject::Flaws,
}

/// `base` with `pairs` appended as percent-encoded query parameters.
pub(crate) fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = base.to_string();
    let mut sep = if url.contains('?') { '&' } else { '?' };
    for (k, v) in pairs {
        url.push(sep);
        sep = '&';
        url.push_str(k);
        url.push('=');
        url.push_str(
            &percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string(),
        );
    }
    url
}

/// Whether `path` is a safe post-connect destination: a relative path (one
/// leading `/`, not `//` or `/\`, no scheme, no control characters) whose
/// path part is on the allow-list.
pub fn return_path_allowed(path: &str, allow: &[String]) -> bool {
    let relative = path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && !path.contains(|c: char| c.is_control() || c == '\\');
    let bare = path.split(['?', '#']).next().unwrap_or_default();
    relative && allow.iter().any(|a| a == bare)
}

/// What [`return_path_allowed`] accepts, as a JSON Schema pattern for the
/// OpenAPI document: one of `allow`, then optionally a query or fragment
/// without control characters or backslashes.
pub fn return_path_pattern(allow: &[String]) -> String {
    let escape = |path: &str| {
        path.chars()
            .flat_map(|c| {
                let special = "\\.^$|?*+()[]{}".contains(c);
                special.then_some('\\').into_iter().chain([c])
            })
            .collect::<String>()
    };
    // An entry with a control character can never be accepted.
    let paths: Vec<String> = allow
        .iter()
        .filter(|p| !p.contains(|c: char| c.is_control()))
        .map(|p| escape(p))
        .collect();
    if paths.is_empty() {
        // Nothing is allowed: a pattern nothing matches.
        return "^(?!)".into();
    }
    format!(r"^(?:{})(?:[?#][^\x00-\x1f\x7f-\x9f\\]*)?$", paths.join("|"))
}

impl OAuth {
    /// The service.
    pub fn new(
        providers: Vec<Provider>,
        store: StateStore,
        ttl: Duration,
        sealer: Sealer,
        return_paths: Vec<String>,
    ) -> Self {
        Self {
            providers: providers.into_iter().map(|p| (p.name.clone(), p)).collect(),
            store,
            ttl,
            sealer,
            return_paths,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            #[cfg(feature = "inject")]
            flaws: crate::inject::Flaws::none(),
        }
    }

    /// Injects flaws.
    #[cfg(feature = "inject")]
    pub fn with_flaws(mut self, flaws: crate::inject::Flaws) -> Self {
        self.flaws = flaws;
        self
    }

    /// The token sealer.
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// The configured providers' names, sorted.
    pub fn provider_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.providers.keys().cloned().collect();
        names.sort();
        names
    }

    /// The allowed return paths (`oauth.return_paths`).
    pub fn return_paths(&self) -> &[String] {
        &self.return_paths
    }

    /// Whether `name` is a configured provider.
    pub fn has_provider(&self, name: &str) -> bool {
        self.providers.contains_key(name)
    }

    fn behaviour(&self) -> Behaviour {
        Behaviour {
            no_ttl: flaw!(self.flaws, OauthStateNoTtl),
            reusable: flaw!(self.flaws, OauthStateReusable),
            check_then_delete: flaw!(self.flaws, OauthStateRace),
        }
    }

    /// Starts a connect flow for `tenant` with `provider`.
    pub async fn connect(
        &self,
        tenant: &Tenant,
        provider: &str,
        return_to: Option<&str>,
    ) -> Result<ConnectStart, OAuthError> {
        let p = self.providers.get(provider).ok_or(OAuthError::UnknownProvider)?;
        if let Some(path) = return_to {
            if !return_path_allowed(path, &self.return_paths) && !flaw!(self.flaws, OauthOpenRedirect) {
                return Err(OAuthError::ReturnPathNotAllowed);
            }
        }
        let state = state::new_state();
        let verifier = (!flaw!(self.flaws, OauthNoPkce)).then(state::new_state);
        let record = StateRecord {
            org: tenant.org().as_str().to_string(),
            user: tenant.user_id().to_string(),
            session: tenant.session_id().map(String::from),
            provider: p.name.clone(),
            verifier: verifier.clone(),
            return_to: return_to.map(String::from),
        };
        self.store
            .put(&state, &record, self.ttl, self.behaviour())
            .await
            .map_err(|e| OAuthError::Store(e.to_string()))?;
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", p.client_id.as_str()),
            ("redirect_uri", p.redirect_uri.as_str()),
            ("scope", p.scopes.as_str()),
            ("state", state.as_str()),
        ];
        let challenge = verifier.as_deref().map(mock_provider::s256);
        if let Some(challenge) = &challenge {
            pairs.push(("code_challenge", challenge));
            pairs.push(("code_challenge_method", "S256"));
        }
        Ok(ConnectStart {
            authorize_url: with_query(&p.authorize_url, &pairs),
            expires_in: self.ttl.as_secs(),
        })
    }

    /// Completes a flow: consumes the state, checks its bindings, exchanges
    /// the code.
    pub async fn callback(
        &self,
        tenant: &Tenant,
        provider: &str,
        params: &CallbackParams,
    ) -> Result<Connected, OAuthError> {
        let p = self.providers.get(provider).ok_or(OAuthError::UnknownProvider)?;
        let state = params
            .state
            .as_deref()
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or(OAuthError::InvalidState("no state"))?;
        let record = self
            .store
            .consume(state, self.behaviour())
            .await
            .map_err(|e| OAuthError::Store(e.to_string()))?
            .ok_or(OAuthError::InvalidState("unknown, expired or already used"))?;
        if record.provider != p.name && !flaw!(self.flaws, OauthStateNotProviderBound) {
            return Err(OAuthError::InvalidState("issued for another provider"));
        }
        if record.org != tenant.org().as_str() && !flaw!(self.flaws, OauthStateNotOrgBound) {
            return Err(OAuthError::InvalidState("issued for another organization"));
        }
        if (record.user != tenant.user_id() || record.session.as_deref() != tenant.session_id())
            && !flaw!(self.flaws, OauthStateNotUserBound)
        {
            return Err(OAuthError::InvalidState("issued to another user or session"));
        }
        if params.error.is_some() {
            return Err(OAuthError::Denied);
        }
        let code = params
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 512)
            .ok_or(OAuthError::MissingCode)?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", p.redirect_uri.as_str()),
            ("client_id", p.client_id.as_str()),
            ("client_secret", p.client_secret.as_str()),
        ];
        if let Some(verifier) = &record.verifier {
            form.push(("code_verifier", verifier));
        }
        let response = self
            .http
            .post(&p.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| OAuthError::Exchange(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let error = body["error"].as_str().unwrap_or("unknown").to_string();
            return Err(OAuthError::Exchange(format!("{status}: {error}")));
        }
        let tokens: TokenResponse = response
            .json()
            .await
            .map_err(|e| OAuthError::Exchange(format!("unreadable token response: {e}")))?;
        Ok(Connected {
            provider: p.name.clone(),
            external_account: tokens.account.unwrap_or_else(|| "unknown".into()),
            scopes: tokens.scope,
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            return_to: record.return_to,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_return_path_pattern_admits_exactly_the_allowed_paths() {
        let allow = vec!["/settings/integrations".to_string(), "/a.b/(c)".to_string()];
        let pattern = regex::Regex::new(&return_path_pattern(&allow)).unwrap();
        for value in [
            "/settings/integrations",
            "/settings/integrations?tab=shop",
            "/settings/integrations#x",
            "/settings/integrations?a\\b",
            "/settings/integrations?a\u{85}",
            "/settings/integrations?é",
            "/settings/integrations/",
            "/settings/integrations\n",
            "/a.b/(c)",
            "/aXb/(c)",
            "/a.b/(c)?",
            "//settings/integrations",
            "",
        ] {
            assert_eq!(
                pattern.is_match(value),
                return_path_allowed(value, &allow),
                "{value:?}"
            );
        }
        let nothing = regex::Regex::new(&return_path_pattern(&[]));
        // `(?!)` needs look-around, which the validator's fancy-regex has and
        // the plain regex crate has not; either way nothing is allowed.
        assert!(nothing.map_or(true, |p| !p.is_match("/")));
    }

    #[test]
    fn return_paths_are_relative_and_allow_listed() {
        let allow = vec!["/settings/integrations".to_string()];
        assert!(return_path_allowed("/settings/integrations", &allow));
        assert!(return_path_allowed("/settings/integrations?tab=shop", &allow));
        for bad in [
            "https://evil.example/settings/integrations",
            "//evil.example/settings/integrations",
            "/\\evil.example",
            "/settings/integrations/../../x",
            "/other",
            "settings/integrations",
            "/settings/integrations\r\nLocation: x",
            "",
        ] {
            assert!(!return_path_allowed(bad, &allow), "{bad}");
        }
    }
}
