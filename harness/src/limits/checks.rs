//! RL-001..012, one function each, over one declared policy.

use std::time::{Duration, Instant};

use super::{admitted, odd, sleep, Actor, LimitsHooks, Sent, Suite, RECOVERY_WITHIN, STORE_DOWN_BOUND};
use crate::audit::AuditError;
use crate::client::Reply;
use crate::profile::{LimitAlgorithm, LimitPolicy};

/// The longest window the suite waits out (RL-007, RL-008, RL-009).
const LONGEST_WAIT: Duration = Duration::from_secs(10);

pub(super) async fn all(
    suite: &mut Suite,
    policy: &LimitPolicy,
    hooks: Option<&dyn LimitsHooks>,
) -> Result<(), AuditError> {
    exact(suite, policy).await?;
    isolation(suite, policy).await?;
    per_user(suite, policy).await?;
    spoofed(suite, policy).await?;
    bypass(suite, policy, hooks).await?;
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
    cost(suite, policy, hooks).await?;
    store_down(suite, policy, hooks).await?;
    Ok(())
}

/// Decisions RL-012 measures.
const COST_DECISIONS: u64 = 5;

/// Keys one org may hold per policy (RL-012).
const KEYS_PER_ORG: usize = 2;

/// What RL-012 read from the store around [`COST_DECISIONS`] requests.
struct StoreCost {
    /// Commands clients sent the store (a script's inner calls and the
    /// check's own commands excluded).
    commands: u64,
    /// MONITOR lines of those commands, for evidence.
    lines: Vec<String>,
    /// The org's keys and their PTTL (-1: none).
    keys: Vec<(String, i64)>,
}

/// Commands the check itself (or a client's handshake) sends.
const OWN_COMMANDS: &[&str] = &[
    "info", "config", "scan", "pttl", "ttl", "ping", "hello", "client", "dbsize", "select",
];

async fn measure_cost(
    suite: &Suite,
    policy: &LimitPolicy,
    a: &Actor,
    url: &str,
) -> Result<StoreCost, String> {
    let request = |suite: &Suite| suite.request(policy, a, 0).map_err(|e| e.to_string());
    // One decision first, so a script cache or connection warm-up is not counted.
    suite.one(request(suite)?).await;
    // MONITOR shows what clients send (a script's own commands come marked
    // `[db lua]`): round trips, where INFO commandstats would count the
    // script's inner calls too.
    let info =
        redis::IntoConnectionInfo::into_connection_info(url).map_err(|e| format!("the store URL: {e}"))?;
    let addr = match info.addr() {
        redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        other => return Err(format!("MONITOR needs a plain TCP store address, not {other}")),
    };
    let mut monitor = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("connecting to the store at {addr}: {e}"))?;
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        monitor
            .write_all(b"MONITOR\r\n")
            .await
            .map_err(|e| format!("MONITOR: {e}"))?;
        let mut ok = [0u8; 5];
        monitor
            .read_exact(&mut ok)
            .await
            .map_err(|e| format!("MONITOR: {e}"))?;
        if &ok != b"+OK\r\n" {
            return Err(format!("MONITOR answered {:?}", String::from_utf8_lossy(&ok)));
        }
    }
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        let seen = std::sync::Arc::clone(&seen);
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(monitor).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                seen.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        })
    };
    for _ in 0..COST_DECISIONS {
        suite.one(request(suite)?).await;
    }
    sleep(Duration::from_millis(200)).await;
    reader.abort();
    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(|p| p.into_inner()));
    let mut commands = 0;
    let mut lines = Vec::new();
    for line in seen {
        // `+<time> [<db> <client or lua>] "<command>" ...`
        let Some((client, rest)) = line.split_once(" [").and_then(|(_, r)| r.split_once("] ")) else {
            continue;
        };
        if client.ends_with(" lua") {
            continue;
        }
        let command = rest.split('"').nth(1).unwrap_or("").to_ascii_lowercase();
        if OWN_COMMANDS.contains(&command.as_str()) {
            continue;
        }
        commands += 1;
        if lines.len() < 12 {
            lines.push(line.chars().take(160).collect());
        }
    }
    if commands == 0 {
        return Err(format!(
            "MONITOR showed no command for {COST_DECISIONS} decisions: the target does not use this store"
        ));
    }
    let client = redis::Client::open(url).map_err(|e| format!("the store URL does not open: {e}"))?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("connecting to the store: {e}"))?;
    let pattern: String = a
        .org
        .id
        .chars()
        .map(|c| {
            if "*?[]\\".contains(c) {
                format!("\\{c}")
            } else {
                c.to_string()
            }
        })
        .collect();
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("*{pattern}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("SCAN: {e}"))?;
        for key in batch {
            let ttl: i64 = redis::cmd("PTTL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .map_err(|e| format!("PTTL: {e}"))?;
            keys.push((key, ttl));
        }
        if next == 0 || keys.len() > 1000 {
            break;
        }
        cursor = next;
    }
    Ok(StoreCost {
        commands,
        lines,
        keys,
    })
}

