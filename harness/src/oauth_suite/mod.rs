//! The OAU suite: the org-scoped OAuth connect flow of any target with an
//! `[oauth]` profile section, attacked over real HTTP with real sessions.
//!
//! A world of two orgs is provisioned (org `a`: alice and dave, admins; org
//! `b`: bob, admin, and alice, admin — she belongs to both). Each check
//! starts real flows, consents at the (mock) provider and brings the
//! callback back altered: without its state, with a forged one, twice, as
//! someone else, in another org, at another provider. The safe outcome is
//! always the same — the callback is refused and nothing is attached — and
//! the last check (OAU-016) is the oracle behind all of them: every org's
//! connection list may hold only connections that org's own flows
//! completed.

mod flow;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::audit::{AuditError, Finding, Report};
use crate::checks::{self, Selection};
use crate::client::{Client, Reply};
use crate::oracle::CanarySource;
use crate::profile::{OAuthSpec, Profile, MAX_STATE_TTL};
use crate::session::Sessions;
use crate::world::{World, WorldSpec};

use self::flow::{accepted, off_site, query_param, set_param, Agent, Driver, Started, StepFailed};

/// A declared TTL this short is meant for testing: OAU-008 waits it out.
pub const SHORT_TTL: Duration = Duration::from_secs(5);

/// Concurrent callbacks OAU-007 sends with one state.
const RACERS: usize = 16;

/// Whether `selection` includes an OAU check.
pub fn selects_any(selection: &Selection) -> bool {
    selection.includes_family("OAU")
}

fn world_spec(tag: &str) -> WorldSpec {
    WorldSpec::tagged(
        "OAuth",
        "oau",
        tag,
        &["a", "b"],
        &[
            ("alice", &[("a", "org:admin"), ("b", "org:admin")]),
            ("bob", &[("b", "org:admin")]),
            ("dave", &[("a", "org:admin")]),
        ],
    )
}

async fn agent(
    sessions: &mut Sessions,
    client: &Client,
    world: &World,
    user: &str,
    org: &str,
) -> Result<Agent, AuditError> {
    let token = sessions.token(world, user, Some(org)).await?;
    client.register_secret(&token);
    let org = world
        .org(org)
        .cloned()
        .ok_or_else(|| crate::session::SessionError::new("token", format!("no org `{org}`")))?;
    Ok(Agent {
        label: format!("{user}@{}", org.key),
        org,
        token,
    })
}

/// The people of the world, with tokens.
struct Cast {
    /// alice with org a active: the victim whose flows are attacked.
    alice: Agent,
    /// dave: alice's colleague in org a.
    dave: Agent,
    /// bob: admin of org b.
    bob: Agent,
    /// alice again, with org b active.
    alice_in_b: Agent,
    /// alice in her personal account: no org active.
    alice_personal: Agent,
}

struct Suite<'a> {
    driver: Driver<'a>,
    base: String,
    cast: Cast,
    report: Report,
    selection: &'a Selection,
    rng: u64,
    /// Callbacks the target accepted, by the org whose member started the
    /// flow: the most connections each org may hold (OAU-016).
    credit: HashMap<String, usize>,
    /// Connections each org held before the suite.
    before: HashMap<String, usize>,
}

