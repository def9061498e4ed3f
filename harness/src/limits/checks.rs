//! RL-001..012, one function each, over one declared policy.

use std::time::{Duration, Instant};

use super::{admitted, odd, sleep, Actor, Sent, Suite};
use crate::audit::AuditError;
use crate::client::Reply;
use crate::profile::{LimitAlgorithm, LimitPolicy};

/// The longest window the suite waits out (RL-007, RL-008, RL-009).
const LONGEST_WAIT: Duration = Duration::from_secs(10);

pub(super) async fn all(suite: &mut Suite, policy: &LimitPolicy) -> Result<(), AuditError> {
    exact(suite, policy).await?;
    isolation(suite, policy).await?;
    per_user(suite, policy).await?;
    spoofed(suite, policy).await?;
    suite.skip(
        "RL-005",
        "not run: the profile cannot name a bypass org the harness can create (see docs/profiles.md)".into(),
    );
    headers(suite, policy).await?;
    let short = policy.window <= LONGEST_WAIT;
    for id in ["RL-007", "RL-008", "RL-009"] {
        if !short {
            suite.skip(
                id,
                format!(
                    "not run: policy {} has a {} s window; the suite waits out at most {} s",
                    policy.name,
                    policy.window.as_secs(),
                    LONGEST_WAIT.as_secs()
                ),
            );
        }
    }
    if short {
        retry(suite, policy).await?;
        rejected(suite, policy).await?;
        edge(suite, policy).await?;
    }
    multi_instance(suite, policy).await?;
    for id in ["RL-011", "RL-012"] {
        suite.skip(
            id,
            "not run: needs the store (the harness must own it to stop it and watch its commands)".into(),
        );
    }
    Ok(())
}

/// What a target may admit in `elapsed` under `policy`: the algorithm's
/// bound for one window, plus a window's worth for every window passed.
fn allowed(policy: &LimitPolicy, elapsed: Duration) -> u64 {
    let windows = (elapsed.as_millis() / policy.window.as_millis().max(1)) as u64;
    policy.algorithm.bound(policy.limit) + windows * u64::from(policy.limit)
}

/// Fails the suite on answers that are not the limiter's (4xx: the profile's
/// request is wrong); a 5xx is a finding of `check`.
fn screen(
    suite: &mut Suite,
    check: &str,
    policy: &LimitPolicy,
    actor: &Actor,
    sent: &[Sent],
) -> Result<(), AuditError> {
    if let Some(s) = odd(sent) {
        if s.reply.status >= 500 {
            suite.finding(
                check,
                policy,
                format!(
                    "a request of {} answered {} (expected 2xx or 429)",
                    actor.label, s.reply.status
                ),
                vec![s.reply.transcript.clone()],
            );
        } else {
            return Err(AuditError::Setup {
                resource: format!("rate_limit policy {}", policy.name),
                org: actor.org.key.clone(),
                detail: format!(
                    "its request answered {} (neither admitted nor 429); fix the policy's request in the profile: {}",
                    s.reply.status, s.reply.transcript
                ),
            });
        }
    }
    Ok(())
}

fn actor(suite: &Suite, org: &str, user: &str) -> Result<Actor, AuditError> {
    suite.actor(org, user).ok_or_else(|| AuditError::Setup {
        resource: "rate_limit".into(),
        org: org.into(),
        detail: format!("no token for {user}"),
    })
}

/// A concurrent burst of `n` requests of `actors` (round robin) to instance
/// `base` (or spread over all with `spread`); returns the answers and the
/// burst's duration.
async fn burst(
    suite: &Suite,
    policy: &LimitPolicy,
    actors: &[Actor],
    n: usize,
    spread: bool,
    decorate: &dyn Fn(usize, crate::client::Request) -> crate::client::Request,
) -> Result<(Vec<Sent>, Duration), AuditError> {
    let mut requests = Vec::with_capacity(n);
    for i in 0..n {
        let base = if spread { i } else { 0 };
        requests.push(decorate(
            i,
            suite.request(policy, &actors[i % actors.len()], base)?,
        ));
    }
    let start = Instant::now();
    let sent = suite.burst(requests).await;
    Ok((sent, start.elapsed()))
}

fn plain(_: usize, r: crate::client::Request) -> crate::client::Request {
    r
}

