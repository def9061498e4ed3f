//! Turning a campaign's action sequence into a scenario file: every request
//! the executor sends is recorded as a scenario step built from the same
//! profile template, with its placeholders renamed to the scenario's
//! (`{{ id }}` -> `{{ i3 }}`, a capture of item 3's create; `{{ org }}` ->
//! `{{ org.a.id }}`), and the model's prediction as the expectation.

use serde_json::Value;

use super::model::{Action, Cast, Encoding, Position};
use crate::checks::Check;
use crate::profile::{Job, Profile};
use crate::scenario::{
    Actor, Capture, Expect, Given, GivenOrg, GivenUser, Item, MembershipChange, Scenario, Step,
};
use crate::template::{self, QueryValue, RequestTemplate};
use crate::template::{pointer_to_path, rename_placeholders as rename};

/// The steps of one sequence.
#[derive(Debug, Clone)]
pub struct Repro {
    profile: Profile,
    cast: Cast,
    steps: Vec<Step>,
    /// Membership changes, by the step index they come before.
    identity: Vec<(usize, IdentityStep)>,
    /// The resource type of the last create.
    last_create: Option<usize>,
}

/// A membership change in a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityStep {
    /// Removed from an org.
    Remove {
        /// User.
        user: usize,
        /// Org.
        org: usize,
    },
    /// Role changed.
    Role {
        /// User.
        user: usize,
        /// Org.
        org: usize,
        /// Admin after.
        admin: bool,
    },
}

/// The JSON path of the first string in `value` equal to `needle`.
pub fn json_path_to(value: &Value, needle: &str) -> Option<String> {
    fn walk(value: &Value, needle: &str, pointer: &mut String) -> bool {
        match value {
            Value::String(s) => s == needle,
            Value::Array(items) => items.iter().enumerate().any(|(i, v)| {
                let len = pointer.len();
                pointer.push_str(&format!("/{i}"));
                let found = walk(v, needle, pointer);
                if !found {
                    pointer.truncate(len);
                }
                found
            }),
            Value::Object(map) => map.iter().any(|(k, v)| {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&k.replace('~', "~0").replace('/', "~1"));
                let found = walk(v, needle, pointer);
                if !found {
                    pointer.truncate(len);
                }
                found
            }),
            _ => false,
        }
    }
    let mut pointer = String::new();
    walk(value, needle, &mut pointer).then(|| pointer_to_path(&pointer))
}

impl Repro {
    /// Empty, for `profile`.
    pub fn new(profile: &Profile, cast: &Cast) -> Self {
        Self {
            profile: profile.clone(),
            cast: cast.clone(),
            steps: Vec::new(),
            identity: Vec::new(),
            last_create: None,
        }
    }

    /// Forgets the steps (a new sequence begins).
    pub fn clear(&mut self) {
        self.steps.clear();
        self.identity.clear();
        self.last_create = None;
    }

    /// `template` in scenario terms: `org` is org `org`, ids are captures.
    fn member(&self, user: usize, org: usize) -> Actor {
        Actor::Member {
            user: self.cast.user(user).to_string(),
            org: Some(self.cast.org(org).to_string()),
        }
    }

    fn retemplate(
        &self,
        template: &RequestTemplate,
        org: usize,
        id: Option<usize>,
        parent: Option<usize>,
        q: Option<usize>,
    ) -> RequestTemplate {
        let org = self.cast.org(org);
        template.map_strings(&|s| {
            rename(s, &|name| match name {
                "org" => format!("org.{org}.id"),
                "org_slug" => format!("org.{org}.slug"),
                "id" => id.map_or_else(|| "id".into(), |i| format!("i{i}")),
                "parent" => parent.map_or_else(|| "parent".into(), |i| format!("i{i}")),
                "q" => q.map_or_else(|| "q".into(), |i| format!("c{i}")),
                other => other.to_string(),
            })
        })
    }

    fn push(&mut self, user: usize, org: usize, request: RequestTemplate, status: &[u16]) {
        self.steps.push(Step {
            name: None,
            actor: self.member(user, org),
            request,
            capture: Vec::new(),
            forge: None,
            concurrent: None,
            expect: Expect {
                status: status.to_vec(),
                ..Expect::default()
            },
        });
    }

    /// A create (refused when `ok` is false).
    pub fn create(
        &mut self,
        user: usize,
        org: usize,
        resource: usize,
        parent: Option<usize>,
        _index: usize,
        ok: bool,
    ) {
        let r = &self.profile.resources[resource];
        let request = self.retemplate(&r.create, org, None, parent, None);
        self.push(user, org, request, if ok { &[200, 201] } else { &[403, 404] });
        self.last_create = Some(resource);
    }