impl Suite<'_> {
    fn selected(&self, id: &str) -> bool {
        checks::find(id).is_some_and(|c| self.selection.includes(c))
    }

    fn ran(&mut self, id: &'static str) {
        if !self.report.checks_run.contains(&id) {
            self.report.checks_run.push(id);
        }
    }

    fn finding(&mut self, id: &str, message: String, evidence: Vec<String>) {
        if let Some(check) = checks::find(id) {
            self.report.findings.push(Finding {
                check,
                message,
                evidence,
                reproduction: None,
            });
        }
    }

    fn next(&mut self) -> u64 {
        // splitmix64: guessed states follow the seed.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn provider(&self, i: usize) -> Option<String> {
        self.driver.spec.providers.get(i).cloned()
    }

    /// Notes an accepted callback of a flow `starter` began.
    fn credit(&mut self, starter: &Agent, reply: &Reply) {
        if accepted(reply) {
            *self.credit.entry(starter.org.key.clone()).or_default() += 1;
        }
    }

    /// Starts a flow as `who` and consents: the flow and its callback URL.
    async fn started(
        &self,
        who: &Agent,
        provider: &str,
        return_to: Option<&str>,
    ) -> Result<(Started, String), AuditError> {
        let started = self
            .driver
            .start(who, provider, return_to)
            .await?
            .map_err(setup)?;
        let callback = self
            .driver
            .consent(&started.authorize_url, false)
            .await
            .map_err(setup)?;
        Ok((started, callback))
    }

    /// `victim`'s callback brought back by `by` (altered by the caller):
    /// a finding under `id` if it is accepted.
    async fn expect_refused(
        &mut self,
        id: &str,
        by: Option<&Agent>,
        starter: &Agent,
        url: &str,
        what: &str,
    ) -> Reply {
        let reply = self.driver.callback(by, url).await;
        self.credit(starter, &reply);
        if accepted(&reply) {
            let who = by.map_or("anonymous", |a| a.label.as_str());
            self.finding(
                id,
                format!(
                    "{what}: the callback (as {who}) was accepted with {}",
                    reply.status
                ),
                vec![reply.transcript.clone()],
            );
        }
        reply
    }
}

fn setup(failed: StepFailed) -> AuditError {
    AuditError::Setup {
        resource: "oauth connect flow".into(),
        org: "a".into(),
        detail: format!(
            "the {} step did not go as a browser's would: {}",
            failed.step, failed.reply.transcript
        ),
    }
}

/// Runs the OAU checks `selection` includes against `profile`'s `[oauth]`
/// flow (a profile without one: nothing runs, the report is empty). `seed`
/// fixes the world's names and the guessed states.
pub async fn audit(
    profile: &Profile,
    client: &Client,
    sessions: &mut Sessions,
    selection: &Selection,
    seed: u64,
) -> Result<Report, AuditError> {
    let started = Instant::now();
    let sent_before = client.requests_sent();
    let report = Report {
        target: profile.name.clone(),
        seed,
        ..Report::default()
    };
    let Some(spec) = &profile.oauth else {
        return Ok(report);
    };
    if !selects_any(selection) {
        return Ok(report);
    }
    let tag = CanarySource::new(seed).canary()[4..14].to_string();
    let world = sessions.provision(&world_spec(&tag)).await?;
    let cast = Cast {
        alice: agent(sessions, client, &world, "alice", "a").await?,
        dave: agent(sessions, client, &world, "dave", "a").await?,
        bob: agent(sessions, client, &world, "bob", "b").await?,
        alice_in_b: agent(sessions, client, &world, "alice", "b").await?,
        alice_personal: {
            let token = sessions.token(&world, "alice", None).await?;
            client.register_secret(&token);
            let alice = agent(sessions, client, &world, "alice", "a").await?;
            Agent {
                label: "alice (personal account)".into(),
                token,
                ..alice
            }
        },
    };
    let mut suite = Suite {
        driver: Driver {
            spec,
            client,
            placement: sessions.placement(),
        },
        base: client.base().to_string(),
        cast,
        report,
        selection,
        rng: seed,
        credit: HashMap::new(),
        before: HashMap::new(),
    };
    for who in [&suite.cast.alice, &suite.cast.bob] {
        let list = suite.driver.connections(who).await?.map_err(setup)?;
        suite.before.insert(who.org.key.clone(), list.len());
    }
    suite.forged_states().await?;
    suite.reuse().await?;
    suite.race().await?;
    suite.expiry(spec).await?;
    suite.bindings().await?;
    suite.provider_swap().await?;
    suite.pkce().await?;
    suite.open_redirect().await?;
    suite.no_foreign_connections().await?;
    let mut report = suite.report;
    report.requests = client.requests_sent() - sent_before;
    report.elapsed = started.elapsed();
    Ok(report)
}

