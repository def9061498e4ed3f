//! The load plan: a world of `orgs` orgs (one admin each) provisioned
//! through the profile's session source, `items` of every resource type
//! created in each org, and every read-only request the profile declares —
//! `list`, `read` of the org's own items, `search` for one of its canaries
//! — rendered once, ahead of the run, per org and item. Workers then only
//! pick a prepared request and attach the org's current token.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderName, HeaderValue};

use super::BenchError;
use crate::client::{self, Client, Request};
use crate::oracle::CanarySource;
use crate::profile::Profile;
use crate::session::{Placement, Sessions};
use crate::world::{OrgSpec, UserSpec, World, WorldSpec};

/// One request rendered for one org, ready to send.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Index into [`Plan::endpoints`].
    pub endpoint: usize,
    /// Index into the token table (the org whose token it carries).
    pub org: usize,
    /// Method.
    pub method: reqwest::Method,
    /// Absolute URL.
    pub url: reqwest::Url,
    /// Headers the template sets (no cookie: see `cookie`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The template's own cookies (`a=1; b=2`), joined with the session
    /// cookie when tokens travel as cookies.
    pub cookie: Option<String>,
    /// Body with its content type.
    pub body: Option<(HeaderValue, Vec<u8>)>,
}

/// What the load draws from.
#[derive(Debug)]
pub struct Plan {
    /// Endpoint names (`projects.list`), in profile order, after `--endpoints`.
    pub endpoints: Vec<String>,
    /// Every prepared request.
    pub requests: Vec<Prepared>,
    /// Indices into `requests`, per endpoint.
    pub by_endpoint: Vec<Vec<usize>>,
}

impl Plan {
    /// The first prepared GET request (what `wrk` can send), preferring
    /// `endpoint` when named.
    pub fn single_get(&self, endpoint: Option<&str>) -> Option<usize> {
        let named = endpoint.and_then(|e| self.endpoints.iter().position(|n| n == e));
        let pick = |e: usize| {
            self.by_endpoint[e]
                .iter()
                .copied()
                .find(|&i| self.requests[i].method == reqwest::Method::GET && self.requests[i].body.is_none())
        };
        match named {
            Some(e) => pick(e),
            None => (0..self.endpoints.len()).find_map(pick),
        }
    }
}

/// The orgs' tokens as request headers, replaced while a run goes on
/// (session tokens are short-lived).
#[derive(Debug)]
pub struct Tokens {
    placement: Placement,
    /// (user key, org key) per slot.
    pairs: Vec<(String, String)>,
    values: RwLock<Vec<HeaderValue>>,
    issued: RwLock<Instant>,
    lifetime: RwLock<Duration>,
}

impl Tokens {
    /// Fresh tokens for `pairs` of (user key, org key).
    pub async fn issue(
        sessions: &mut Sessions,
        client: &Client,
        world: &World,
        pairs: Vec<(String, String)>,
    ) -> Result<Self, BenchError> {
        let placement = sessions.placement();
        let tokens = Self {
            placement,
            pairs,
            values: RwLock::new(Vec::new()),
            issued: RwLock::new(Instant::now()),
            lifetime: RwLock::new(Duration::from_secs(60)),
        };
        tokens.refresh(sessions, client, world).await?;
        Ok(tokens)
    }

    /// Replaces every token with a fresh one.
    pub async fn refresh(
        &self,
        sessions: &mut Sessions,
        client: &Client,
        world: &World,
    ) -> Result<(), BenchError> {
        let mut values = Vec::with_capacity(self.pairs.len());
        let mut lifetime = None;
        for (user, org) in &self.pairs {
            let token = sessions.token(world, user, Some(org)).await?;
            client.register_secret(&token);
            if lifetime.is_none() {
                lifetime = client::unverified_claims(&token).and_then(|c| {
                    let exp = c.get("exp")?.as_u64()?;
                    let iat = c.get("iat").or_else(|| c.get("nbf"))?.as_u64()?;
                    Some(Duration::from_secs(exp.saturating_sub(iat)))
                });
            }
            let text = match self.placement {
                Placement::Header => format!("Bearer {token}"),
                Placement::Cookie => format!("__session={token}"),
            };
            let mut value = HeaderValue::from_str(&text).map_err(|_| {
                BenchError::Setup(format!("the token for {user}@{org} is not a valid header value"))
            })?;
            value.set_sensitive(true);
            values.push(value);
        }
        *self.values.write().unwrap_or_else(|p| p.into_inner()) = values;
        *self.issued.write().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        if let Some(l) = lifetime {
            *self.lifetime.write().unwrap_or_else(|p| p.into_inner()) = l;
        }
        Ok(())
    }