fn over(sent: &[Sent]) -> Vec<String> {
    sent.iter()
        .filter(|s| s.admitted())
        .rev()
        .take(2)
        .map(|s| s.reply.transcript.clone())
        .collect()
}

/// RL-001: 3 × limit concurrent requests of one org.
async fn exact(suite: &mut Suite, policy: &LimitPolicy) -> Result<(), AuditError> {
    if !suite.ran("RL-001") {
        return Ok(());
    }
    let a = actor(suite, "exact", "owner")?;
    let n = (3 * policy.limit as usize).max(6);
    let (sent, elapsed) = burst(suite, policy, std::slice::from_ref(&a), n, false, &plain).await?;
    screen(suite, "RL-001", policy, &a, &sent)?;
    let got = admitted(&sent) as u64;
    let bound = allowed(policy, elapsed);
    if got > bound {
        suite.finding(
            "RL-001",
            policy,
            format!(
                "{n} concurrent requests of one org within {} ms: {got} admitted, {} refused with 429; the {} policy admits at most {bound} (limit {} per {} s)",
                elapsed.as_millis(),
                sent.iter().filter(|s| s.limited()).count(),
                algorithm_name(policy.algorithm),
                policy.limit,
                policy.window.as_secs()
            ),
            over(&sent),
        );
    }
    Ok(())
}

/// RL-002: A exhausted, then B (and the hostile-named org) still admitted.
async fn isolation(suite: &mut Suite, policy: &LimitPolicy) -> Result<(), AuditError> {
    if !suite.ran("RL-002") {
        return Ok(());
    }
    let a = actor(suite, "iso_a", "owner")?;
    let n = 2 * policy.limit as usize + 2;
    let (sent, _) = burst(suite, policy, std::slice::from_ref(&a), n, false, &plain).await?;
    screen(suite, "RL-002", policy, &a, &sent)?;
    if !sent.iter().any(Sent::limited) {
        // RL-001 judges a limiter that never refuses; nothing to isolate here.
        return Ok(());
    }
    let mut others = vec![actor(suite, "iso_b", "other")?];
    match suite.hostile_named {
        Some(true) => others.push(actor(suite, "hostile", "hostile_owner")?),
        Some(false) => {
            others.push(actor(suite, "hostile", "hostile_owner")?);
            suite.skip(
                "RL-002",
                "partly run: the identity service refused a slug with `:`, `{`, `}`; only the org's name has them"
                    .into(),
            );
        }
        None => suite.skip(
            "RL-002",
            "partly run: the identity service refused an org named with `:`, `{`, `}`".into(),
        ),
    }
    for b in others {
        let request = suite.request(policy, &b, 0)?;
        let reply = suite.one(request).await;
        if reply.status == 429 {
            suite.finding(
                "RL-002",
                policy,
                format!(
                    "org {} (`{}`) is refused with 429 right after org {} used its budget: the orgs share one",
                    b.org.id, b.org.name, a.org.id
                ),
                vec![reply.transcript],
            );
        }
    }
    Ok(())
}

/// RL-003: four users of one org, round robin, share one budget.
async fn per_user(suite: &mut Suite, policy: &LimitPolicy) -> Result<(), AuditError> {
    if !suite.ran("RL-003") {
        return Ok(());
    }
    let mut users = vec![actor(suite, "users", "owner")?];
    for m in super::MEMBERS {
        users.push(actor(suite, "users", m)?);
    }
    let n = users.len() * policy.limit as usize + users.len();
    let (sent, elapsed) = burst(suite, policy, &users, n, false, &plain).await?;
    screen(suite, "RL-003", policy, &users[0], &sent)?;
    let got = admitted(&sent) as u64;
    let bound = allowed(policy, elapsed);
    if got > bound {
        suite.finding(
            "RL-003",
            policy,
            format!(
                "{} users of one org sent {n} requests within {} ms and {got} were admitted (at most {bound} for the org): the budget is per user",
                users.len(),
                elapsed.as_millis()
            ),
            over(&sent),
        );
    }
    Ok(())
}

