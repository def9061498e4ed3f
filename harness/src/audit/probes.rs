//! The ISO and SES probes, per resource type and for the target as a whole.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Actor, AuditError, Item, Run, Vars};
use crate::client::{unverified_claims, Reply};
use crate::oracle::NeedleKind;
use crate::profile::Resource;
use crate::session::Sessions;
use crate::world::World;

/// Progress ticks per resource type.
pub(super) const PHASES: u64 = 2;

/// Samples per side when comparing foreign-id and missing-id timing.
const TIMING_SAMPLES: usize = 15;

fn refused(status: u16) -> bool {
    matches!(status, 401 | 403 | 404)
}

fn body(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

impl Run<'_> {
    /// The first item of `resource` in `org` (key).
    pub(super) fn item(&self, resource: &str, org: &str) -> Option<Item> {
        self.items
            .get(&(resource.to_string(), org.to_string()))
            .and_then(|items| items.first())
            .cloned()
    }

    /// The parent item `actor`'s org owns for a child `resource`.
    pub(super) fn own_parent(&self, resource: &Resource, actor: &Actor) -> Option<String> {
        let parent = resource.parent.as_ref()?;
        let org = actor.org.as_ref()?;
        self.item(parent, &org.key).map(|i| i.id)
    }
}

/// Creates one `resource` as `actor` (under its org's parent item) and
/// registers its canaries and id to the actor's org.
pub(super) async fn create(
    run: &mut Run<'_>,
    resource: &Resource,
    actor: &Actor,
) -> Result<Item, AuditError> {
    let parent = run.own_parent(resource, actor);
    let mut canaries = Vec::new();
    let vars = Vars {
        parent: parent.as_deref(),
        ..Vars::default()
    };
    let request = run.render(&resource.create, actor, None, &vars, &mut canaries)?;
    let reply = run.send("ISO-004", actor, request).await;
    let id = reply
        .json()
        .pointer(&resource.id_pointer)
        .and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .ok_or_else(|| AuditError::Setup {
            resource: resource.name.clone(),
            org: actor.label.clone(),
            detail: format!(
                "HTTP {} without an id at {}: {}",
                reply.status,
                resource.id_pointer,
                body(&reply).chars().take(300).collect::<String>()
            ),
        })?;
    let owner = actor.org_id().to_string();
    for c in &canaries {
        let _ = run
            .oracle
            .register(c, &owner, NeedleKind::Canary, &format!("{} {id}", resource.name));
    }
    let _ = run
        .oracle
        .register(&id, &owner, NeedleKind::Id, &format!("{} {id}", resource.name));
    Ok(Item { id, canaries, parent })
}

/// An id shaped like `id` that names nothing.
fn missing_like(id: &str) -> String {
    let mut missing = id.to_string();
    let last = missing.pop().unwrap_or('0');
    let replacement = match last {
        '0' => '1',
        c if c.is_ascii_digit() => '0',
        'a' => 'b',
        'A' => 'B',
        c if c.is_ascii_uppercase() => 'A',
        _ => 'a',
    };
    missing.push(replacement);
    missing
}

/// Whether ids look sequential: same prefix, numeric tails close together.
fn predictable(ids: &[&str]) -> bool {
    if ids.len() < 2 {
        return false;
    }
    let numbers: Vec<Option<u128>> = ids
        .iter()
        .map(|id| {
            let digits: String = id
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_digit())
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let prefix = &id[..id.len() - digits.len()];
            let same_prefix = ids.iter().all(|o| o.starts_with(prefix));
            (same_prefix && !digits.is_empty() && digits.len() <= 20)
                .then(|| digits.parse::<u128>().ok())
                .flatten()
        })
        .collect();
    let nums: Vec<u128> = numbers.iter().flatten().copied().collect();
    nums.len() == ids.len() && nums.windows(2).all(|w| w[0].abs_diff(w[1]) <= 1000)
}