    /// The header value for slot `i`.
    pub fn get(&self, i: usize) -> HeaderValue {
        self.values.read().unwrap_or_else(|p| p.into_inner())[i].clone()
    }

    /// Where tokens go.
    pub fn placement(&self) -> Placement {
        self.placement
    }

    /// How long the current tokens stay usable with a margin: half their
    /// lifetime from issue, at least 5 s.
    pub fn fresh_for(&self) -> Duration {
        let lifetime = *self.lifetime.read().unwrap_or_else(|p| p.into_inner());
        let issued = *self.issued.read().unwrap_or_else(|p| p.into_inner());
        (lifetime / 2)
            .max(Duration::from_secs(5))
            .saturating_sub(issued.elapsed())
    }
}

/// A provisioned benchmark world.
#[derive(Debug)]
pub struct Setup {
    /// The world.
    pub world: World,
    /// The load plan (every declared read-only endpoint).
    pub plan: std::sync::Arc<Plan>,
    /// The load orgs' tokens (slot i: org i of the plan).
    pub tokens: std::sync::Arc<Tokens>,
}

/// Endpoint names the profile declares, in order (before any filter).
pub fn endpoint_names(profile: &Profile) -> Vec<String> {
    let mut names = Vec::new();
    for r in &profile.resources {
        if r.list.is_some() {
            names.push(format!("{}.list", r.name));
        }
        if r.read.is_some() {
            names.push(format!("{}.read", r.name));
        }
        if r.search.is_some() {
            names.push(format!("{}.search", r.name));
        }
    }
    names
}

/// Whether `name` matches `selector` (`*` matches any run of characters).
pub fn glob(selector: &str, name: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|i| go(rest, &s[i..])),
            Some((c, rest)) => s.first() == Some(c) && go(rest, &s[1..]),
        }
    }
    go(selector.as_bytes(), name.as_bytes())
}

/// The endpoints `selectors` (comma-separated globs; empty: all) choose
/// from `names`. A selector that matches nothing is an error naming the
/// endpoints there are.
pub fn select(names: &[String], selectors: &str) -> Result<Vec<String>, BenchError> {
    let selectors: Vec<&str> = selectors
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if selectors.is_empty() {
        return Ok(names.to_vec());
    }
    for s in &selectors {
        if !names.iter().any(|n| glob(s, n)) {
            return Err(BenchError::NoEndpoint {
                selector: s.to_string(),
                available: if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                },
            });
        }
    }
    Ok(names
        .iter()
        .filter(|n| selectors.iter().any(|s| glob(s, n)))
        .cloned()
        .collect())
}

/// The org keys of the load world (`o1`…) and of the rate-limit phase.
pub fn org_key(i: usize) -> String {
    format!("o{}", i + 1)
}

/// The org the rate-limit phase spends (never loaded otherwise, so its
/// budget is untouched when the phase starts).
pub const LIMIT_ORG: &str = "rl";

fn world_spec(tag: &str, orgs: usize, limits: bool) -> WorldSpec {
    let mut keys: Vec<String> = (0..orgs).map(org_key).collect();
    if limits {
        keys.push(LIMIT_ORG.into());
    }
    WorldSpec {
        orgs: keys
            .iter()
            .map(|k| OrgSpec {
                key: k.clone(),
                name: format!("Bench {k} {tag}"),
                slug: format!("bench-{k}-{tag}"),
            })
            .collect(),
        users: keys
            .iter()
            .map(|k| UserSpec {
                key: format!("u-{k}"),
                email: format!("bench-{k}-{tag}@tenantry.invalid"),
                memberships: vec![(k.clone(), "org:admin".into())],
            })
            .collect(),
    }
}

/// The user who acts for org `key`.
pub fn user_of(org_key: &str) -> String {
    format!("u-{org_key}")
}

/// One created item.
#[derive(Debug, Clone)]
struct Item {
    id: String,
    parent: Option<String>,
    canary: Option<String>,
}