/// RL-004: every request claims another client address.
async fn spoofed(suite: &mut Suite, policy: &LimitPolicy) -> Result<(), AuditError> {
    if !suite.ran("RL-004") {
        return Ok(());
    }
    let a = actor(suite, "spoof", "owner")?;
    let n = (3 * policy.limit as usize).max(6);
    let spoof = |i: usize, r: crate::client::Request| {
        let ip = format!("198.51.{}.{}", (i / 250) % 250, i % 250 + 1);
        r.header("x-forwarded-for", ip.clone())
            .header("x-real-ip", ip.clone())
            .header("forwarded", format!("for={ip}"))
            .header("true-client-ip", ip.clone())
            .header("cf-connecting-ip", ip)
    };
    let (sent, elapsed) = burst(suite, policy, std::slice::from_ref(&a), n, false, &spoof).await?;
    screen(suite, "RL-004", policy, &a, &sent)?;
    let got = admitted(&sent) as u64;
    let bound = allowed(policy, elapsed);
    if got > bound {
        suite.finding(
            "RL-004",
            policy,
            format!(
                "{n} requests of one org, each with another X-Forwarded-For / X-Real-IP / Forwarded address: {got} admitted (at most {bound})"
            ),
            over(&sent),
        );
    }
    Ok(())
}

