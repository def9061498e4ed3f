//! Reports without a target: a fixed audit (and a fixed scenario run) is
//! turned into every format; each is snapshotted, the JUnit XML is parsed
//! back, the SARIF log is validated against the official SARIF 2.1.0 schema,
//! the HTML page is opened in headless Chromium (when installed), and no
//! format carries a credential. Waivers, baseline and the gate are exercised
//! on the same report.

use std::path::Path;
use std::time::Duration;

use tenantry_harness::audit::{Finding, Report};
use tenantry_harness::checks::{self, Severity};
use tenantry_harness::report::baseline::Baseline;
use tenantry_harness::report::waivers::{Date, Waivers};
use tenantry_harness::report::{gate, summary, Format, Meta, RunReport, Status};
use tenantry_harness::scenario::{self, Outcome, StepOutcome};

/// The day the fixed report is judged on.
const TODAY: Date = Date {
    year: 2026,
    month: 11,
    day: 29,
};

const WAIVERS: &str = r#"
[[waiver]]
checks = "RL-004"
reason = "limiter moves to Redis in Q1; tracked in SEC-123"
expires = 2027-03-31
"#;

fn snapshot(name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.add_filter(r#""version": "[0-9][^"]*""#, r#""version": "[version]""#);
    settings.add_filter(
        r#""semanticVersion": "[0-9][^"]*""#,
        r#""semanticVersion": "[version]""#,
    );
    settings.add_filter(r"tenantry [0-9]+\.[0-9]+\.[0-9]+[^\s<]*", "tenantry [version]");
    settings.bind(|| insta::assert_snapshot!(name, text));
}

/// A transcript in the client's format (`METHOD URL`, headers, body,
/// `--> STATUS`, headers, body excerpt) at `port`, with `id` in the path.
fn transcript(
    method: &str,
    port: u16,
    path: &str,
    request_body: Option<&str>,
    status: u16,
    body: &str,
) -> String {
    let mut t = format!("{method} http://127.0.0.1:{port}{path}\nauthorization: [redacted]\n");
    if let Some(b) = request_body {
        t.push_str(&format!("\n{b}\n"));
    }
    t.push_str(&format!("--> {status}\ncontent-type: application/json\n\n{body}"));
    t
}

fn finding(id: &str, message: &str, evidence: Vec<String>, reproduction: Option<&str>) -> Finding {
    Finding {
        check: checks::find(id).unwrap(),
        message: message.into(),
        evidence,
        reproduction: reproduction.map(String::from),
    }
}

/// A fixed audit; `port` and `salt` stand for what changes between runs
/// (the reference stack's port, the ids and canaries the seed chooses).
fn audit_report(port: u16, salt: &str) -> Report {
    let project = format!("prj_{salt}0123456789ab");
    let canary = format!("tnry{salt}q4m9x2k7p3v8w5z6r1t0");
    Report {
        target: "fixture stack".into(),
        seed: 42,
        checks_run: vec![
            "ISO-001", "ISO-004", "ORG-008", "TOK-001", "RL-004", "RL-006", "RLS-002",
        ],
        findings: vec![
            finding(
                "ISO-001",
                &format!("bob@b read a project of org a by its id ({project}): 200 with org a's canaries"),
                vec![transcript(
                    "GET",
                    port,
                    &format!("/api/projects/{project}"),
                    None,
                    200,
                    &format!(r#"{{"id":"{project}","name":"{canary}","note":"<script>alert(1)</script>"}}"#),
                )],
                None,
            ),
            finding(
                "ISO-004",
                "campaign: the list of org b showed a project of org a (shrunk to 2 actions)",
                vec![transcript(
                    "GET",
                    port,
                    "/api/projects?limit=50",
                    None,
                    200,
                    r#"{"items":[]}"#,
                )],
                Some("tenantry-repro/campaign-iso-004.yaml"),
            ),
            finding(
                "ORG-008",
                "the slug of org a in the body was accepted for a token of org b",
                vec![transcript(
                    "POST",
                    port,
                    "/api/projects",
                    Some(r#"{"name":"x","org":"acme-7f3k2m9x"}"#),
                    201,
                    r#"{"id":"prj_1"}"#,
                )],
                None,
            ),
            finding(
                "RL-004",
                "two users of one org behind different IPs got twice the budget",
                vec![transcript("GET", port, "/api/projects", None, 200, "[]")],
                None,
            ),
            finding(
                "RL-006",
                "429 without Retry-After",
                vec![transcript("GET", port, "/api/search?q=x", None, 429, "{}")],
                None,
            ),
            finding(
                "RLS-002",
                "catalog: app.projects enables but does not FORCE row level security",
                Vec::new(),
                None,
            ),
        ],
        requests: 1234,
        polls: 0,
        elapsed: Duration::from_millis(5678),
    }
}

fn run_report() -> RunReport {
    let mut report = RunReport::from_audit(&audit_report(41234, "a1"), "http://127.0.0.1:41234");
    Waivers::parse("tenantry.waivers.toml", WAIVERS)
        .unwrap()
        .apply(&mut report, TODAY);
    report
}

const SCENARIO: &str = r#"
id: iso-001-cross-org-read-by-id
title: A member of org b cannot read a project of org a by its id
severity: critical
cwe: 639
tags: [TEN-ISO-001]
given:
  orgs: { a: {}, b: {} }
  users:
    alice: { a: "org:admin" }
    bob: { b: "org:admin" }
steps:
  - as: bob@b
    request: { method: GET, path: /api/projects }
"#;

fn scenario_report() -> RunReport {
    let failing = scenario::parse("scenarios/iso/iso-001.yaml", SCENARIO).unwrap();
    let mut passing = failing.clone();
    passing.id = "org-002-forged-org-query-parameter".into();
    passing.title = "A forged ?org_id= is refused".into();
    passing.tags = vec!["TEN-ORG-002".into()];
    let outcomes = vec![
        Outcome {
            id: failing.id.clone(),
            steps: vec![
                StepOutcome {
                    label: "given 1".into(),
                    title: "alice creates a project in org a".into(),
                    failures: Vec::new(),
                    transcript: Some(transcript("POST", 9000, "/api/projects", Some("{}"), 201, "{}")),
                },
                StepOutcome {
                    label: "step 1".into(),
                    title: "GET /api/projects/{{ project }} as bob@b".into(),
                    failures: vec!["status 200, expected one of 403, 404".into()],
                    transcript: Some(transcript(
                        "GET",
                        9000,
                        "/api/projects/prj_77aa88bb99cc",
                        None,
                        200,
                        "{}",
                    )),
                },
            ],
        },
        Outcome {
            id: passing.id.clone(),
            steps: Vec::new(),
        },
    ];
    let meta = Meta {
        target: "fixture stack".into(),
        base_url: "http://127.0.0.1:9000".into(),
        seed: 7,
        elapsed: Duration::from_millis(2500),
        requests: 12,
    };
    let mut report = RunReport::from_scenarios(&meta, &[failing, passing], &outcomes);
    report.set_reproductions(&[
        "scenarios/iso/iso-001.yaml".into(),
        "scenarios/org/org-002.yaml".into(),
    ]);
    report
}

#[test]
fn every_format_is_stable() {
    let report = run_report();
    for format in [
        Format::Json,
        Format::Junit,
        Format::Sarif,
        Format::Html,
        Format::Markdown,
    ] {
        let name = format!("report_{}", format.file_name().replace(['.', '-'], "_"));
        snapshot(&name, &format.render(&report));
    }
    let verdict = gate::decide(&report, Severity::High, &[]);
    let mut terminal = summary::render(&report, "requests", "seed 42");
    for line in verdict.lines() {
        terminal.push_str(&line);
        terminal.push('\n');
    }
    snapshot("report_terminal_summary", &terminal);
    let scenarios = scenario_report();
    snapshot(
        "report_scenarios_summary",
        &summary::render(&scenarios, "requests", "seed 7"),
    );
    snapshot("report_scenarios_markdown", &Format::Markdown.render(&scenarios));
}

#[test]
fn the_model_holds_what_reports_need() {
    let report = run_report();
    assert_eq!(report.schema, "tenantry.report/1");
    assert_eq!(report.cases.len(), 7);
    let case = |id: &str| report.cases.iter().find(|c| c.id == id).unwrap();
    assert_eq!(case("TOK-001").status, Status::Passed);
    assert_eq!(case("ISO-001").status, Status::Failed);
    assert_eq!(case("RL-004").status, Status::Waived);
    assert_eq!(
        case("RL-004").waiver.as_ref().unwrap().expires.as_deref(),
        Some("2027-03-31")
    );
    let iso = &case("ISO-001").findings[0];
    assert_eq!(
        iso.endpoint.as_deref(),
        Some("GET /api/projects/prj_a10123456789ab")
    );
    let curl = iso.curl.as_deref().unwrap();
    assert!(
        curl.contains(r#"'authorization: Bearer '"$TENANTRY_TOKEN""#),
        "{curl}"
    );
    assert!(
        curl.contains("'http://127.0.0.1:41234/api/projects/prj_a10123456789ab'"),
        "{curl}"
    );
    assert!(
        iso.remediation.contains("row-level security"),
        "{}",
        iso.remediation
    );
    assert_eq!(
        case("ISO-004").findings[0].reproduction.as_deref(),
        Some("tenantry-repro/campaign-iso-004.yaml")
    );
    let post = case("ORG-008").findings[0].curl.as_deref().unwrap();
    assert!(post.contains("-X POST") && post.contains("--data-raw"), "{post}");
    assert!(case("RLS-002").findings[0].endpoint.is_none());

    let scenarios = scenario_report();
    assert_eq!(scenarios.cases.len(), 2);
    assert_eq!(scenarios.cases[0].family, "ISO");
    assert_eq!(scenarios.cases[0].status, Status::Failed);
    assert_eq!(
        scenarios.cases[0].findings.len(),
        1,
        "only the failed step is a finding"
    );
    assert_eq!(
        scenarios.cases[0].findings[0].reproduction.as_deref(),
        Some("scenarios/iso/iso-001.yaml")
    );
    assert_eq!(scenarios.cases[1].status, Status::Passed);
}

#[test]
fn fingerprints_survive_other_seeds_and_ports() {
    let a = RunReport::from_audit(&audit_report(41234, "a1"), "http://127.0.0.1:41234");
    let b = RunReport::from_audit(&audit_report(50001, "z9"), "http://127.0.0.1:50001");
    let prints = |r: &RunReport| {
        r.findings()
            .map(|(_, f)| f.fingerprint.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(prints(&a), prints(&b));
    let mut unique = prints(&a);
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        prints(&a).len(),
        "distinct findings, distinct fingerprints"
    );
}

#[test]
fn junit_parses_back_with_one_testcase_per_check() {
    let report = run_report();
    let xml = Format::Junit.render(&report);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(root.attribute("tests"), Some("7"));
    assert_eq!(root.attribute("failures"), Some("5"));
    let suites: Vec<_> = root.children().filter(|n| n.has_tag_name("testsuite")).collect();
    let names: Vec<_> = suites.iter().filter_map(|s| s.attribute("name")).collect();
    assert_eq!(
        names,
        [
            "tenantry.ISO",
            "tenantry.ORG",
            "tenantry.TOK",
            "tenantry.RL",
            "tenantry.RLS"
        ]
    );
    let cases: Vec<_> = root
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), report.cases.len());
    let failures: Vec<_> = root.descendants().filter(|n| n.has_tag_name("failure")).collect();
    assert_eq!(failures.len(), 5);
    let skipped: Vec<_> = root.descendants().filter(|n| n.has_tag_name("skipped")).collect();
    assert_eq!(skipped.len(), 1);
    assert!(
        skipped[0]
            .attribute("message")
            .unwrap()
            .contains("tracked in SEC-123"),
        "the waiver's reason: {:?}",
        skipped[0].attribute("message")
    );
    let rl = suites
        .iter()
        .find(|s| s.attribute("name") == Some("tenantry.RL"))
        .unwrap();
    assert_eq!(rl.attribute("tests"), Some("2"));
    assert_eq!(rl.attribute("failures"), Some("1"));
    assert_eq!(rl.attribute("skipped"), Some("1"));
    let iso = cases
        .iter()
        .find(|c| c.attribute("name").is_some_and(|n| n.starts_with("ISO-001")))
        .unwrap();
    let failure = iso.children().find(|n| n.has_tag_name("failure")).unwrap();
    assert_eq!(failure.attribute("type"), Some("critical"));
    let text = failure.text().unwrap_or("");
    assert!(
        text.contains("GET http://127.0.0.1:41234/api/projects/prj_a10123456789ab"),
        "{text}"
    );
    assert!(
        text.contains("--> 200"),
        "the evidence is in the failure text: {text}"
    );
    let passed = cases
        .iter()
        .find(|c| c.attribute("name").is_some_and(|n| n.starts_with("TOK-001")))
        .unwrap();
    assert_eq!(passed.children().filter(|n| n.is_element()).count(), 0);
}

fn sarif_validator() -> jsonschema::Validator {
    // From serde-sarif 0.8.0 (src/schema.json, which its build generates the
    // types from): the OASIS SARIF 2.1.0 schema. See harness/tests/data/README.md.
    let mut schema: serde_json::Value =
        serde_json::from_str(include_str!("data/sarif-schema-2.1.0.json")).unwrap();
    // The `language` pattern of the official schema (run, toolComponent)
    // ends in an unescaped `]`: valid ECMAScript, refused by the Rust regex
    // engine jsonschema checks `format: regex` with. Escaping it changes
    // nothing it matches.
    for def in ["run", "toolComponent"] {
        let language = &mut schema["definitions"][def]["properties"]["language"]["pattern"];
        assert_eq!(language, "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$");
        *language = r"^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}\]?$".into();
    }
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

#[test]
fn sarif_is_valid_against_the_official_schema() {
    let validator = sarif_validator();
    for report in [run_report(), scenario_report()] {
        let sarif: serde_json::Value = serde_json::from_str(&Format::Sarif.render(&report)).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&sarif)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
    }
    // The validator does reject a broken log.
    let mut broken: serde_json::Value = serde_json::from_str(&Format::Sarif.render(&run_report())).unwrap();
    broken["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(!validator.is_valid(&broken));

    let sarif: serde_json::Value = serde_json::from_str(&Format::Sarif.render(&run_report())).unwrap();
    let run = &sarif["runs"][0];
    assert_eq!(sarif["version"], "2.1.0");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 7);
    let iso_rule = &rules[0];
    assert_eq!(iso_rule["id"], "ISO-001");
    assert!(iso_rule["help"]["text"].as_str().unwrap().contains("(org, id)"));
    let tags = iso_rule["properties"]["tags"].as_array().unwrap();
    assert!(tags.contains(&"external/cwe/cwe-639".into()), "{tags:?}");
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    let iso = &results[0];
    assert_eq!(iso["ruleId"], "ISO-001");
    assert_eq!(iso["level"], "error");
    assert_eq!(
        iso["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "api/projects/prj_a10123456789ab"
    );
    assert_eq!(
        iso["locations"][0]["logicalLocations"][0]["name"],
        "GET /api/projects/prj_a10123456789ab"
    );
    // Code scanning refuses results without a location: every result has one.
    assert!(results.iter().all(
        |r| r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .is_some_and(|u| !u.is_empty() && !u.starts_with('/'))
    ));
    let rls = results.iter().find(|r| r["ruleId"] == "RLS-002").unwrap();
    assert_eq!(
        rls["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "tenantry/RLS-002"
    );
    assert_eq!(
        iso["partialFingerprints"]["tenantry/v1"].as_str().unwrap().len(),
        32
    );
    let waived: Vec<_> = results
        .iter()
        .filter(|r| r.get("suppressions").is_some())
        .collect();
    assert_eq!(waived.len(), 1);
    assert_eq!(waived[0]["ruleId"], "RL-004");
    assert_eq!(waived[0]["level"], "warning");
    assert!(waived[0]["suppressions"][0]["justification"]
        .as_str()
        .unwrap()
        .contains("SEC-123"));
    let rl6 = results.iter().find(|r| r["ruleId"] == "RL-006").unwrap();
    assert_eq!(rl6["level"], "note");
}

#[test]
fn no_format_prints_a_credential() {
    let jwt = "eyJhbGciOiJSUzI1NiIsImtpZCI6Imsx.eyJzdWIiOiJ1c2VyXzEyMyIsIm8iOnt9fQ.c2lnbmF0dXJlLXNlY3JldA";
    let key = "sk_test_PLANTEDsecretKEY0123456789";
    let opaque = "opaque-PLANTED-token-0123456789";
    let mut audit = audit_report(41234, "a1");
    audit.findings.push(finding(
        "TOK-001",
        &format!("the target echoed the token {jwt} and key {key}"),
        vec![format!(
            "GET http://127.0.0.1:41234/api/me?token={jwt}\nauthorization: Bearer {opaque}\nx-api-key: {key}\n--> 200\n\n{{\"token\":\"{jwt}\",\"auth\":\"Bearer {opaque}\"}}"
        )],
        None,
    ));
    let report = RunReport::from_audit(&audit, "http://127.0.0.1:41234");
    let mut rendered = vec![
        summary::render(&report, "requests", "seed 42"),
        summary::finding_text(&report.cases[0], &report.cases[0].findings[0]),
    ];
    for format in [
        Format::Json,
        Format::Junit,
        Format::Sarif,
        Format::Html,
        Format::Markdown,
    ] {
        rendered.push(format.render(&report));
    }
    for text in &rendered {
        for secret in [jwt, key, opaque, "PLANTED", "c2lnbmF0dXJlLXNlY3JldA"] {
            assert!(!text.contains(secret), "`{secret}` leaked into:\n{text}");
        }
    }
    // The finding is still there, with the credential masked.
    assert!(rendered[0].contains("FINDING TOK-001"), "{}", rendered[0]);
    assert!(rendered[2].contains("[redacted]"));
}

#[test]
fn html_and_markdown_escape_what_the_target_sent() {
    let report = run_report();
    let html = Format::Html.render(&report);
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"//"),
        "no external assets"
    );
    let markdown = Format::Markdown.render(&report);
    // Outside code blocks nothing of the body appears; inside, a fence guards it.
    assert!(markdown.contains("```http\nGET http://127.0.0.1:41234/api/projects/prj_a10123456789ab"));
}

#[test]
fn waivers_parse_with_positions() {
    let w = Waivers::parse("w.toml", WAIVERS).unwrap();
    assert_eq!(w.waivers.len(), 1);
    assert_eq!(w.waivers[0].checks, "RL-004");
    assert_eq!(w.waivers[0].origin, "w.toml:3");
    let error = |text: &str| Waivers::parse("w.toml", text).unwrap_err().to_string();
    let unknown = error("[[waiver]]\nchecks = \"RL-001\"\nreason = \"x\"\nexpiry = 2027-01-01\n");
    assert!(
        unknown.starts_with("w.toml:4:1: unknown field `expiry`"),
        "{unknown}"
    );
    let missing = error("[[waiver]]\nchecks = \"RL-001\"\n");
    assert!(missing.starts_with("w.toml:1:"), "{missing}");
    assert!(missing.contains("has no `reason`"), "{missing}");
    let empty = error("[[waiver]]\nchecks = \"RL-001\"\nreason = \"  \"\n");
    assert!(empty.starts_with("w.toml:3:10: "), "{empty}");
    assert!(empty.contains("empty `reason`"), "{empty}");
    let with_time =
        error("[[waiver]]\nchecks = \"RL-001\"\nreason = \"x\"\nexpires = 2027-01-01T10:00:00Z\n");
    assert!(
        with_time.starts_with("w.toml:4:11: `expires` must be a date"),
        "{with_time}"
    );
    let top = error("waiver = 3\n");
    assert!(top.starts_with("w.toml:1:10: "), "{top}");
    let unknown_top = error("[[waivers]]\nchecks = \"x\"\n");
    assert!(unknown_top.starts_with("w.toml:1:"), "{unknown_top}");
    assert!(unknown_top.contains("unknown field `waivers`"), "{unknown_top}");
}

#[test]
fn waived_findings_pass_the_gate_and_expired_waivers_fail_it() {
    let base = || RunReport::from_audit(&audit_report(41234, "a1"), "http://127.0.0.1:41234");
    // Only RL-004 (medium) at or above medium is left when RL and the
    // criticals are waived.
    let text = "[[waiver]]\nchecks = \"RL\"\nreason = \"accepted for now\"\n\n\
                [[waiver]]\nchecks = \"ISO-*\"\nreason = \"fix in progress\"\nexpires = 2026-11-29\n\n\
                [[waiver]]\nchecks = \"ORG-008\"\nreason = \"x\"\n\n\
                [[waiver]]\nchecks = \"RLS-002\"\nreason = \"x\"\n";
    let waivers = Waivers::parse("w.toml", text).unwrap();
    let mut report = base();
    let applied = waivers.apply(&mut report, TODAY);
    assert!(applied.expired.is_empty(), "in force through its date");
    let verdict = gate::decide(&report, Severity::Info, &applied.expired);
    assert_eq!(verdict.failing, 0, "{:?}", verdict);
    assert_eq!(verdict.waived, 6);
    assert_eq!(verdict.exit_code(), 0);

    let mut report = base();
    let next_day = Date { day: 30, ..TODAY };
    let applied = waivers.apply(&mut report, next_day);
    assert_eq!(applied.expired.len(), 1);
    let verdict = gate::decide(&report, Severity::Info, &applied.expired);
    assert_eq!(
        verdict.failing, 2,
        "the ISO findings are no longer waived: {verdict:?}"
    );
    assert_eq!(verdict.exit_code(), 1);
    let lines = verdict.lines().join("\n");
    assert!(
        lines.contains("expired waiver: `ISO-*` (w.toml:6) expired on 2026-11-29"),
        "{lines}"
    );
    // An expired waiver fails the gate even when nothing else does.
    let mut clean = base();
    clean.cases.retain(|c| c.findings.is_empty());
    let applied = waivers.apply(&mut clean, next_day);
    assert_eq!(
        gate::decide(&clean, Severity::Info, &applied.expired).exit_code(),
        1
    );
}

#[test]
fn a_scenario_is_waived_by_its_id() {
    let mut report = scenario_report();
    let waivers = Waivers::parse(
        "w.toml",
        "[[waiver]]\nchecks = \"iso-001-cross-org-read-by-id\"\nreason = \"SEC-9\"\n",
    )
    .unwrap();
    assert_eq!(gate::decide(&report, Severity::Info, &[]).exit_code(), 1);
    let applied = waivers.apply(&mut report, TODAY);
    assert_eq!(applied.waived, 1);
    assert_eq!(report.cases[0].status, Status::Waived);
    assert_eq!(gate::decide(&report, Severity::Info, &[]).exit_code(), 0);
    let junit = Format::Junit.render(&report);
    assert!(junit.contains("<skipped message=\"waived: SEC-9\""), "{junit}");
}

#[test]
fn the_gate_honours_the_threshold() {
    let report = RunReport::from_audit(&audit_report(41234, "a1"), "http://127.0.0.1:41234");
    let at = |s| gate::decide(&report, s, &[]);
    assert_eq!(at(Severity::Critical).failing, 3);
    assert_eq!(at(Severity::High).failing, 4);
    assert_eq!(at(Severity::Low).failing, 6);
    assert_eq!(at(Severity::Critical).below, 3);
    let clean = RunReport::from_audit(
        &Report {
            findings: Vec::new(),
            ..audit_report(1, "a1")
        },
        "http://x",
    );
    assert_eq!(gate::decide(&clean, Severity::Info, &[]).exit_code(), 0);
}

#[test]
fn a_baseline_keeps_known_findings_from_failing() {
    let old = RunReport::from_audit(&audit_report(41234, "a1"), "http://127.0.0.1:41234");
    let mut old_json: serde_json::Value = serde_json::from_str(&Format::Json.render(&old)).unwrap();
    // The baseline lacks the ORG-008 finding: it is new.
    let cases = old_json["cases"].as_array_mut().unwrap();
    cases.retain(|c| c["id"] != "ORG-008");
    let baseline = Baseline::parse("old.json", &old_json.to_string()).unwrap();
    let mut report = RunReport::from_audit(&audit_report(50001, "z9"), "http://127.0.0.1:50001");
    assert_eq!(baseline.apply(&mut report), 5);
    let verdict = gate::decide(&report, Severity::Info, &[]);
    assert_eq!(verdict.failing, 1);
    assert_eq!(verdict.known, 5);
    let summary = summary::render(&report, "requests", "seed 42");
    assert!(summary.contains("FINDING ORG-008"), "{summary}");
    assert!(summary.contains("KNOWN ISO-001"), "{summary}");
    // The JSON report reads back as the model.
    let back: RunReport = serde_json::from_str(&Format::Json.render(&report)).unwrap();
    assert_eq!(back, report);
    let err = Baseline::parse("audit.json", r#"{"schema":"tenantry.audit/1","findings":[]}"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("audit.json: not a tenantry.report/1 JSON report"),
        "{err}"
    );
}

#[test]
fn unknown_formats_name_the_valid_ones() {
    assert_eq!(
        Format::parse_list("junit, sarif,junit").unwrap(),
        [Format::Junit, Format::Sarif]
    );
    let err = Format::parse_list("junit,xml").unwrap_err().to_string();
    assert!(
        err.contains("`xml`") && err.contains("json, junit, sarif, html, markdown"),
        "{err}"
    );
}

/// Console output of headless Chromium loading `page` (the `CONSOLE` lines
/// of its log), and a screenshot to `png`. `None`: no Chromium here.
fn chromium_console(page: &Path, png: &Path) -> Option<Vec<String>> {
    let chromium = [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())?;
    let profile = tempdir("chromium-profile");
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(png.exists(), "chromium wrote no screenshot:\n{log}");
    Some(
        log.lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(String::from)
            .collect(),
    )
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tenantry-reports-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_html_report_opens_in_chromium_without_console_errors() {
    let dir = tempdir("html");
    // A page that does log an error and breaks the policy: the check can fail.
    let bad = dir.join("bad.html");
    std::fs::write(
        &bad,
        "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline'\"></head>\
         <body><script>console.error('planted error')</script><img src=\"http://example.invalid/x.png\"></body></html>",
    )
    .unwrap();
    let Some(console) = chromium_console(&bad, &dir.join("bad.png")) else {
        println!(
            "SKIPPED: no chromium at /usr/bin/chromium (install it to check the HTML report in a browser)"
        );
        return;
    };
    assert!(
        console.iter().any(|l| l.contains("planted error")),
        "console errors are not seen: {console:?}"
    );
    let page = dir.join("tenantry-report.html");
    std::fs::write(&page, Format::Html.render(&run_report())).unwrap();
    let png = std::env::var_os("TENANTRY_REPORT_SCREENSHOT")
        .map_or_else(|| dir.join("report.png"), std::path::PathBuf::from);
    let console = chromium_console(&page, &png).unwrap();
    assert!(
        console.is_empty(),
        "the HTML report logged to the console: {console:#?}"
    );
    println!("screenshot: {}", png.display());
    let _ = std::fs::remove_dir_all(&dir);
}