/// Whether the `slow` samples are all slower than every `fast` one by a
/// margin: complete separation of interleaved samples, which random noise
/// produces with probability about 1 / C(2n, n).
fn separated(slow: &[Duration], fast: &[Duration]) -> bool {
    let (Some(min_slow), Some(max_fast)) = (slow.iter().min(), fast.iter().max()) else {
        return false;
    };
    let median = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        v[v.len() / 2]
    };
    min_slow > max_fast && median(slow).saturating_sub(median(fast)) > Duration::from_millis(5)
}

/// The per-resource probes: ISO-013, 001, 010, 011, 002, 004, 005, 006,
/// 012 and ORG-009.
pub(super) async fn resource(
    run: &mut Run<'_>,
    resource: &Resource,
    a: &Actor,
    b: &Actor,
    personal: &Actor,
) -> Result<(), AuditError> {
    let (Some(item_a), Some(item_b)) = (run.item(&resource.name, "a"), run.item(&resource.name, "b")) else {
        return Ok(());
    };
    let name = &resource.name;
    let for_a = Vars {
        id: Some(&item_a.id),
        parent: item_a.parent.as_deref(),
        ..Vars::default()
    };
    let list_as_b = Vars {
        parent: item_b.parent.as_deref(),
        ..Vars::default()
    };
    let mut scratch = Vec::new();

    if run.ran("ISO-013") {
        let anonymous = Actor::anonymous();
        let mut probes = Vec::new();
        if let Some(list) = &resource.list {
            probes.push(run.render(list, a, None, &for_a, &mut scratch)?);
        }
        if let Some(read) = &resource.read {
            probes.push(run.render(read, a, None, &for_a, &mut scratch)?);
        }
        for request in probes {
            let (method, path) = (request.method.clone(), request.path.clone());
            let reply = run.send("ISO-013", &anonymous, request).await;
            if reply.status != 401 {
                run.finding(
                    "ISO-013",
                    format!(
                        "{method} {path} without a token answered {} (expected 401)",
                        reply.status
                    ),
                    vec![reply.transcript],
                );
            }
        }
    }
    if let Some(read) = &resource.read {
        if run.ran("ISO-001") {
            let request = run.render(read, b, None, &for_a, &mut scratch)?;
            let reply = run.send("ISO-001", b, request).await;
            if !refused(reply.status) {
                run.finding(
                    "ISO-001",
                    format!("{} read org a's {name} {}: {}", b.label, item_a.id, reply.status),
                    vec![reply.transcript],
                );
            }
            // The model's other half: the owner reads it, with its canaries.
            let request = run.render(read, a, None, &for_a, &mut scratch)?;
            let own = run.send("ISO-001", a, request).await;
            let text = body(&own);
            if own.status != 200 || !item_a.canaries.iter().all(|c| text.contains(c.as_str())) {
                run.finding(
                    "ISO-001",
                    format!(
                        "{} cannot read its own {name} {} ({}): the target does not behave as the profile says",
                        a.label, item_a.id, own.status
                    ),
                    vec![own.transcript],
                );
            }
        }
        let iso_010 = run.ran("ISO-010");
        let iso_011 = run.ran("ISO-011");
        if iso_010 || iso_011 {
            let missing_id = missing_like(&item_a.id);
            let for_missing = Vars {
                id: Some(&missing_id),
                ..for_a.clone()
            };
            let request = run.render(read, b, None, &for_a, &mut scratch)?;
            let foreign = run.send("ISO-010", b, request).await;
            let request = run.render(read, b, None, &for_missing, &mut scratch)?;
            let missing = run.send("ISO-010", b, request).await;
            let normalise = |r: &Reply, id: &str| body(r).replace(id, "{id}");
            if iso_010 && normalise(&foreign, &item_a.id) != normalise(&missing, &missing_id) {
                run.finding(
                    "ISO-010",
                    format!("the error body for a foreign {name} id differs from the one for a missing id"),
                    vec![foreign.transcript.clone(), missing.transcript.clone()],
                );
            }
            if iso_011 && foreign.status != missing.status {
                run.finding(
                    "ISO-011",
                    format!(
                        "a foreign {name} id answers {} and a missing one {}: existence is revealed",
                        foreign.status, missing.status
                    ),
                    vec![foreign.transcript.clone(), missing.transcript.clone()],
                );
            }
            if iso_011 {
                let mut slow = Vec::new();
                let mut fast = Vec::new();
                for _ in 0..TIMING_SAMPLES {
                    for (vars, into) in [(&for_a, &mut slow), (&for_missing, &mut fast)] {
                        let request = run.render(read, b, None, vars, &mut scratch)?;
                        let t = Instant::now();
                        run.send("ISO-011", b, request).await;
                        into.push(t.elapsed());
                    }
                }
                if separated(&slow, &fast) {
                    run.finding(
                        "ISO-011",
                        format!(
                            "every one of {TIMING_SAMPLES} reads of a foreign {name} id was slower than every read of a missing id: timing reveals existence"
                        ),
                        vec![foreign.transcript, missing.transcript],
                    );
                }
            }
        }
    }
    if let Some(update) = &resource.update {
        if run.ran("ISO-002") {
            let mut written = Vec::new();
            let request = run.render(update, b, None, &for_a, &mut written)?;
            let reply = run.send("ISO-002", b, request).await;
            let changed = match &resource.read {
                Some(read) => {
                    let request = run.render(read, a, None, &for_a, &mut scratch)?;
                    let check = run.send("ISO-002", a, request).await;
                    let text = body(&check);
                    written
                        .iter()
                        .any(|c| text.contains(c.as_str()))
                        .then_some(check.transcript)
                }
                None => None,
            };
            if !refused(reply.status) || changed.is_some() {
                let mut evidence = vec![reply.transcript];
                evidence.extend(changed);
                run.finding(
                    "ISO-002",
                    format!(
                        "{} updated org a's {name} {}: {}",
                        b.label, item_a.id, reply.status
                    ),
                    evidence,
                );
            }
        }
    }
    if let Some(list) = &resource.list {
        if run.ran("ISO-004") {
            let request = run.render(list, b, None, &list_as_b, &mut scratch)?;
            let reply = run.send("ISO-004", b, request).await;
            if reply.status == 200 && !item_b.canaries.iter().any(|c| body(&reply).contains(c.as_str())) {
                run.finding(
                    "ISO-004",
                    format!("{}'s {name} list does not show its own {}", b.label, item_b.id),
                    vec![reply.transcript],
                );
            }
            let for_a_list = Vars {
                parent: item_a.parent.as_deref(),
                ..Vars::default()
            };
            let request = run.render(list, a, None, &for_a_list, &mut scratch)?;
            run.send("ISO-004", a, request).await;
        }
        if run.ran("ORG-009") {
            let request = run.render(list, personal, None, &list_as_b, &mut scratch)?;
            let reply = run.send("ORG-009", personal, request).await;
            if reply.status != 403 {
                run.finding(
                    "ORG-009",
                    format!(
                        "a token without an active org got {} on the {name} list (expected 403)",
                        reply.status
                    ),
                    vec![reply.transcript],
                );
            }
        }
    }
    if let Some(search) = &resource.search {
        if run.ran("ISO-005") {
            for c in item_a.canaries.clone() {
                let vars = Vars {
                    q: Some(&c),
                    ..Vars::default()
                };
                let request = run.render(search, b, None, &vars, &mut scratch)?;
                run.send("ISO-005", b, request).await;
            }
            // The owner finds its own.
            if let Some(c) = item_a.canaries.first().cloned() {
                let vars = Vars {
                    q: Some(&c),
                    ..Vars::default()
                };
                let request = run.render(search, a, None, &vars, &mut scratch)?;
                let own = run.send("ISO-005", a, request).await;
                if own.status == 200 && !body(&own).contains(item_a.id.as_str()) {
                    run.finding(
                        "ISO-005",
                        format!(
                            "{} searching its own canary does not find {name} {}",
                            a.label, item_a.id
                        ),
                        vec![own.transcript],
                    );
                }
            }
        }
    }
    if resource.parent.is_some() && run.ran("ISO-006") {
        let under_a = Vars {
            parent: item_a.parent.as_deref(),
            ..Vars::default()
        };
        let mut written = Vec::new();
        let request = run.render(&resource.create, b, None, &under_a, &mut written)?;
        let created = run.send("ISO-006", b, request).await;
        if !refused(created.status) {
            run.finding(
                "ISO-006",
                format!(
                    "{} created a {name} under org a's {} {}: {}",
                    b.label,
                    resource.parent.as_deref().unwrap_or("parent"),
                    item_a.parent.as_deref().unwrap_or(""),
                    created.status
                ),
                vec![created.transcript],
            );
        }
        if let Some(list) = &resource.list {
            let request = run.render(list, b, None, &under_a, &mut scratch)?;
            let reply = run.send("ISO-006", b, request).await;
            if !refused(reply.status) {
                run.finding(
                    "ISO-006",
                    format!(
                        "{} listed the {name} of org a's {} {}: {}",
                        b.label,
                        resource.parent.as_deref().unwrap_or("parent"),
                        item_a.parent.as_deref().unwrap_or(""),
                        reply.status
                    ),
                    vec![reply.transcript],
                );
            }
            // The owner's view must not contain what B tried to write.
            let request = run.render(list, a, None, &under_a, &mut scratch)?;
            run.send("ISO-006", a, request).await;
        }
    }
    if run.ran("ISO-012") {
        // Two more ids from org a, created back to back.
        let mut ids = vec![item_a.id.clone()];
        for _ in 0..2 {
            ids.push(create(run, resource, a).await?.id);
        }
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        if predictable(&refs) {
            run.finding(
                "ISO-012",
                format!(
                    "{name} ids are sequential ({}): any org can guess the others' ids",
                    ids.join(", ")
                ),
                Vec::new(),
            );
        }
    }
    run.tick(format!("{name}: reads, writes, lists, search"));
    Ok(())
}