/// `"<name>";q=10;w=2` or `"<name>";r=3;t=1` -> the integer parameter `key`.
fn parameter(value: &str, key: &str) -> Option<u64> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// RL-006: sequential requests of a fresh org, limit + 2 of them.
async fn headers(suite: &mut Suite, policy: &LimitPolicy) -> Result<(), AuditError> {
    if !policy.headers {
        suite.skip(
            "RL-006",
            format!(
                "not run for policy {}: the profile does not declare `headers = true`",
                policy.name
            ),
        );
        return Ok(());
    }
    if !suite.ran("RL-006") {
        return Ok(());
    }
    let a = actor(suite, "headers", "owner")?;
    let window_secs = policy.window.as_secs().max(1);
    let start = Instant::now();
    let mut admitted_in_window: u64 = 0;
    let mut last_r: Option<u64> = None;
    let mut problems: Vec<(&'static str, String, Reply)> = Vec::new();
    for _ in 0..policy.limit + 2 {
        let request = suite.request(policy, &a, 0)?;
        let reply = suite.one(request).await;
        let sent = [Sent {
            at: start.elapsed(),
            reply: reply.clone(),
        }];
        screen(suite, "RL-006", policy, &a, &sent)?;
        let fresh = sent[0].at < policy.window;
        if reply.status == 429 {
            match reply.header("retry-after").map(|v| v.trim().parse::<u64>()) {
                Some(Ok(secs)) if (1..=window_secs).contains(&secs) => {}
                Some(Ok(secs)) => problems.push((
                    "retry-after",
                    format!(
                        "429 has Retry-After: {secs}; expected whole seconds between 1 and the {window_secs} s window"
                    ),
                    reply.clone(),
                )),
                Some(Err(_)) => problems.push((
                    "retry-after",
                    "429 has a Retry-After that is not an integer number of seconds".into(),
                    reply.clone(),
                )),
                None => problems.push(("retry-after", "429 without Retry-After".into(), reply.clone())),
            }
            let cache = reply.header("cache-control").unwrap_or("").to_ascii_lowercase();
            let cacheable =
                (cache.contains("public") || cache.contains("max-age") || cache.contains("s-maxage"))
                    && !cache.contains("no-store")
                    && !cache.contains("private");
            if cacheable {
                problems.push((
                    "cache",
                    format!("429 is cacheable (Cache-Control: {cache}); send no-store"),
                    reply.clone(),
                ));
            }
            continue;
        }
        if !sent[0].admitted() {
            continue;
        }
        admitted_in_window += 1;
        match reply.header("ratelimit-policy") {
            Some(p) => {
                let q = parameter(p, "q");
                let w = parameter(p, "w");
                if q != Some(u64::from(policy.limit)) || w != Some(window_secs) {
                    problems.push((
                        "policy",
                        format!(
                            "RateLimit-Policy `{p}` does not carry q={} and w={window_secs} as declared",
                            policy.limit
                        ),
                        reply.clone(),
                    ));
                }
            }
            None => problems.push((
                "policy",
                "an admitted response has no RateLimit-Policy header".into(),
                reply.clone(),
            )),
        }
        let Some(r) = reply.header("ratelimit").and_then(|v| parameter(v, "r")) else {
            problems.push((
                "state",
                "an admitted response has no RateLimit header with r=".into(),
                reply.clone(),
            ));
            continue;
        };
        if let Some(previous) = last_r {
            if r > previous {
                if policy.algorithm == LimitAlgorithm::SlidingWindow && fresh {
                    problems.push((
                        "rose",
                        format!("RateLimit r rose from {previous} to {r} within one window"),
                        reply.clone(),
                    ));
                }
                // A fixed window or bucket may have turned over: count anew.
                admitted_in_window = 1;
            }
        }
        last_r = Some(r);
        if fresh && admitted_in_window + r != u64::from(policy.limit) {
            problems.push((
                "sum",
                format!(
                    "after {admitted_in_window} admitted request(s) RateLimit says r={r}; admitted + r must equal the limit {}",
                    policy.limit
                ),
                reply.clone(),
            ));
        }
    }
    // One finding per kind of fault (the first occurrence), so a header
    // that is off on every response does not hide a wrong Retry-After.
    let mut kinds: Vec<&'static str> = Vec::new();
    for (kind, message, reply) in problems {
        if !kinds.contains(&kind) {
            kinds.push(kind);
            suite.finding("RL-006", policy, message, vec![reply.transcript]);
        }
    }
    Ok(())
}

/// Exhausts `a`'s budget; returns the last 429, if one came.
async fn exhaust(
    suite: &mut Suite,
    check: &str,
    policy: &LimitPolicy,
    a: &Actor,
) -> Result<Option<Reply>, AuditError> {
    let n = policy.algorithm.bound(policy.limit) as usize + 1;
    let (sent, _) = burst(suite, policy, std::slice::from_ref(a), n, false, &plain).await?;
    screen(suite, check, policy, a, &sent)?;
    Ok(sent.into_iter().rev().find(|s| s.limited()).map(|s| s.reply))
}

/// RL-007: after Retry-After, a request is admitted.
async fn retry(suite: &mut Suite, policy: &LimitPolicy) -> Result<(), AuditError> {
    if !suite.ran("RL-007") {
        return Ok(());
    }
    let a = actor(suite, "retry", "owner")?;
    let Some(limited) = exhaust(suite, "RL-007", policy, &a).await? else {
        return Ok(());
    };
    let after = limited
        .header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(policy.window, Duration::from_secs);
    // Never longer than a window plus margin: RL-006 judges a wild value.
    let wait = after.min(policy.window) + Duration::from_millis(150);
    sleep(wait).await;
    let request = suite.request(policy, &a, 0)?;
    let reply = suite.one(request).await;
    if reply.status == 429 {
        suite.finding(
            "RL-007",
            policy,
            format!(
                "a request {} ms after a 429 that said Retry-After: {} was refused again",
                wait.as_millis(),
                limited.header("retry-after").unwrap_or("(none)")
            ),
            vec![limited.transcript, reply.transcript],
        );
    }
    Ok(())
}

/// RL-008: retries while limited do not extend the limit.
async fn rejected(suite: &mut Suite, policy: &LimitPolicy) -> Result<(), AuditError> {
    if !suite.ran("RL-008") {
        return Ok(());
    }
    let a = actor(suite, "rejected", "owner")?;
    let start = Instant::now();
    if exhaust(suite, "RL-008", policy, &a).await?.is_none() {
        return Ok(());
    }
    let exhausted = start.elapsed();
    // Retries while limited: for a sliding window in the middle of the
    // window (so they would still count when the first burst has aged out);
    // otherwise at once (a fixed window or bucket forgets them at the turn).
    let (from, to) = match policy.algorithm {
        LimitAlgorithm::SlidingWindow => (policy.window * 3 / 10, policy.window * 6 / 10),
        _ => (exhausted, exhausted),
    };
    let retries = policy.limit.clamp(2, 20);
    let mut refused = Vec::new();
    for i in 0..retries {
        let at = from + (to.saturating_sub(from)) * i / retries;
        if let Some(d) = at.checked_sub(start.elapsed()) {
            sleep(d).await;
        }
        let request = suite.request(policy, &a, 0)?;
        let reply = suite.one(request).await;
        if reply.status != 429 {
            // Admitted again already: the premise fails; nothing to judge.
            return Ok(());
        }
        refused.push(reply);
    }
    let probe_at = match policy.algorithm {
        LimitAlgorithm::SlidingWindow => exhausted + policy.window + policy.window / 5,
        _ => start.elapsed() + policy.window + policy.window / 5,
    };
    if let Some(d) = probe_at.checked_sub(start.elapsed()) {
        sleep(d).await;
    }
    let request = suite.request(policy, &a, 0)?;
    let reply = suite.one(request).await;
    if reply.status == 429 {
        suite.finding(
            "RL-008",
            policy,
            format!(
                "the org's budget was used, {retries} retries were refused, and a request {} ms after the budget was used — past its window — was refused too: refused requests count",
                probe_at.as_millis()
            ),
            vec![refused.last().map(|r| r.transcript.clone()).unwrap_or_default(), reply.transcript],
        );
    }
    Ok(())
}

/// RL-009: steady traffic at four times the limit for two windows; no
/// interval of (nearly) one window admits more than the algorithm allows.
async fn edge(suite: &mut Suite, policy: &LimitPolicy) -> Result<(), AuditError> {
    if !suite.ran("RL-009") {
        return Ok(());
    }
    let a = actor(suite, "edge", "owner")?;
    let per_window = (4 * policy.limit).clamp(8, 400);
    let total = per_window * 2 + per_window / 4;
    let gap = policy.window / per_window;
    let start = Instant::now();
    let mut pending = Vec::new();
    for i in 0..total {
        let due = gap * i;
        if let Some(d) = due.checked_sub(start.elapsed()) {
            sleep(d).await;
        }
        let request = suite.request(policy, &a, 0)?;
        let client = suite.client.clone();
        pending.push(tokio::spawn(async move {
            let at = start.elapsed();
            Sent {
                at,
                reply: client.send(request).await,
            }
        }));
    }
    let mut sent = Vec::new();
    for p in pending {
        if let Ok(s) = p.await {
            sent.push(s);
        }
    }
    screen(suite, "RL-009", policy, &a, &sent)?;
    // Send times are the client's; a shorter interval absorbs latency jitter.
    let span = policy.window * 8 / 10;
    let times: Vec<Duration> = sent.iter().filter(|s| s.admitted()).map(|s| s.at).collect();
    let bound = policy.algorithm.bound(policy.limit) as usize;
    let mut worst = (0usize, Duration::ZERO);
    for (i, t) in times.iter().enumerate() {
        let inside = times[i..].iter().take_while(|u| **u < *t + span).count();
        if inside > worst.0 {
            worst = (inside, *t);
        }
    }
    if worst.0 > bound {
        suite.finding(
            "RL-009",
            policy,
            format!(
                "{} requests admitted within {} ms from {} ms into steady traffic; the {} policy allows at most {bound} in any window",
                worst.0,
                span.as_millis(),
                worst.1.as_millis(),
                algorithm_name(policy.algorithm)
            ),
            over(&sent),
        );
    }
    Ok(())
}

/// RL-010: one org's burst spread over every instance.
async fn multi_instance(suite: &mut Suite, policy: &LimitPolicy) -> Result<(), AuditError> {
    if suite.bases.len() < 2 {
        suite.skip(
            "RL-010",
            "not run: the profile lists one instance (give [rate_limit] base_urls with two or more)".into(),
        );
        return Ok(());
    }
    if !suite.ran("RL-010") {
        return Ok(());
    }
    let a = actor(suite, "multi", "owner")?;
    let n = (3 * policy.limit as usize).max(2 * suite.bases.len());
    let (sent, elapsed) = burst(suite, policy, std::slice::from_ref(&a), n, true, &plain).await?;
    screen(suite, "RL-010", policy, &a, &sent)?;
    let got = admitted(&sent) as u64;
    let bound = allowed(policy, elapsed);
    if got > bound {
        suite.finding(
            "RL-010",
            policy,
            format!(
                "{n} requests of one org spread over {} instances: {got} admitted (at most {bound}); the instances do not share the count",
                suite.bases.len()
            ),
            over(&sent),
        );
    }
    Ok(())
}

fn algorithm_name(a: LimitAlgorithm) -> &'static str {
    match a {
        LimitAlgorithm::FixedWindow => "fixed-window",
        LimitAlgorithm::SlidingWindow => "sliding-window",
        LimitAlgorithm::TokenBucket => "token-bucket",
    }
}