/// RL-012: [`COST_DECISIONS`] decisions of a fresh org cost at most one store
/// round trip each (the commands clients send, seen with MONITOR), leave at most
/// [`KEYS_PER_ORG`] keys naming the org, and every such key has a TTL.
async fn cost(
    suite: &mut Suite,
    policy: &LimitPolicy,
    hooks: Option<&dyn LimitsHooks>,
) -> Result<(), AuditError> {
    if !suite.selected.contains(&"RL-012") {
        return Ok(());
    }
    let Some(url) = hooks.and_then(|h| h.store_url()) else {
        suite.skip(
            "RL-012",
            "not run: the harness has no URL of the target's store (give `store_url` in [rate_limit.hooks]; the reference stack gives it with Redis)"
                .into(),
        );
        return Ok(());
    };
    let a = actor(suite, "cost", "owner")?;
    let measured = match measure_cost(suite, policy, &a, &url).await {
        Ok(m) => m,
        Err(e) => {
            suite.skip("RL-012", format!("not run: {e}"));
            return Ok(());
        }
    };
    suite.ran("RL-012");
    if measured.commands > COST_DECISIONS {
        suite.finding(
            "RL-012",
            policy,
            format!(
                "{COST_DECISIONS} decisions cost {} store commands (at most one round trip each)",
                measured.commands
            ),
            vec![measured.lines.join("\n")],
        );
    }
    if measured.keys.len() > KEYS_PER_ORG {
        suite.finding(
            "RL-012",
            policy,
            format!(
                "one org's requests left {} keys in the store (at most {KEYS_PER_ORG} per policy)",
                measured.keys.len()
            ),
            vec![measured
                .keys
                .iter()
                .take(10)
                .map(|(k, _)| k.clone())
                .collect::<Vec<_>>()
                .join("\n")],
        );
    }
    let forever: Vec<&String> = measured
        .keys
        .iter()
        .filter(|(_, t)| *t == -1)
        .map(|(k, _)| k)
        .collect();
    if !forever.is_empty() {
        suite.finding(
            "RL-012",
            policy,
            format!(
                "{} of the org's store keys have no TTL (they never expire)",
                forever.len()
            ),
            vec![forever
                .iter()
                .take(5)
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join("\n")],
        );
    }
    Ok(())
}