/// ISO-009: a and b read each cached endpoint alternately.
pub(super) async fn cached(run: &mut Run<'_>, a: &Actor, b: &Actor) {
    if run.ran("ISO-009") {
        let cached = run.profile.cached.clone();
        let mut scratch = Vec::new();
        for template in &cached {
            for _ in 0..2 {
                for actor in [a, b] {
                    if let Ok(request) = run.render(template, actor, None, &Vars::default(), &mut scratch) {
                        run.send("ISO-009", actor, request).await;
                    }
                }
            }
        }
    }
    run.tick("cached endpoints".into());
}

/// ISO-008: b's job never carries a's data, and a cannot read b's job.
pub(super) async fn jobs(run: &mut Run<'_>, a: &Actor, b: &Actor) {
    if run.ran("ISO-008") {
        let jobs = run.profile.jobs.clone();
        let mut scratch = Vec::new();
        for job in &jobs {
            let Ok(request) = run.render(&job.start, b, None, &Vars::default(), &mut scratch) else {
                continue;
            };
            let started = run.send("ISO-008", b, request).await;
            let Some(id) = started.json().pointer(&job.id_pointer).and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }) else {
                run.finding(
                    "ISO-008",
                    format!(
                        "starting {} answered {} without a job id",
                        job.name, started.status
                    ),
                    vec![started.transcript],
                );
                continue;
            };
            let vars = Vars {
                id: Some(&id),
                ..Vars::default()
            };
            let deadline = Instant::now() + Duration::from_secs(15);
            while let Ok(request) = run.render(&job.poll, b, None, &vars, &mut scratch) {
                let polled = run.send("ISO-008", b, request).await;
                run.report.polls += 1;
                let status = polled
                    .json()
                    .pointer(&job.status_pointer)
                    .and_then(Value::as_str)
                    .map(String::from);
                if status.is_some_and(|s| job.done.contains(&s)) || Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if let Ok(request) = run.render(&job.poll, a, None, &vars, &mut scratch) {
                let foreign = run.send("ISO-008", a, request).await;
                if !refused(foreign.status) {
                    run.finding(
                        "ISO-008",
                        format!("{} read org b's {} {id}: {}", a.label, job.name, foreign.status),
                        vec![foreign.transcript],
                    );
                }
            }
        }
    }
    run.tick("jobs".into());
}