impl Suite<'_> {
    /// OAU-001..004: a real consented callback with its state removed,
    /// malformed, guessed or tampered with. Then the real state must still
    /// work (it was never consumed), which also shows the flow works here.
    async fn forged_states(&mut self) -> Result<(), AuditError> {
        let ids = ["OAU-001", "OAU-002", "OAU-003", "OAU-004"];
        if !ids.iter().any(|id| self.selected(id)) {
            return Ok(());
        }
        let provider = self.provider(0).unwrap_or_default();
        let alice = self.cast.alice.clone();
        let (flow, callback) = self.started(&alice, &provider, None).await?;
        if self.selected("OAU-001") {
            self.ran("OAU-001");
            let url = set_param(&callback, "state", None);
            self.expect_refused("OAU-001", Some(&alice), &alice, &url, "no state")
                .await;
        }
        if self.selected("OAU-002") {
            self.ran("OAU-002");
            let oversized = format!("{}{}", flow.state, "A".repeat(8192));
            for (what, state) in [
                ("an empty state", String::new()),
                ("a state of spaces", "   ".to_string()),
                ("a state with control characters", format!("{}\r\n\0", flow.state)),
                ("a state with quotes and wildcards", "*' OR '1'='1".to_string()),
                ("an 8 KiB state starting with the real one", oversized),
                ("a state of non-ASCII text", "état-✓".to_string()),
            ] {
                let url = set_param(&callback, "state", Some(&state));
                self.expect_refused("OAU-002", Some(&alice), &alice, &url, what)
                    .await;
            }
        }
        if self.selected("OAU-003") {
            self.ran("OAU-003");
            let mut guesses = vec![
                "0".to_string(),
                "1".to_string(),
                "null".to_string(),
                "state".to_string(),
            ];
            for _ in 0..8 {
                let bytes: Vec<u8> = (0..4).flat_map(|_| self.next().to_le_bytes()).collect();
                guesses.push(base64url(&bytes));
            }
            for guess in guesses {
                let url = set_param(&callback, "state", Some(&guess));
                self.expect_refused("OAU-003", Some(&alice), &alice, &url, "a guessed state")
                    .await;
            }
        }
        if self.selected("OAU-004") {
            self.ran("OAU-004");
            let state = flow.state.clone();
            let mut tampered = Vec::new();
            for i in [0, state.len() / 2, state.len().saturating_sub(1)] {
                for bit in [0x01u8, 0x20] {
                    let mut bytes = state.clone().into_bytes();
                    if let Some(b) = bytes.get_mut(i) {
                        *b ^= bit;
                    }
                    tampered.push(String::from_utf8_lossy(&bytes).into_owned());
                }
            }
            tampered.push(state[..state.len().saturating_sub(1)].to_string());
            tampered.push(format!("{state}A"));
            tampered.push(state.to_ascii_uppercase());
            tampered.retain(|t| *t != state);
            for t in tampered {
                let url = set_param(&callback, "state", Some(&t));
                self.expect_refused("OAU-004", Some(&alice), &alice, &url, "a tampered state")
                    .await;
            }
        }
        // The real state still completes the flow (nothing above spent it).
        let done = self.driver.callback(Some(&alice), &callback).await;
        self.credit(&alice, &done);
        Ok(())
    }

    /// OAU-005 (after success) and OAU-006 (after an error callback).
    async fn reuse(&mut self) -> Result<(), AuditError> {
        let provider = self.provider(0).unwrap_or_default();
        let alice = self.cast.alice.clone();
        if self.selected("OAU-005") {
            self.ran("OAU-005");
            let (flow, callback) = self.started(&alice, &provider, None).await?;
            let first = self.driver.callback(Some(&alice), &callback).await;
            self.credit(&alice, &first);
            if !accepted(&first) {
                return Err(setup(StepFailed {
                    step: "callback",
                    reply: first,
                }));
            }
            self.expect_refused(
                "OAU-005",
                Some(&alice),
                &alice,
                &callback,
                "the same callback again after it succeeded",
            )
            .await;
            // The same state with a fresh code (the provider issues one per
            // consent): only the state can stop it now.
            let again = self
                .driver
                .consent(&flow.authorize_url, false)
                .await
                .map_err(setup)?;
            self.expect_refused(
                "OAU-005",
                Some(&alice),
                &alice,
                &again,
                "a fresh code with a state already spent by a successful callback",
            )
            .await;
        }
        if self.selected("OAU-006") && self.driver.spec.deny.is_some() {
            self.ran("OAU-006");
            let flow = self.driver.start(&alice, &provider, None).await?.map_err(setup)?;
            let denied = self
                .driver
                .consent(&flow.authorize_url, true)
                .await
                .map_err(setup)?;
            let reply = self.driver.callback(Some(&alice), &denied).await;
            self.credit(&alice, &reply);
            let callback = self
                .driver
                .consent(&flow.authorize_url, false)
                .await
                .map_err(setup)?;
            self.expect_refused(
                "OAU-006",
                Some(&alice),
                &alice,
                &callback,
                "a real code with a state already spent by an error callback",
            )
            .await;
        }
        Ok(())
    }

    /// OAU-007: one state, consented to many times (a fresh code each, so
    /// the provider's single-use codes cannot hide a reusable state), all
    /// the callbacks sent at once: exactly one may complete.
    async fn race(&mut self) -> Result<(), AuditError> {
        if !self.selected("OAU-007") {
            return Ok(());
        }
        self.ran("OAU-007");
        let provider = self.provider(0).unwrap_or_default();
        let alice = self.cast.alice.clone();
        let (flow, first) = self.started(&alice, &provider, None).await?;
        let mut callbacks = vec![first];
        for _ in 1..RACERS {
            let callback = self
                .driver
                .consent(&flow.authorize_url, false)
                .await
                .map_err(setup)?;
            callbacks.push(callback);
        }
        let replies = self.driver.callbacks_at_once(&alice, &callbacks).await;
        let winners: Vec<&Reply> = replies.iter().filter(|r| accepted(r)).collect();
        for r in &replies {
            self.credit(&alice, r);
        }
        if winners.is_empty() {
            self.finding(
                "OAU-007",
                format!("none of {RACERS} concurrent callbacks with one state completed the flow; exactly one should"),
                replies.iter().take(2).map(|r| r.transcript.clone()).collect(),
            );
        } else if winners.len() > 1 {
            self.finding(
                "OAU-007",
                format!(
                    "{} of {RACERS} concurrent callbacks with one state completed the flow",
                    winners.len()
                ),
                winners.iter().take(2).map(|r| r.transcript.clone()).collect(),
            );
        }
        Ok(())
    }

    /// OAU-008: a declared TTL over ten minutes is a finding; a short one
    /// (for testing) is waited out: a state past TTL + margin must be
    /// refused, one at TTL - margin accepted.
    async fn expiry(&mut self, spec: &OAuthSpec) -> Result<(), AuditError> {
        if !self.selected("OAU-008") {
            return Ok(());
        }
        let ttl = spec.state_ttl;
        if ttl > MAX_STATE_TTL {
            self.ran("OAU-008");
            self.finding(
                "OAU-008",
                format!(
                    "the declared state TTL is {}s; a connect flow should expire within {}s",
                    ttl.as_secs(),
                    MAX_STATE_TTL.as_secs()
                ),
                Vec::new(),
            );
            return Ok(());
        }
        if ttl > SHORT_TTL {
            return Ok(());
        }
        self.ran("OAU-008");
        let margin = ttl / 2;
        let provider = self.provider(0).unwrap_or_default();
        let alice = self.cast.alice.clone();
        let fresh_at = Instant::now();
        let (_, fresh) = self.started(&alice, &provider, None).await?;
        let (_, late) = self.started(&alice, &provider, None).await?;
        // Taken once the state exists: the late callback is surely past TTL + margin.
        let late_at = Instant::now();
        tokio::time::sleep((fresh_at + (ttl - margin)).saturating_duration_since(Instant::now())).await;
        let in_time = self.driver.callback(Some(&alice), &fresh).await;
        self.credit(&alice, &in_time);
        // Taken before the flow started: a refusal this early is surely within the TTL.
        if !accepted(&in_time) && fresh_at.elapsed() < ttl {
            self.finding(
                "OAU-008",
                format!(
                    "a state was refused {}ms after its flow started, within the declared TTL of {}ms",
                    fresh_at.elapsed().as_millis(),
                    ttl.as_millis()
                ),
                vec![in_time.transcript.clone()],
            );
        }
        tokio::time::sleep((late_at + ttl + margin).saturating_duration_since(Instant::now())).await;
        let what = format!(
            "a state {}ms old (declared TTL {}ms)",
            late_at.elapsed().as_millis(),
            ttl.as_millis()
        );
        self.expect_refused("OAU-008", Some(&alice), &alice, &late, &what)
            .await;
        Ok(())
    }

    /// OAU-009 (a colleague), OAU-010 (another org: its admin, or the
    /// starter herself with that org active), OAU-011 (an attacker's
    /// consented callback forced on a victim, or no session at all),
    /// OAU-012 (the starter's session left the org mid-flow).
    async fn bindings(&mut self) -> Result<(), AuditError> {
        let provider = self.provider(0).unwrap_or_default();
        let alice = self.cast.alice.clone();
        let dave = self.cast.dave.clone();
        let bob = self.cast.bob.clone();
        let alice_in_b = self.cast.alice_in_b.clone();
        let alice_personal = self.cast.alice_personal.clone();
        let cases: [(&'static str, &Agent, Option<&Agent>, &str); 6] = [
            (
                "OAU-009",
                &alice,
                Some(&dave),
                "alice@a's state redeemed by her colleague dave@a",
            ),
            (
                "OAU-010",
                &alice,
                Some(&bob),
                "alice@a's state redeemed by bob@b, admin of another org",
            ),
            (
                "OAU-010",
                &alice,
                Some(&alice_in_b),
                "alice's flow started in org a, completed after she switched to org b",
            ),
            (
                "OAU-011",
                &bob,
                Some(&alice),
                "bob@b's consented callback forced on alice@a (login CSRF)",
            ),
            (
                "OAU-011",
                &alice,
                None,
                "alice@a's callback brought back without any session",
            ),
            (
                "OAU-012",
                &alice,
                Some(&alice_personal),
                "alice's flow started in org a, completed after her session left the org",
            ),
        ];
        for (id, starter, by, what) in cases {
            if !self.selected(id) {
                continue;
            }
            self.ran(id);
            let (_, callback) = self.started(starter, &provider, None).await?;
            let what = format!("{what}; a connection may now sit in the redeemer's org");
            self.expect_refused(id, by, starter, &callback, &what).await;
        }
        Ok(())
    }

    /// OAU-013: a state issued for one provider, completed at another (with
    /// the first flow's PKCE challenge, so only the provider binding can
    /// stop it).
    async fn provider_swap(&mut self) -> Result<(), AuditError> {
        let (Some(first), Some(second)) = (self.provider(0), self.provider(1)) else {
            return Ok(());
        };
        if !self.selected("OAU-013") {
            return Ok(());
        }
        self.ran("OAU-013");
        let alice = self.cast.alice.clone();
        let one = self.driver.start(&alice, &first, None).await?.map_err(setup)?;
        let two = self.driver.start(&alice, &second, None).await?.map_err(setup)?;
        let mut url = set_param(&two.authorize_url, "state", Some(&one.state));
        if let Some(challenge) = query_param(&one.authorize_url, "code_challenge") {
            url = set_param(&url, "code_challenge", Some(&challenge));
        }
        let callback = self.driver.consent(&url, false).await.map_err(setup)?;
        let what = format!("a `{first}` state completed a `{second}` flow");
        self.expect_refused("OAU-013", Some(&alice), &alice, &callback, &what)
            .await;
        Ok(())
    }

    /// OAU-014: a code issued without the flow's PKCE challenge (removed,
    /// or replaced by an attacker's) injected into the victim's callback.
    async fn pkce(&mut self) -> Result<(), AuditError> {
        if !self.selected("OAU-014") {
            return Ok(());
        }
        self.ran("OAU-014");
        let provider = self.provider(0).unwrap_or_default();
        let alice = self.cast.alice.clone();
        // The challenge of the RFC 7636 example verifier: the attacker's.
        let attacker = "E9Melhoa2OwvFWvtpvKRSsJsNT6p8fQ-_bY4hdOvTLw";
        for (what, challenge) in [
            ("a code obtained without the flow's PKCE challenge", None),
            (
                "a code obtained with an attacker's PKCE challenge",
                Some(attacker),
            ),
        ] {
            let flow = self.driver.start(&alice, &provider, None).await?.map_err(setup)?;
            let mut url = set_param(&flow.authorize_url, "code_challenge", challenge);
            if challenge.is_none() {
                url = set_param(&url, "code_challenge_method", None);
            } else if query_param(&url, "code_challenge_method").is_none() {
                url = set_param(&url, "code_challenge_method", Some("S256"));
            }
            let callback = self.driver.consent(&url, false).await.map_err(setup)?;
            self.expect_refused("OAU-014", Some(&alice), &alice, &callback, what)
                .await;
        }
        Ok(())
    }

    /// OAU-015: a tampered `redirect_uri` in the authorize URL (the
    /// provider must not send a code there: the client registration must
    /// pin it), and off-site return paths at the start (refused there, or
    /// at least never where the callback sends the browser).
    async fn open_redirect(&mut self) -> Result<(), AuditError> {
        if !self.selected("OAU-015") {
            return Ok(());
        }
        self.ran("OAU-015");
        let provider = self.provider(0).unwrap_or_default();
        let alice = self.cast.alice.clone();
        let flow = self.driver.start(&alice, &provider, None).await?.map_err(setup)?;
        if let Some(registered) = query_param(&flow.authorize_url, "redirect_uri") {
            for tampered in [
                "https://evil.example/callback".to_string(),
                format!("{registered}/../../evil"),
                format!("{registered}?next=https://evil.example"),
            ] {
                let url = set_param(&flow.authorize_url, "redirect_uri", Some(&tampered));
                if let Ok(location) = self.driver.consent(&url, false).await {
                    if !location.starts_with(&registered) || location.contains("evil") {
                        self.finding(
                            "OAU-015",
                            format!(
                                "the provider sent the browser (with the flow's code) to a tampered redirect_uri: {location:?}"
                            ),
                            Vec::new(),
                        );
                    }
                }
            }
        }
        if self.driver.spec.return_to.is_none() {
            return Ok(());
        }
        for target in [
            "https://evil.example/settings/integrations",
            "//evil.example/settings/integrations",
            "/\\evil.example",
        ] {
            let flow = match self.driver.start(&alice, &provider, Some(target)).await? {
                Ok(flow) => flow,
                Err(_) => continue, // refused at the start: safe
            };
            let callback = self
                .driver
                .consent(&flow.authorize_url, false)
                .await
                .map_err(setup)?;
            let reply = self.driver.callback(Some(&alice), &callback).await;
            self.credit(&alice, &reply);
            match reply.header("location") {
                Some(location) if off_site(location, &self.base) => {
                    let message = format!(
                        "return path {target:?} was accepted and the callback redirects to {location:?}"
                    );
                    self.finding(
                        "OAU-015",
                        message,
                        vec![flow.transcript.clone(), reply.transcript.clone()],
                    );
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// OAU-016: after everything, each org holds at most the connections
    /// its own members' flows completed.
    async fn no_foreign_connections(&mut self) -> Result<(), AuditError> {
        if !self.selected("OAU-016") {
            return Ok(());
        }
        self.ran("OAU-016");
        for who in [self.cast.alice.clone(), self.cast.bob.clone()] {
            let list = self.driver.connections(&who).await?.map_err(setup)?;
            let key = who.org.key.clone();
            let allowed =
                self.before.get(&key).copied().unwrap_or(0) + self.credit.get(&key).copied().unwrap_or(0);
            if list.len() > allowed {
                self.finding(
                    "OAU-016",
                    format!(
                        "org {key} holds {} connection(s); flows its members started completed only {allowed}: \
                         a connection was attached to an org that did not start it",
                        list.len()
                    ),
                    vec![serde_json::Value::Array(list).to_string()],
                );
            }
        }
        Ok(())
    }
}

/// Base64url without padding.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}