    /// The last create made item `index` (its canary at `canary_path`).
    pub fn created(&mut self, index: usize, canary_path: Option<String>) {
        let id_pointer = self
            .last_create
            .and_then(|r| self.profile.resources.get(r))
            .map_or_else(|| "/id".to_string(), |r| r.id_pointer.clone());
        if let Some(step) = self.steps.last_mut() {
            step.capture
                .push((format!("i{index}"), Capture::json(&pointer_to_path(&id_pointer))));
            if let Some(path) = canary_path {
                step.capture.push((format!("c{index}"), Capture::json(&path)));
            }
        }
    }

    /// The last step (an update) changed item `item`'s canaries: capture one
    /// again.
    pub fn recapture(&mut self, item: usize, canary_path: Option<String>) {
        if let (Some(step), Some(path)) = (self.steps.last_mut(), canary_path) {
            step.capture.push((format!("c{item}"), Capture::json(&path)));
        }
    }

    /// Read, update, delete or search of item `item`.
    #[allow(clippy::too_many_arguments)]
    pub fn item_action(
        &mut self,
        action: &Action,
        org: usize,
        resource: usize,
        item: usize,
        parent: Option<usize>,
        status: &[u16],
        contains: bool,
    ) {
        let r = &self.profile.resources[resource];
        let (user, template) = match *action {
            Action::Read { user, .. } => (user, r.read.clone()),
            Action::Update { user, .. } => (user, r.update.clone()),
            Action::Delete { user, .. } => (user, r.delete.clone()),
            Action::Search { user, .. } => (user, r.search.clone()),
            _ => return,
        };
        let Some(template) = template else { return };
        let request = self.retemplate(&template, org, Some(item), parent, Some(item));
        self.push(user, org, request, status);
        if contains {
            if let Some(step) = self.steps.last_mut() {
                let needle = match action {
                    Action::Search { .. } => format!("{{{{ i{item} }}}}"),
                    _ => format!("{{{{ c{item} }}}}"),
                };
                step.expect.body_contains.push(needle);
            }
        }
    }

    /// A list.
    pub fn list(&mut self, user: usize, org: usize, resource: usize, parent: Option<usize>, status: &[u16]) {
        let r = &self.profile.resources[resource];
        if let Some(list) = &r.list {
            let request = self.retemplate(list, org, None, parent, None);
            self.push(user, org, request, status);
        }
    }

    /// A job started (and polled once).
    pub fn export(&mut self, user: usize, org: usize, job: &Job) {
        let start = self.retemplate(&job.start, org, None, None, None);
        self.push(user, org, start, &[200, 201, 202]);
        if let Some(step) = self.steps.last_mut() {
            step.capture
                .push(("job".into(), Capture::json(&pointer_to_path(&job.id_pointer))));
        }
        let poll = job
            .poll
            .map_strings(&|s| rename(s, &|n| if n == "id" { "job".into() } else { n.to_string() }));
        let poll = self.retemplate(&poll, org, None, None, None);
        self.push(user, org, poll, &[200]);
    }

    /// Any other request.
    pub fn plain(&mut self, user: usize, org: usize, template: &RequestTemplate, status: &[u16]) {
        let request = self.retemplate(template, org, None, None, None);
        self.push(user, org, request, status);
    }

    /// Membership removed (recorded for the reproduction).
    pub fn remove_member(&mut self, user: usize, org: usize) {
        self.identity
            .push((self.steps.len(), IdentityStep::Remove { user, org }));
    }

    /// Role changed (recorded for the reproduction).
    pub fn set_role(&mut self, user: usize, org: usize, admin: bool) {
        self.identity
            .push((self.steps.len(), IdentityStep::Role { user, org, admin }));
    }