/// Provisions the world, creates the items and renders the plan.
#[allow(clippy::too_many_arguments)]
pub async fn prepare(
    profile: &Profile,
    client: &Client,
    sessions: &mut Sessions,
    endpoints: &[String],
    orgs: usize,
    items: usize,
    limits: bool,
    seed: u64,
) -> Result<Setup, BenchError> {
    let health = client.send(Request::new("GET", "/")).await;
    if health.status == 0 {
        return Err(BenchError::Unreachable {
            base: profile.base_url.clone(),
            detail: String::from_utf8_lossy(&health.body).into_owned(),
        });
    }
    let mut canaries = CanarySource::new(seed);
    // Names unique per run (the seed repeats the mix, not the world).
    let tag = crate::oracle::new_canary()[4..14].to_string();
    let world = sessions.provision(&world_spec(&tag, orgs, limits)).await?;
    let pairs: Vec<(String, String)> = (0..orgs).map(|i| (user_of(&org_key(i)), org_key(i))).collect();
    let tokens = Tokens::issue(sessions, client, &world, pairs).await?;
    let placement = sessions.placement();
    // Items by (resource, org index).
    let mut created: HashMap<(String, usize), Vec<Item>> = HashMap::new();
    let wanted =
        |r: &crate::profile::Resource| endpoints.iter().any(|e| e.starts_with(&format!("{}.", r.name)));
    // A resource's parents are created when any child endpoint is wanted.
    let needed: Vec<bool> = profile
        .resources
        .iter()
        .map(|r| {
            wanted(r)
                || profile
                    .resources
                    .iter()
                    .any(|c| c.parent.as_deref() == Some(r.name.as_str()) && wanted(c))
        })
        .collect();
    for (resource, need) in profile.resources.iter().zip(&needed) {
        if !need {
            continue;
        }
        for o in 0..orgs {
            let org = &world.orgs[o];
            let parents = match &resource.parent {
                Some(p) => created.get(&(p.clone(), o)).cloned().unwrap_or_default(),
                None => Vec::new(),
            };
            if resource.parent.is_some() && parents.is_empty() {
                return Err(BenchError::Setup(format!(
                    "{} needs a {} to be created in, and none was",
                    resource.name,
                    resource.parent.as_deref().unwrap_or_default()
                )));
            }
            let mut made = Vec::new();
            for i in 0..items {
                let parent = parents.get(i % parents.len().max(1)).map(|p| p.id.clone());
                let mut first_canary = None;
                let request = resource.create.render(&mut |name| match name {
                    "org" => Some(org.id.clone()),
                    "org_slug" => Some(org.slug.clone()),
                    "canary" => {
                        let c = canaries.canary();
                        first_canary.get_or_insert_with(|| c.clone());
                        Some(c)
                    }
                    "parent" => parent.clone(),
                    _ => None,
                })?;
                let request = placement.apply(request, &token_text(&tokens, o));
                let reply = client.send_patiently(request).await;
                if !(200..300).contains(&reply.status) {
                    return Err(BenchError::Setup(format!(
                        "creating {} in org {} answered {}: {}",
                        resource.name, org.key, reply.status, reply.transcript
                    )));
                }
                let id = match reply.json().pointer(&resource.id_pointer) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(serde_json::Value::Number(n)) => n.to_string(),
                    _ => {
                        return Err(BenchError::Setup(format!(
                            "creating {} in org {}: no id at `{}` in the answer: {}",
                            resource.name, org.key, resource.id_pointer, reply.transcript
                        )))
                    }
                };
                made.push(Item {
                    id,
                    parent,
                    canary: first_canary,
                });
            }
            created.insert((resource.name.clone(), o), made);
        }
    }
    let mut plan = Plan {
        endpoints: endpoints.to_vec(),
        requests: Vec::new(),
        by_endpoint: vec![Vec::new(); endpoints.len()],
    };
    for resource in &profile.resources {
        let kinds = [
            ("list", resource.list.as_ref()),
            ("read", resource.read.as_ref()),
            ("search", resource.search.as_ref()),
        ];
        for (kind, template) in kinds {
            let Some(template) = template else { continue };
            let name = format!("{}.{kind}", resource.name);
            let Some(e) = endpoints.iter().position(|n| *n == name) else {
                continue;
            };
            for o in 0..orgs {
                let org = &world.orgs[o];
                let mine = created
                    .get(&(resource.name.clone(), o))
                    .cloned()
                    .unwrap_or_default();
                // list: once per org (per parent for nested resources);
                // read and search: once per item.
                let fills: Vec<Item> = match (kind, &resource.parent) {
                    ("list", None) => vec![Item {
                        id: String::new(),
                        parent: None,
                        canary: None,
                    }],
                    ("list", Some(p)) => created
                        .get(&(p.clone(), o))
                        .map(|ps| {
                            ps.iter()
                                .map(|p| Item {
                                    id: String::new(),
                                    parent: Some(p.id.clone()),
                                    canary: None,
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    _ => mine,
                };
                for item in fills {
                    let request = template.render(&mut |var| match var {
                        "org" => Some(org.id.clone()),
                        "org_slug" => Some(org.slug.clone()),
                        "id" => Some(item.id.clone()),
                        "parent" => item.parent.clone(),
                        "q" => Some(item.canary.clone().unwrap_or_else(|| "tenantry".into())),
                        _ => None,
                    })?;
                    plan.by_endpoint[e].push(plan.requests.len());
                    plan.requests.push(prepared(&profile.base_url, e, o, request)?);
                }
            }
        }
    }
    if let Some(e) = plan.by_endpoint.iter().position(Vec::is_empty) {
        return Err(BenchError::Setup(format!(
            "no request of {} could be prepared",
            plan.endpoints[e]
        )));
    }
    Ok(Setup {
        world,
        plan: std::sync::Arc::new(plan),
        tokens: std::sync::Arc::new(tokens),
    })
}

/// The raw token of slot `i` (for the harness's own client during setup).
fn token_text(tokens: &Tokens, i: usize) -> String {
    let value = tokens.get(i);
    let text = value.to_str().unwrap_or_default();
    text.strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("__session="))
        .unwrap_or(text)
        .to_string()
}

/// `request` (relative to `base`) as a [`Prepared`] request.
pub fn prepared(base: &str, endpoint: usize, org: usize, request: Request) -> Result<Prepared, BenchError> {
    let bad = |what: String| BenchError::Setup(format!("{} {}: {what}", request.method, request.path));
    let url = if request.path.starts_with("http://") || request.path.starts_with("https://") {
        request.path.clone()
    } else {
        format!("{}{}", base.trim_end_matches('/'), request.path)
    };
    let url = reqwest::Url::parse(&url).map_err(|e| bad(format!("not a URL: {e}")))?;
    let method =
        reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| bad("not a method".into()))?;
    let mut headers = Vec::new();
    let mut cookie = None;
    for (k, v) in &request.headers {
        if k.eq_ignore_ascii_case("cookie") {
            cookie = Some(v.clone());
            continue;
        }
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| bad(format!("header name `{k}`")))?;
        let value = HeaderValue::from_str(v).map_err(|_| bad(format!("header `{k}` value")))?;
        headers.push((name, value));
    }
    let body = if let Some(json) = &request.json {
        Some((
            HeaderValue::from_static("application/json"),
            json.to_string().into_bytes(),
        ))
    } else if let Some(pairs) = &request.form {
        Some((
            HeaderValue::from_static("application/x-www-form-urlencoded"),
            client::form_encode(pairs).into_bytes(),
        ))
    } else if let Some((content_type, bytes)) = &request.raw {
        Some((
            HeaderValue::from_str(content_type).map_err(|_| bad("content type".into()))?,
            bytes.clone(),
        ))
    } else {
        None
    };
    Ok(Prepared {
        endpoint,
        org,
        method,
        url,
        headers,
        cookie,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_globs_and_unknown_ones_are_named() {
        let names: Vec<String> = ["projects.list", "projects.read", "documents.list"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(select(&names, "").unwrap(), names);
        assert_eq!(
            select(&names, "*.list").unwrap(),
            vec!["projects.list".to_string(), "documents.list".to_string()]
        );
        let e = select(&names, "projects.*, nope").unwrap_err();
        assert_eq!(
            e.to_string(),
            "--endpoints: `nope` matches no endpoint; the profile declares: projects.list, projects.read, documents.list"
        );
    }

    #[test]
    fn the_reference_profile_declares_five_endpoints() {
        let p = Profile::reference("http://127.0.0.1:1", "sk_test_x", "http://o.invalid");
        assert_eq!(
            endpoint_names(&p),
            [
                "projects.list",
                "projects.read",
                "projects.search",
                "documents.list",
                "documents.read"
            ]
        );
    }
}