/// SES-001 and SES-002: alice switches from a to b.
pub(super) async fn org_switch(
    run: &mut Run<'_>,
    sessions: &mut Sessions,
    world: &World,
    a: &Actor,
) -> Result<(), AuditError> {
    let ses_001 = run.ran("SES-001");
    let ses_002 = run.ran("SES-002");
    if ses_001 || ses_002 {
        let switched = super::actor(sessions, world, "alice", Some("b")).await?;
        let mut scratch = Vec::new();
        let resources = run.profile.resources.clone();
        for resource in &resources {
            let (Some(item_a), Some(item_b)) = (run.item(&resource.name, "a"), run.item(&resource.name, "b"))
            else {
                continue;
            };
            if let Some(list) = &resource.list {
                let vars = Vars {
                    parent: item_b.parent.as_deref(),
                    ..Vars::default()
                };
                let request = run.render(list, &switched, None, &vars, &mut scratch)?;
                run.send("SES-001", &switched, request).await;
            }
            if let Some(read) = &resource.read {
                let vars = Vars {
                    id: Some(&item_a.id),
                    parent: item_a.parent.as_deref(),
                    ..Vars::default()
                };
                let request = run.render(read, &switched, None, &vars, &mut scratch)?;
                let reply = run.send("SES-001", &switched, request).await;
                if !refused(reply.status) {
                    run.finding(
                        "SES-001",
                        format!(
                            "after switching to org b, org a's {} {} answered {}",
                            resource.name, item_a.id, reply.status
                        ),
                        vec![reply.transcript],
                    );
                }
                // The old token (org a) on b's item.
                let vars = Vars {
                    id: Some(&item_b.id),
                    parent: item_b.parent.as_deref(),
                    ..Vars::default()
                };
                let request = run.render(read, a, None, &vars, &mut scratch)?;
                let stale = run.send("SES-002", a, request).await;
                if !refused(stale.status) {
                    run.finding(
                        "SES-002",
                        format!(
                            "alice's org-a token read org b's {} {}: {}",
                            resource.name, item_b.id, stale.status
                        ),
                        vec![stale.transcript],
                    );
                }
            }
        }
        // Org routes: the old token with the new org in the route.
        let routes = run.profile.org.routes.clone();
        if let Some(b_org) = switched.org.clone() {
            for route in &routes {
                let request = run.render(
                    route,
                    a,
                    Some((&b_org.id, &b_org.slug)),
                    &Vars::default(),
                    &mut scratch,
                )?;
                run.send("SES-002", a, request).await;
            }
        }
    }
    run.tick("org switch".into());
    Ok(())
}