    /// A forged request.
    #[allow(clippy::too_many_arguments)]
    pub fn forge(
        &mut self,
        user: usize,
        org: usize,
        victim: usize,
        resource: usize,
        write: bool,
        position: Position,
        encoding: Encoding,
    ) {
        let r = &self.profile.resources[resource];
        let v = self.cast.org(victim);
        let value = match encoding {
            Encoding::Plain | Encoding::DuplicateOwnFirst | Encoding::DuplicateOwnLast => {
                format!("{{{{ org.{v}.id }}}}")
            }
            Encoding::Upper => format!("{{{{ org.{v}.id | upper }}}}"),
            Encoding::Padded => format!("{{{{ org.{v}.id | pad }}}}"),
            Encoding::Slug => format!("{{{{ org.{v}.slug }}}}"),
            Encoding::Confusable => format!("{{{{ org.{v}.id | confusable }}}}"),
        };
        let mut request = match position {
            Position::Route(i) => {
                let route = &self.profile.org.routes[i];
                route.map_strings(&|s| {
                    rename(s, &|n| match n {
                        "org" => format!("org.{v}.id"),
                        "org_slug" => format!("org.{v}.slug"),
                        other => other.to_string(),
                    })
                })
            }
            _ if write => self.retemplate(&r.create, org, None, None, None),
            _ => match &r.list {
                Some(l) => self.retemplate(l, org, None, None, None),
                None => return,
            },
        };
        if let Position::Route(_) = position {
            // The route's value with the encoding applied.
            let plain = format!("{{{{ org.{v}.id }}}}");
            request = request.map_strings(&|s| s.replace(&plain, &value));
        }
        let own = format!("{{{{ org.{}.id }}}}", self.cast.org(org));
        match position {
            Position::Route(_) => {}
            Position::Query(i) => {
                let name = self.profile.org.query[i].clone();
                let values = match encoding {
                    Encoding::DuplicateOwnFirst => vec![own, value],
                    Encoding::DuplicateOwnLast => vec![value, own],
                    _ => vec![value],
                };
                for v in values {
                    request.query.push((name.clone(), QueryValue::Text(v)));
                }
            }
            Position::Header(i) => request
                .headers
                .push((self.profile.org.headers[i].clone(), value.replace(" | pad", ""))),
            Position::Cookie(i) => request
                .cookies
                .push((self.profile.org.cookies[i].clone(), value.replace(" | pad", ""))),
            Position::Json(i) => {
                if let Some(template::Body::Json(body)) = request.body.as_mut() {
                    crate::audit::set_pointer(body, &self.profile.org.json[i], Value::String(value));
                }
            }
        }
        self.steps.push(Step {
            name: Some(format!("forged org ({encoding:?} in {position:?})")),
            actor: self.member(user, org),
            request,
            capture: Vec::new(),
            forge: None,
            concurrent: None,
            expect: Expect::default(),
        });
    }

    /// The recorded sequence as a scenario reproducing `message`.
    pub fn scenario(&self, check: &Check, seed: u64, message: &str) -> Scenario {
        Scenario {
            id: format!("campaign-{}-{seed}", check.id.to_ascii_lowercase()),
            title: format!("{} ({}): {}", check.title, check.id, first_line(message)),
            severity: check.severity,
            cwe: Some(check.cwe),
            tags: vec![
                format!("TEN-{}", check.id),
                "campaign".into(),
                format!("seed-{seed}"),
            ],
            references: Vec::new(),
            given: Given {
                orgs: self
                    .cast
                    .orgs
                    .iter()
                    .map(|k| GivenOrg {
                        key: k.to_string(),
                        name: None,
                    })
                    .collect(),
                users: self
                    .cast
                    .users
                    .iter()
                    .map(|(name, memberships)| GivenUser {
                        key: name.to_string(),
                        memberships: memberships
                            .iter()
                            .map(|(o, admin)| {
                                (self.cast.orgs[*o].clone(), super::role_name(*admin).to_string())
                            })
                            .collect(),
                    })
                    .collect(),
                resources: Vec::new(),
            },
            steps: self.items(),
        }
    }

    /// The requests with the membership changes between them.
    fn items(&self) -> Vec<Item> {
        let change = |step: &IdentityStep| {
            Item::Membership(match *step {
                IdentityStep::Remove { user, org } => MembershipChange {
                    name: None,
                    user: self.cast.user(user).to_string(),
                    org: self.cast.org(org).to_string(),
                    role: None,
                },
                IdentityStep::Role { user, org, admin } => MembershipChange {
                    name: None,
                    user: self.cast.user(user).to_string(),
                    org: self.cast.org(org).to_string(),
                    role: Some(super::role_name(admin).to_string()),
                },
            })
        };
        let mut items = Vec::new();
        let mut identity = self.identity.iter().peekable();
        for (i, step) in self.steps.iter().enumerate() {
            while let Some((_, c)) = identity.next_if(|(at, _)| *at <= i) {
                items.push(change(c));
            }
            items.push(Item::Send(step.clone()));
        }
        items.extend(identity.map(|(_, c)| change(c)));
        items
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().chars().take(160).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_are_renamed_with_their_filters() {
        let f = |n: &str| {
            if n == "id" {
                "i3".to_string()
            } else {
                n.to_string()
            }
        };
        assert_eq!(
            rename("/p/{{ id }}/{{org|upper}}", &f),
            "/p/{{ i3 }}/{{ org | upper }}"
        );
    }

    #[test]
    fn pointers_become_paths() {
        assert_eq!(pointer_to_path("/id"), "$.id");
        assert_eq!(
            pointer_to_path("/result/data/0/json/id"),
            "$.result.data[0].json.id"
        );
        assert_eq!(pointer_to_path("/a b"), "$['a b']");
        let body = json!({ "data": { "items": [{ "name": "x" }, { "name": "tnryabc" }] } });
        assert_eq!(
            json_path_to(&body, "tnryabc").as_deref(),
            Some("$.data.items[1].name")
        );
        assert_eq!(json_path_to(&body, "nope"), None);
    }
}