/// RL-005: an org put on the bypass list (by the caller's hook, as an
/// operator edits it) is admitted without limit within the stated time, with
/// no restart; once it is, a burst well over the limit sees no 429.
async fn bypass(
    suite: &mut Suite,
    policy: &LimitPolicy,
    hooks: Option<&dyn LimitsHooks>,
) -> Result<(), AuditError> {
    if !suite.selected.contains(&"RL-005") {
        return Ok(());
    }
    let Some(hooks) = hooks else {
        suite.skip(
            "RL-005",
            "not run: the harness cannot edit the target's bypass list (declare `add_bypass_org` in [rate_limit.hooks]; the reference stack provides it)"
                .into(),
        );
        return Ok(());
    };
    let a = actor(suite, "bypass", "owner")?;
    if let Err(e) = hooks.add_bypass_org(&a.org.id).await {
        suite.skip("RL-005", format!("not run: could not add a bypass org: {e}"));
        return Ok(());
    }
    suite.ran("RL-005");
    let within = hooks.bypass_reload_within();
    let start = Instant::now();
    let n = policy.algorithm.bound(policy.limit) as usize + policy.limit as usize + 1;
    let mut last = Vec::new();
    loop {
        let (sent, _) = burst(suite, policy, std::slice::from_ref(&a), n, false, &plain).await?;
        screen(suite, "RL-005", policy, &a, &sent)?;
        if admitted(&sent) == sent.len() {
            break;
        }
        last = sent;
        if start.elapsed() > within {
            suite.finding(
                "RL-005",
                policy,
                format!(
                    "org {} was put on the bypass list {} ms ago (the change must apply within {} ms) and a burst of {n} still got {} refusal(s) with 429",
                    a.org.key,
                    start.elapsed().as_millis(),
                    within.as_millis(),
                    last.iter().filter(|s| s.limited()).count()
                ),
                last.iter()
                    .filter(|s| s.limited())
                    .take(2)
                    .map(|s| s.reply.transcript.clone())
                    .collect(),
            );
            return Ok(());
        }
        sleep(Duration::from_millis(250)).await;
    }
    let _ = last;
    // In effect: a bypass org never gets 429.
    let (sent, _) = burst(suite, policy, std::slice::from_ref(&a), 2 * n, false, &plain).await?;
    screen(suite, "RL-005", policy, &a, &sent)?;
    if let Some(s) = sent.iter().find(|s| s.limited()) {
        suite.finding(
            "RL-005",
            policy,
            format!(
                "org {} is on the bypass list (a burst was admitted in full) and a later burst of {} got 429",
                a.org.key,
                2 * n
            ),
            vec![s.reply.transcript.clone()],
        );
    }
    Ok(())
}

/// Whether `reply` says it was answered without a limiter decision.
fn degraded(reply: &Reply) -> bool {
    reply
        .headers
        .iter()
        .any(|(name, _)| name.to_ascii_lowercase().contains("degraded"))
}