/// The token's lifetime (exp - iat), read without verifying it.
fn lifetime(token: &str) -> Option<i64> {
    let c = unverified_claims(token)?;
    Some(c["exp"].as_i64()? - c["iat"].as_i64()?)
}

/// Longest token lifetime accepted without a SES-003 finding (Clerk's
/// default is 60 s; a removed member keeps access this long at most).
const MAX_LIFETIME_SECS: i64 = 300;

/// SES-003 (carol removed from a) and SES-004 (dave demoted in a).
pub(super) async fn membership_changes(
    run: &mut Run<'_>,
    sessions: &mut Sessions,
    world: &mut World,
) -> Result<(), AuditError> {
    if run.ran("SES-003") {
        let carol = super::actor(sessions, world, "carol", Some("a")).await?;
        if let Some(secs) = carol.token.as_deref().and_then(lifetime) {
            if secs > MAX_LIFETIME_SECS {
                run.finding(
                    "SES-003",
                    format!(
                        "session tokens live {secs} s: a removed member keeps access that long (at most {MAX_LIFETIME_SECS} s expected)"
                    ),
                    Vec::new(),
                );
            }
        }
        sessions.remove_member(world, "carol", "a").await?;
        match super::actor(sessions, world, "carol", Some("a")).await {
            Ok(after) => {
                // A token was issued: it must not carry org a.
                if let Some(org) = after.token.as_deref().and_then(active_org_claim) {
                    if world.org("a").is_some_and(|a| a.id == org) {
                        run.finding(
                            "SES-003",
                            "after carol was removed from org a, the identity service still issued a token for org a".into(),
                            Vec::new(),
                        );
                    }
                }
            }
            Err(AuditError::Session(_)) => {} // refused: as it should be
            Err(e) => return Err(e),
        }
    }
    let admin_delete = run
        .profile
        .resources
        .iter()
        .find(|r| r.delete.is_some() && r.admin_only.iter().any(|a| a == "delete"))
        .cloned();
    if run.ran("SES-004") {
        let admin_role = "org:admin";
        sessions.set_role(world, "dave", "a", "org:member").await?;
        let dave = super::actor(sessions, world, "dave", Some("a")).await?;
        if let Some(token) = dave.token.as_deref() {
            if role_claim(token).is_some_and(|r| r == admin_role || r == "admin") {
                run.finding(
                    "SES-004",
                    "after dave was demoted in org a, a fresh token still carries the admin role".into(),
                    Vec::new(),
                );
            }
        }
        // An admin-only action (deleting) by the demoted admin: refused, and
        // the item is still there.
        if let Some(resource) = admin_delete {
            let a = super::actor(sessions, world, "alice", Some("a")).await?;
            let item = create(run, &resource, &a).await?;
            let vars = Vars {
                id: Some(&item.id),
                parent: item.parent.as_deref(),
                ..Vars::default()
            };
            let mut scratch = Vec::new();
            if let Some(delete) = &resource.delete {
                let request = run.render(delete, &dave, None, &vars, &mut scratch)?;
                let reply = run.send("SES-004", &dave, request).await;
                if reply.status < 300 {
                    run.finding(
                        "SES-004",
                        format!(
                            "dave, demoted to org:member, still deleted {} {} (an admin-only action): {}",
                            resource.name, item.id, reply.status
                        ),
                        vec![reply.transcript],
                    );
                }
            }
        }
    }
    run.tick("membership changes".into());
    Ok(())
}

