//! Scenario files run against the reference stack: written by hand (the
//! format auditors use) and read from `scenarios/`. On the clean stack every
//! scenario passes; a planted cross-org read, a removed member and a forged
//! org parameter are refused, and the oracle's verdicts are visible.

mod common;

use std::time::Duration;

use common::identity::SECRET_KEY;
use common::token_checks::PARTY;
use common::TestStack;
use tenantry_harness::audit;
use tenantry_harness::client::Client;
use tenantry_harness::profile::Profile;
use tenantry_harness::scenario::{self, Outcome, Scenario};

async fn run(stack: &TestStack, scenario: &Scenario) -> Outcome {
    let profile = Profile::reference(&stack.base, SECRET_KEY, PARTY);
    let client = Client::new(&profile.base_url, 4, Duration::from_secs(20));
    let mut sessions = audit::sessions_for(&profile, &client).await.unwrap();
    scenario::run(scenario, &mut sessions, &client, 3)
        .await
        .expect("the scenario runs")
}

fn summary(outcome: &Outcome) -> String {
    outcome
        .steps
        .iter()
        .map(|s| format!("{} {}: {:?}", s.label, s.title, s.failures))
        .collect::<Vec<_>>()
        .join("\n")
}

const CROSS_ORG: &str = r#"
id: iso-cross-org-read
title: A project of org a is invisible to a member of org b
severity: critical
cwe: 639
tags: [TEN-ISO-001]
given:
  orgs: { a: {}, b: {} }
  users:
    alice: { a: "org:admin" }
    bob: { b: "org:admin" }
  resources:
    - as: alice@a
      request:
        method: POST
        path: /api/projects
        json: { name: "{{ canary }}", description: "{{ canary }}" }
      capture: { project: $.id, secret: $.name }
      expect: { status: 201, body_contains: ["{{ project }}"] }
steps:
  - name: the owner reads it
    as: alice@a
    request: { method: GET, path: "/api/projects/{{ project }}" }
    expect:
      status: 200
      json: { $.name: { equals: "{{ secret }}" } }
      body_contains: ["{{ secret }}"]
  - name: another org's member reads it by id
    as: bob@b
    request: { method: GET, path: "/api/projects/{{ project }}" }
    expect: { status: 404, body_not_contains: ["{{ secret }}"] }
  - name: another org's member lists its own projects
    as: bob@b
    request: { method: GET, path: /api/projects }
    expect: { status: 200 }
  - name: another org's member forges org a in the query
    as: bob@b
    request:
      method: GET
      path: /api/projects
      query: { org_id: "{{ org.a.id }}" }
    expect: { status: [400, 403] }
  - name: alice joins b
    membership: { user: alice, org: b, role: "org:member" }
  - name: a new member of b sees b's list, not a's project
    as: alice@b
    request: { method: GET, path: /api/projects }
    expect: { status: 200, json: { $.data: { length: 0 } } }
  - membership: { user: alice, org: a, removed: true }
  - name: a removed member has no session for the org
    as: alice@a
    request: { method: GET, path: "/api/projects/{{ project }}" }
    expect: { status: [401, 403, 404] }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_written_scenario_passes_on_the_clean_stack() {
    let stack = TestStack::with_proxy().await;
    let parsed = scenario::parse("cross-org.yaml", CROSS_ORG).unwrap_or_else(|e| panic!("{e}"));
    let outcome = run(&stack, &parsed).await;
    assert!(outcome.passed(), "{}", summary(&outcome));
    assert_eq!(outcome.steps.len(), 9);
    assert_eq!(outcome.steps[5].title, "alice joins b");
    assert_eq!(outcome.steps[7].title, "alice is removed from a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_that_expects_too_much_fails_and_says_why() {
    // The same world, with wrong expectations: each must be reported.
    let stack = TestStack::with_proxy().await;
    let text = CROSS_ORG
        .replace(
            "expect: { status: 404, body_not_contains",
            "expect: { status: 200, body_not_contains",
        )
        .replace("{ length: 0 }", "{ length: 3 }");
    let parsed = scenario::parse("wrong.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    let outcome = run(&stack, &parsed).await;
    let failures: Vec<_> = outcome.failures().collect();
    assert_eq!(failures.len(), 2, "{}", summary(&outcome));
    assert!(
        failures[0].failures[0].contains("status 404, expected 200"),
        "{}",
        summary(&outcome)
    );
    assert!(
        failures[1].failures[0].contains("has 0 entries, expected 3"),
        "{}",
        summary(&outcome)
    );
    assert!(failures[0].transcript.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oracle_sees_another_orgs_canary_in_an_answer() {
    // Bob echoes nothing of a's; the oracle flags a's canary only where it
    // shows up in an answer to b: here, the owner's own read is clean, and a
    // step that names a's project id in its request is not blamed for the echo.
    let stack = TestStack::with_proxy().await;
    let text = r#"
id: oracle-echo
title: echoes of the request are not leaks
severity: high
given:
  orgs: { a: {}, b: {} }
  users: { alice: { a: "org:admin" }, bob: { b: "org:admin" } }
  resources:
    - as: alice@a
      request: { method: POST, path: /api/projects, json: { name: "{{ canary }}" } }
      capture: { project: $.id }
steps:
  - as: bob@b
    request: { method: GET, path: /api/projects, query: { org_id: "{{ org.a.id }}" } }
    expect: { status: [400, 403] }
"#;
    let parsed = scenario::parse("echo.yaml", text).unwrap();
    let outcome = run(&stack, &parsed).await;
    assert!(outcome.passed(), "{}", summary(&outcome));
}

#[cfg(feature = "inject")]
mod with_flaws {
    use tenantry_reference::inject::Flaw;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_trusted_org_parameter_fails_the_scenario_with_the_leak() {
        let stack = TestStack::with_proxy_and_flaws(&[Flaw::TrustOrgParam]).await;
        let parsed = scenario::parse("cross-org.yaml", CROSS_ORG).unwrap();
        let outcome = run(&stack, &parsed).await;
        let failed: Vec<_> = outcome.failures().collect();
        assert!(!failed.is_empty(), "{}", summary(&outcome));
        assert!(
            failed
                .iter()
                .any(|s| s.title.contains("forges org a")
                    && s.failures.iter().any(|f| f.contains("another org"))),
            "{}",
            summary(&outcome)
        );
    }
}