/// RL-011: with the store stopped, answers come within
/// [`STORE_DOWN_BOUND`], are never a 5xx other than 503, and an admitted one
/// says it is degraded; after the store returns, decisions are made again
/// within [`RECOVERY_WITHIN`].
async fn store_down(
    suite: &mut Suite,
    policy: &LimitPolicy,
    hooks: Option<&dyn LimitsHooks>,
) -> Result<(), AuditError> {
    if !suite.selected.contains(&"RL-011") {
        return Ok(());
    }
    let Some(hooks) = hooks else {
        suite.skip(
            "RL-011",
            "not run: the harness cannot stop the target's store (declare `stop_store` and `start_store` in [rate_limit.hooks]; the reference stack provides them with Redis)"
                .into(),
        );
        return Ok(());
    };
    let a = actor(suite, "down", "owner")?;
    let request = suite.request(policy, &a, 0)?;
    let before = suite.one(request).await;
    screen(
        suite,
        "RL-011",
        policy,
        &a,
        &[Sent {
            at: Duration::ZERO,
            reply: before.clone(),
        }],
    )?;
    if let Err(e) = hooks.stop_store().await {
        suite.skip("RL-011", format!("not run: could not stop the store: {e}"));
        return Ok(());
    }
    suite.ran("RL-011");
    // While down: a few sequential requests (each timed), then a burst.
    let mut timed = Vec::new();
    let mut outage = Ok(());
    for _ in 0..3 {
        match suite.request(policy, &a, 0) {
            Ok(request) => {
                let started = Instant::now();
                let reply = suite.one(request).await;
                timed.push((started.elapsed(), reply));
            }
            Err(e) => {
                outage = Err(e);
                break;
            }
        }
    }
    let n = policy.limit as usize + 1;
    if outage.is_ok() {
        match burst(suite, policy, std::slice::from_ref(&a), n, false, &plain).await {
            Ok((sent, elapsed)) => timed.extend(sent.into_iter().map(|s| (elapsed, s.reply))),
            Err(e) => outage = Err(e),
        }
    }
    let started = hooks.start_store().await;
    outage?;
    if let Err(e) = started {
        return Err(AuditError::Setup {
            resource: "rate_limit store".into(),
            org: a.org.key.clone(),
            detail: format!("the store did not start again: {e}"),
        });
    }
    if let Some((took, r)) = timed.iter().find(|(took, _)| *took > STORE_DOWN_BOUND) {
        suite.finding(
            "RL-011",
            policy,
            format!(
                "with the store down a request took {} ms (at most {} ms: the limiter must give up on the store quickly)",
                took.as_millis(),
                STORE_DOWN_BOUND.as_millis()
            ),
            vec![r.transcript.clone()],
        );
    }
    let errors: Vec<&Reply> = timed
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r.status >= 500 && r.status != 503 || r.status == 0)
        .collect();
    if let Some(r) = errors.first() {
        suite.finding(
            "RL-011",
            policy,
            format!(
                "with the store down {} of {} requests answered {} (expected the policy's fail mode: admitted and marked degraded, or 503/429)",
                errors.len(),
                timed.len(),
                r.status
            ),
            vec![r.transcript.clone()],
        );
    }
    let silent: Vec<&Reply> = timed
        .iter()
        .map(|(_, r)| r)
        .filter(|r| (200..400).contains(&r.status) && !degraded(r))
        .collect();
    if let Some(r) = silent.first() {
        suite.finding(
            "RL-011",
            policy,
            format!(
                "with the store down {} of {} requests were admitted with nothing saying so (no `*-Degraded` header): the limiter fails open silently",
                silent.len(),
                timed.len()
            ),
            vec![r.transcript.clone()],
        );
    }
    // Recovery: decisions again (no degraded mark) once the store is back.
    let back = Instant::now();
    loop {
        let request = suite.request(policy, &a, 0)?;
        let reply = suite.one(request).await;
        if reply.status < 500 && reply.status != 0 && !degraded(&reply) {
            break;
        }
        if back.elapsed() > RECOVERY_WITHIN {
            suite.finding(
                "RL-011",
                policy,
                format!(
                    "{} ms after the store came back, answers are still degraded or failing ({})",
                    back.elapsed().as_millis(),
                    reply.status
                ),
                vec![reply.transcript],
            );
            break;
        }
        sleep(Duration::from_millis(100)).await;
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

/// A burst of one org judged against the policy's bound.
struct Overrun {
    sent: Vec<Sent>,
    elapsed: Duration,
    /// Admitted.
    got: u64,
    /// The most the policy admits in `elapsed`.
    bound: u64,
}

/// `n` requests of `a` at once (each passed through `decorate`), screened
/// for `check`, with what was admitted and what may be.
async fn overrun(
    suite: &mut Suite,
    check: &str,
    policy: &LimitPolicy,
    a: &Actor,
    n: usize,
    decorate: &dyn Fn(usize, crate::client::Request) -> crate::client::Request,
) -> Result<Overrun, AuditError> {
    let (sent, elapsed) = burst(suite, policy, std::slice::from_ref(a), n, false, decorate).await?;
    screen(suite, check, policy, a, &sent)?;
    Ok(Overrun {
        got: admitted(&sent) as u64,
        bound: allowed(policy, elapsed),
        sent,
        elapsed,
    })
}

/// The orgs RL-001 bursts with, one per round: a race that one burst
/// misses (the requests happened to reach the store one after another)
/// gets further tries, each on an org with its budget whole.
const EXACT_ROUNDS: [&str; 3] = ["exact", "exact_2", "exact_3"];

/// RL-001: 3 × limit concurrent requests of one org, in up to
/// [`EXACT_ROUNDS`] rounds until one admits more than the bound.
async fn exact(suite: &mut Suite, policy: &LimitPolicy) -> Result<(), AuditError> {
    if !suite.ran("RL-001") {
        return Ok(());
    }
    let n = (3 * policy.limit as usize).max(6);
    for (round, org) in EXACT_ROUNDS.iter().enumerate() {
        let a = actor(suite, org, "owner")?;
        let Overrun {
            sent,
            elapsed,
            got,
            bound,
        } = overrun(suite, "RL-001", policy, &a, n, &plain).await?;
        if got > bound {
            suite.finding(
                "RL-001",
                policy,
                format!(
                    "{n} concurrent requests of one org within {} ms: {got} admitted, {} refused with 429; the {} policy admits at most {bound} (limit {} per {} s); burst {} of up to {}",
                    elapsed.as_millis(),
                    sent.iter().filter(|s| s.limited()).count(),
                    algorithm_name(policy.algorithm),
                    policy.limit,
                    policy.window.as_secs(),
                    round + 1,
                    EXACT_ROUNDS.len(),
                ),
                over(&sent),
            );
            break;
        }
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
    let Overrun { sent, got, bound, .. } = overrun(suite, "RL-004", policy, &a, n, &spoof).await?;
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