use crate::campaign::token_org as active_org_claim;

/// The org role of a Clerk token (v2 `o.rol`, v1 `org_role`).
fn role_claim(token: &str) -> Option<String> {
    let c = unverified_claims(token)?;
    c["o"]["rol"]
        .as_str()
        .or(c["org_role"].as_str())
        .map(String::from)
}

/// ISO-003 (b deletes a's item: refused) and ISO-007 (use after delete).
pub(super) async fn destructive(
    run: &mut Run<'_>,
    resource: &Resource,
    a: &Actor,
    b: &Actor,
) -> Result<(), AuditError> {
    let Some(delete) = resource.delete.clone() else {
        run.tick(format!("{}: deletes", resource.name));
        return Ok(());
    };
    let mut scratch = Vec::new();
    if let Some(item_a) = run.item(&resource.name, "a") {
        if run.ran("ISO-003") {
            let vars = Vars {
                id: Some(&item_a.id),
                parent: item_a.parent.as_deref(),
                ..Vars::default()
            };
            let request = run.render(&delete, b, None, &vars, &mut scratch)?;
            let reply = run.send("ISO-003", b, request).await;
            let still = match &resource.read {
                Some(read) => {
                    let request = run.render(read, a, None, &vars, &mut scratch)?;
                    Some(run.send("ISO-003", a, request).await)
                }
                None => None,
            };
            if !refused(reply.status) || still.as_ref().is_some_and(|s| s.status != 200) {
                let mut evidence = vec![reply.transcript];
                evidence.extend(still.map(|s| s.transcript));
                run.finding(
                    "ISO-003",
                    format!(
                        "{} deleted org a's {} {}: {}",
                        b.label, resource.name, item_a.id, reply.status
                    ),
                    evidence,
                );
            }
        }
    }
    if run.ran("ISO-007") {
        // A fresh item of b's, deleted by its owner, then read and updated.
        let item = create(run, resource, b).await?;
        let vars = Vars {
            id: Some(&item.id),
            parent: item.parent.as_deref(),
            ..Vars::default()
        };
        let request = run.render(&delete, b, None, &vars, &mut scratch)?;
        let deleted = run.send("ISO-007", b, request).await;
        let mut after = Vec::new();
        if let Some(read) = &resource.read {
            let request = run.render(read, b, None, &vars, &mut scratch)?;
            after.push(run.send("ISO-007", b, request).await);
        }
        if let Some(update) = &resource.update {
            let request = run.render(update, b, None, &vars, &mut scratch)?;
            after.push(run.send("ISO-007", b, request).await);
        }
        if deleted.status >= 300 {
            run.finding(
                "ISO-007",
                format!(
                    "{} could not delete its own {} {}: {} (the target does not behave as the profile says)",
                    b.label, resource.name, item.id, deleted.status
                ),
                vec![deleted.transcript],
            );
        } else {
            for reply in after {
                if reply.status != 404 {
                    run.finding(
                        "ISO-007",
                        format!(
                            "after DELETE the {} {} answered {} (expected 404)",
                            resource.name, item.id, reply.status
                        ),
                        vec![deleted.transcript.clone(), reply.transcript],
                    );
                }
            }
        }
    }
    run.tick(format!("{}: deletes", resource.name));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_are_predictable() {
        assert!(predictable(&["prj_1001", "prj_1002", "prj_1003"]));
        assert!(predictable(&["17", "18"]));
        assert!(!predictable(&["prj_01J9ZK3Q", "prj_01J9ZK4R"]));
        assert!(!predictable(&["prj_5", "prj_90000"]));
        assert!(!predictable(&[
            "3f2b9c1e-8d4a-4b6e-9c1f-2a3b4c5d6e7f",
            "a1b2c3d4-e5f6-4789-8abc-def012345678"
        ]));
    }

    #[test]
    fn missing_ids_keep_their_shape() {
        assert_eq!(missing_like("prj_abc0"), "prj_abc1");
        assert_eq!(missing_like("prj_abc7"), "prj_abc0");
        assert_eq!(missing_like("prj_abcQ"), "prj_abcA");
        assert_eq!(missing_like("prj_abca"), "prj_abcb");
    }

    #[test]
    fn timing_needs_complete_separation() {
        let ms = Duration::from_millis;
        assert!(separated(&[ms(30), ms(31), ms(32)], &[ms(10), ms(11), ms(12)]));
        assert!(!separated(&[ms(30), ms(9), ms(32)], &[ms(10), ms(11), ms(12)]));
        assert!(!separated(&[ms(13), ms(14), ms(15)], &[ms(10), ms(11), ms(12)]));
    }

    #[test]
    fn clerk_claims_are_read() {
        use base64::Engine;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"iat":10,"exp":70,"o":{"id":"org_1","rol":"admin"}}"#);
        let token = format!("e30.{payload}.sig");
        assert_eq!(lifetime(&token), Some(60));
        assert_eq!(active_org_claim(&token).as_deref(), Some("org_1"));
        assert_eq!(role_claim(&token).as_deref(), Some("admin"));
    }
}
