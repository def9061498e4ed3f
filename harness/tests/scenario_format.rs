//! The scenario format without a target: what the writer emits reads back
//! to the same scenario (for hand-picked and for random content), the
//! written text is stable (snapshot), and bad files are refused with
//! file:line:column and what was expected there (snapshot).

use proptest::prelude::*;
use serde_json::json;
use tenantry_harness::checks::Severity;
use tenantry_harness::scenario::{
    self, Actor, Capture, CaptureSource, CountAssert, Expect, Forge, Given, GivenOrg, GivenUser,
    HeaderAssert, Item, JsonAssert, MembershipChange, Scenario, StatusMatch, Step,
};
use tenantry_harness::template::{Body, QueryValue, RequestTemplate};

fn snapshot(name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

fn step(actor: Actor, request: RequestTemplate) -> Step {
    Step {
        name: None,
        actor,
        request,
        capture: Vec::new(),
        forge: None,
        concurrent: None,
        expect: Expect::default(),
    }
}

fn member(user: &str, org: &str) -> Actor {
    Actor::Member {
        user: user.into(),
        org: Some(org.into()),
    }
}

/// A scenario that uses every part of the format.
fn rich() -> Scenario {
    let mut create = RequestTemplate::new("POST", "/api/projects");
    create.body = Some(Body::Json(json!({
        "name": "{{ canary }}",
        "tags": ["x", 1, 2.5, true, null],
        "nested": { "organization_id": "{{ org.a.id }}" }
    })));
    let mut seed = step(member("alice", "a"), create);
    seed.capture.push(("project".into(), Capture::json("$.id")));
    seed.capture.push(("secret".into(), Capture::json("$['name']")));
    seed.capture.push((
        "state".into(),
        Capture {
            source: CaptureSource::Json("$.authorize_url".into()),
            query: Some("state".into()),
        },
    ));
    seed.capture.push((
        "location".into(),
        Capture {
            source: CaptureSource::Header("Location".into()),
            query: None,
        },
    ));
    seed.capture.push((
        "code".into(),
        Capture {
            source: CaptureSource::Header("location".into()),
            query: Some("code".into()),
        },
    ));
    seed.expect.status = vec![201];

    let mut trpc = RequestTemplate::new("get", "/api/trpc/project.byId");
    trpc.query.push((
        "input".into(),
        QueryValue::Json(json!({ "json": { "id": "{{ project }}", "orgId": "{{ org.b.id | upper }}" } })),
    ));
    trpc.query.push(("batch".into(), QueryValue::Json(json!(1))));
    trpc.query
        .push(("org_id".into(), QueryValue::Text("{{ org.a.id }}".into())));
    trpc.query
        .push(("org_id".into(), QueryValue::Text("{{ org.b.id }}".into())));
    trpc.query.push(("word".into(), QueryValue::Json(json!("null"))));
    trpc.headers.push(("x-org-id".into(), "{{ org.a.slug }}".into()));
    trpc.headers
        .push(("X-Org-Id".into(), "{{ org.b.id | pad }}".into()));
    trpc.cookies.push(("org_id".into(), "{{ org.a.id }}".into()));
    let mut read = step(member("bob", "b"), trpc);
    read.name = Some("bob reads \"a's\" project: 100% sure\tno leak".into());
    read.expect = Expect {
        status: vec![403, 404],
        json: vec![
            ("$.error.code".into(), JsonAssert::Equals(json!("NOT_FOUND"))),
            ("$.result".into(), JsonAssert::Exists(false)),
            ("$.items".into(), JsonAssert::Length(0)),
        ],
        headers: vec![
            ("x-request-id".into(), HeaderAssert::Present(true)),
            (
                "content-type".into(),
                HeaderAssert::Equals("application/json".into()),
            ),
        ],
        no_foreign_data: true,
        body_not_contains: vec!["{{ secret }}".into(), "{{ org.a.name }}".into()],
        body_contains: Vec::new(),
        count: Vec::new(),
    };
    let mut forged = step(
        member("bob", "b"),
        RequestTemplate::new("GET", "{{ target.instance.0 }}/api/projects"),
    );
    forged.forge = Some(Forge {
        checks: vec!["TOK-003".into(), "TOK-01*".into()],
        variant: None,
    });
    forged.expect.status = vec![401, 403];
    let mut picked = step(member("bob", "b"), RequestTemplate::new("GET", "/api/projects"));
    picked.forge = Some(Forge {
        checks: vec!["TOK-006".into()],
        variant: Some("spki: pem".into()),
    });
    let mut race = step(
        member("alice", "a"),
        RequestTemplate::new("GET", "/cb?state={{ state }}&code={{ code }}"),
    );
    race.concurrent = Some(16);
    race.expect.count = vec![
        CountAssert {
            status: StatusMatch::Class(2),
            min: 1,
            max: 1,
        },
        CountAssert {
            status: StatusMatch::Code(400),
            min: 15,
            max: u32::MAX,
        },
        CountAssert {
            status: StatusMatch::Code(500),
            min: 0,
            max: 0,
        },
    ];

    let mut form = RequestTemplate::new("POST", "/settings");
    form.body = Some(Body::Form(vec![
        ("organization_id".into(), "{{ org.a.id }}".into()),
        ("note".into(), "a&b=c ü \u{7f} \u{1F600}".into()),
    ]));
    let mut anon = step(Actor::Anonymous, form);
    anon.expect.status = vec![401];
    anon.expect.no_foreign_data = false;
    anon.expect.body_contains = vec!["{{ user.alice.id }}".into()];

    let personal = step(
        Actor::Member {
            user: "carol".into(),
            org: None,
        },
        RequestTemplate::new("GET", "/me"),
    );

    Scenario {
        id: "iso-rich-001".into(),
        title: "Every part: quotes \" and backslashes \\ and yes/no/null and 1e3".into(),
        severity: Severity::Critical,
        cwe: Some(639),
        tags: vec!["TEN-ISO-001".into(), "true".into(), "42".into()],
        references: vec!["https://cwe.mitre.org/data/definitions/639.html".into()],
        given: Given {
            orgs: vec![
                GivenOrg {
                    key: "a".into(),
                    name: Some("Acme: \"the\" org".into()),
                },
                GivenOrg {
                    key: "b".into(),
                    name: None,
                },
            ],
            users: vec![
                GivenUser {
                    key: "alice".into(),
                    memberships: vec![("a".into(), "org:admin".into())],
                },
                GivenUser {
                    key: "bob".into(),
                    memberships: vec![("b".into(), "org:member".into())],
                },
                GivenUser {
                    key: "carol".into(),
                    memberships: vec![("b".into(), "org:member".into())],
                },
            ],
            resources: vec![seed],
        },
        steps: vec![
            Item::Send(read),
            Item::Send(forged),
            Item::Send(picked),
            Item::Wait(std::time::Duration::from_millis(1500)),
            Item::Send(race),
            Item::Membership(MembershipChange {
                name: Some("bob joins a".into()),
                user: "bob".into(),
                org: "a".into(),
                role: Some("org:member".into()),
            }),
            Item::Send(step(
                member("bob", "a"),
                RequestTemplate::new("GET", "/api/projects"),
            )),
            Item::Membership(MembershipChange {
                name: None,
                user: "bob".into(),
                org: "a".into(),
                role: None,
            }),
            Item::Send(anon),
            Item::Send(personal),
        ],
    }
}

#[test]
fn what_is_written_reads_back_the_same() {
    let original = rich();
    let text = scenario::to_yaml(&original);
    let read = scenario::parse("rich.yaml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(read, original, "{text}");
    // And writing it again changes nothing.
    assert_eq!(scenario::to_yaml(&read), text);
    snapshot("scenario_written", &text);
}

fn text_strategy() -> impl Strategy<Value = String> {
    // Any characters, including controls, quotes, YAML indicators and
    // placeholder braces that are not placeholders.
    proptest::string::string_regex("[ -~\\t\\n\\r\\u{80}-\\u{10ffff}]{0,24}")
        .unwrap()
        .prop_map(|mut s| {
            // `{{{` becomes `{ {{` in one pass: repeat until none is left.
            while s.contains("{{") {
                s = s.replace("{{", "{ {");
            }
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_text_survives_the_round_trip(
        title in text_strategy(),
        value in text_strategy(),
        key in "[a-z][a-z0-9_-]{0,8}",
        number in any::<i64>(),
        flag in any::<bool>(),
    ) {
        let mut s = rich();
        s.title = title.clone();
        s.tags = vec![value.clone()];
        let mut request = RequestTemplate::new("PUT", &format!("/x/{}", value.replace(['\r', '\n'], " ")));
        request.query.push((key.clone(), QueryValue::Text(value.clone())));
        request.query.push((format!("{key}2"), QueryValue::Json(json!({ &key: [value.clone(), number, flag] }))));
        request.body = Some(Body::Json(json!({ "v": value.clone(), &value: number })));
        let mut st = step(member("alice", "a"), request);
        st.name = Some(value.clone());
        st.expect.body_not_contains = if value.is_empty() { Vec::new() } else { vec![value.clone()] };
        st.expect.json = vec![("$.v".into(), JsonAssert::Equals(json!([value.clone(), number])))];
        s.steps.push(Item::Send(st));
        let text = scenario::to_yaml(&s);
        let read = scenario::parse("random.yaml", &text);
        prop_assert!(read.is_ok(), "{}\n{}", read.unwrap_err(), text);
        prop_assert_eq!(read.unwrap(), s);
    }
}

const GOOD: &str = "id: x\ntitle: t\nseverity: high\ngiven:\n  orgs: { a: {} }\n  users: { alice: { a: org:admin } }\nsteps:\n";

#[test]
fn bad_scenarios_name_the_place_and_what_was_expected() {
    let step = "  - as: alice@a\n    request: { method: GET, path: /p }\n";
    let cases: Vec<(&str, String)> = vec![
        ("empty file", String::new()),
        ("not a mapping", "- a\n- b\n".into()),
        ("invalid yaml", "id: x\ntitle: [unclosed\n".into()),
        ("unknown top-level key", format!("{GOOD}{step}stesp: []\n")),
        ("matrix at the top level", format!("{GOOD}{step}matrix: {{}}\n")),
        ("empty matrix variable", format!("{GOOD}  - as: alice@a\n    matrix: {{ at: [] }}\n    request: {{ method: GET, path: /p }}\n")),
        ("matrix variable named like a placeholder", format!("{GOOD}  - as: alice@a\n    matrix: {{ org: [x] }}\n    request: {{ method: GET, path: /p }}\n")),
        ("matrix too large", format!("{GOOD}  - as: alice@a\n    matrix: {{ a: [{}], b: [{}] }}\n    request: {{ method: GET, path: /p }}\n", vec!["x"; 20].join(", "), vec!["y"; 20].join(", "))),
        ("matrix with capture", format!("{GOOD}  - as: alice@a\n    matrix: {{ a: [x] }}\n    request: {{ method: GET, path: /p }}\n    capture: {{ id: $.id }}\n")),
        ("matrix value for as is no actor", format!("{GOOD}  - as: \"{{{{ who }}}}\"\n    matrix: {{ who: [alice@a, zed@a] }}\n    request: {{ method: GET, path: /p }}\n")),
        ("filter on a templated matrix value", format!("{GOOD}  - as: alice@a\n    matrix: {{ v: [\"{{{{ org.a.id }}}}\"] }}\n    request: {{ method: GET, path: \"/p/{{{{ v | upper }}}}\" }}\n")),
        ("unknown place kind", format!("{GOOD}  - as: alice@a\n    request: {{ method: GET, path: /p }}\n    place: {{ \"body:x\": y }}\n")),
        ("json place without pointer", format!("{GOOD}  - as: alice@a\n    request: {{ method: GET, path: /p }}\n    place: {{ \"json:org\": y }}\n")),
        ("forge of a non-token check", format!("{GOOD}  - as: alice@a\n    request: {{ method: GET, path: /p }}\n    forge: ISO-001\n")),
        ("forge as anonymous", format!("{GOOD}  - as: anonymous\n    request: {{ method: GET, path: /p }}\n    forge: TOK-003\n")),
        ("concurrent out of range", format!("{GOOD}  - as: alice@a\n    request: {{ method: GET, path: /p }}\n    concurrent: 1000\n")),
        ("count without concurrent", format!("{GOOD}  - as: alice@a\n    request: {{ method: GET, path: /p }}\n    expect: {{ count: {{ 200: 1 }} }}\n")),
        ("bad count status", format!("{GOOD}  - as: alice@a\n    request: {{ method: GET, path: /p }}\n    concurrent: 4\n    expect: {{ count: {{ 2xy: 1 }} }}\n")),
        ("count min above max", format!("{GOOD}  - as: alice@a\n    request: {{ method: GET, path: /p }}\n    concurrent: 4\n    expect: {{ count: {{ 429: {{ min: 3, max: 1 }} }} }}\n")),
        ("capture with two sources", format!("{GOOD}  - as: alice@a\n    request: {{ method: GET, path: /p }}\n    capture: {{ s: {{ json: $.u, header: location }} }}\n")),
        ("bad wait", format!("{GOOD}{step}  - wait: soon\n")),
        ("wait too long", format!("{GOOD}{step}  - wait: 600s\n")),
        ("forge in given.resources", GOOD.replace("steps:\n", "  resources:\n    - as: alice@a\n      request: { method: GET, path: /p }\n      forge: TOK-003\nsteps:\n") + step),
        ("missing steps", GOOD.replace("steps:\n", "")),
        ("no steps", GOOD.to_string()),
        ("bad id", format!("{}{step}", GOOD.replace("id: x", "id: Bad Id"))),
        ("bad severity", format!("{}{step}", GOOD.replace("high", "severe"))),
        ("cwe not a number", format!("cwe: many\n{GOOD}{step}")),
        ("alias", format!("{GOOD}  - &s {{ as: alice@a, request: {{ method: GET, path: /p }} }}\n  - *s\n")),
        ("unknown tag", format!("{GOOD}  - as: !!str alice@a\n    request: {{ method: GET, path: /p }}\n")),
        ("duplicate key", format!("{GOOD}  - as: alice@a\n    as: alice@a\n    request: {{ method: GET, path: /p }}\n")),
        ("second document", format!("{GOOD}{step}---\nid: y\n")),
        ("undeclared user", format!("{GOOD}  - as: zed@a\n    request: {{ method: GET, path: /p }}\n")),
        ("undeclared org", format!("{GOOD}  - as: alice@z\n    request: {{ method: GET, path: /p }}\n")),
        ("not a member", GOOD.replace("orgs: { a: {} }", "orgs: { a: {}, b: {} }").replace("users: { alice: { a: org:admin } }", "users: { alice: { a: org:admin }, bob: { b: org:admin } }") + "  - as: alice@b\n    request: { method: GET, path: /p }\n"),
        ("org without members", format!("{}{step}", GOOD.replace("orgs: { a: {} }", "orgs: { a: {}, b: {} }"))),
        ("bad actor", format!("{GOOD}  - as: alice@a@b\n    request: {{ method: GET, path: /p }}\n")),
        ("bad method", format!("{GOOD}  - as: alice@a\n    request: {{ method: \"GE T\", path: /p }}\n")),
        ("relative path", format!("{GOOD}  - as: alice@a\n    request: {{ method: GET, path: p }}\n")),
        ("unknown request key", format!("{GOOD}  - as: alice@a\n    request: {{ method: GET, path: /p, bdoy: {{}} }}\n")),
        ("two bodies", format!("{GOOD}  - as: alice@a\n    request: {{ method: POST, path: /p, json: {{}}, form: {{}} }}\n")),
        ("unknown placeholder", format!("{GOOD}  - as: alice@a\n    request: {{ method: GET, path: \"/p/{{{{ nope }}}}\" }}\n")),
        ("undeclared org placeholder", format!("{GOOD}  - as: alice@a\n    request: {{ method: GET, path: \"/p/{{{{ org.z.id }}}}\" }}\n")),
        ("unknown filter", format!("{GOOD}  - as: alice@a\n    request: {{ method: GET, path: \"/p/{{{{ org.a.id | shout }}}}\" }}\n")),
        ("canary in expect", format!("{GOOD}  - as: alice@a\n    request: {{ method: GET, path: /p }}\n    expect: {{ body_contains: [\"{{{{ canary }}}}\"] }}\n")),
        ("capture used before defined", format!("{GOOD}  - as: alice@a\n    request: {{ method: GET, path: \"/p/{{{{ id }}}}\" }}\n  - as: alice@a\n    request: {{ method: POST, path: /p }}\n    capture: {{ id: $.id }}\n")),
        ("bad json path", format!("{GOOD}  - as: alice@a\n    request: {{ method: GET, path: /p }}\n    capture: {{ id: \"$..[\" }}\n")),
        ("status out of range", format!("{GOOD}  - as: alice@a\n    request: {{ method: GET, path: /p }}\n    expect: {{ status: [200, 700] }}\n")),
        ("status not a number", format!("{GOOD}  - as: alice@a\n    request: {{ method: GET, path: /p }}\n    expect: {{ status: ok }}\n")),
        ("two json assertions", format!("{GOOD}  - as: alice@a\n    request: {{ method: GET, path: /p }}\n    expect: {{ json: {{ $.a: {{ exists: true, length: 1 }} }} }}\n")),
        ("header with newline", format!("{GOOD}  - as: alice@a\n    request: {{ method: GET, path: /p, headers: {{ x-a: \"a\\nb\" }} }}\n")),
        ("json tag outside query", format!("{GOOD}  - as: alice@a\n    request: {{ method: POST, path: /p, json: {{ a: !json x }} }}\n")),
        ("huge number", format!("{GOOD}  - as: alice@a\n    request: {{ method: POST, path: /p, json: {{ a: 123456789012345678901234567890 }} }}\n")),
        ("membership without change", format!("{GOOD}  - membership: {{ user: alice, org: a }}\n")),
        ("membership of unknown user", format!("{GOOD}  - membership: {{ user: zed, org: a, removed: true }}\n")),
        ("membership with request", format!("{GOOD}  - membership: {{ user: alice, org: a, removed: true }}\n    request: {{ method: GET, path: /p }}\n")),
    ];
    let mut table = String::new();
    for (name, text) in &cases {
        let err = scenario::parse("bad.yaml", text)
            .err()
            .unwrap_or_else(|| panic!("{name}: accepted\n{text}"));
        assert_eq!(err.file, "bad.yaml");
        assert!(
            err.line >= 1 && err.line <= text.lines().count().max(1) + 1 && err.column >= 1,
            "{name}: {err}\n{text}"
        );
        table.push_str(&format!("{name}\n  {err}\n"));
    }
    snapshot("scenario_errors", &table);
}

#[test]
fn a_matrix_expands_over_every_combination_in_order() {
    let text = format!(
        "{}  - name: forged org\n    as: \"{{{{ who }}}}\"\n    matrix:\n      who: [alice@a, bob@b]\n      at: [\"query:org_id\", \"header:X-Org-Id\", \"json:/org/id\", \"cookie:org\"]\n      forged: [\"{{{{ org.a.id }}}}\", \"ab\"]\n    request: {{ method: POST, path: \"/p/{{{{ forged | upper }}}}\" }}\n    place:\n      \"{{{{ at }}}}\": \"{{{{ forged }}}}\"\n    expect: {{ status: [400, 403] }}\n",
        GOOD.replace("orgs: { a: {} }", "orgs: { a: {}, b: {} }")
            .replace("users: { alice: { a: org:admin } }", "users: { alice: { a: org:admin }, bob: { b: org:admin } }")
    );
    // A filter on a templated value is refused; use plain values there.
    let text = text.replace("{{ forged | upper }}", "{{ at | upper }}");
    let s = scenario::parse("matrix.yaml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(s.steps.len(), 2 * 4 * 2);
    let steps: Vec<&Step> = s
        .steps
        .iter()
        .map(|i| match i {
            Item::Send(step) => step,
            other => panic!("{other:?}"),
        })
        .collect();
    // First variable outermost, last fastest.
    assert_eq!(steps[0].actor, member("alice", "a"));
    assert_eq!(steps[8].actor, member("bob", "b"));
    assert_eq!(
        steps[0].name.as_deref(),
        Some("forged org [who=alice@a at=query:org_id forged={{ org.a.id }}]")
    );
    assert_eq!(
        steps[1].name.as_deref(),
        Some("forged org [who=alice@a at=query:org_id forged=ab]")
    );
    assert_eq!(steps[0].request.path, "/p/QUERY:ORG_ID");
    assert_eq!(
        steps[0].request.query,
        vec![("org_id".to_string(), QueryValue::Text("{{ org.a.id }}".into()))]
    );
    assert_eq!(
        steps[3].request.headers,
        vec![("X-Org-Id".to_string(), "ab".to_string())]
    );
    assert_eq!(
        steps[4].request.body,
        Some(Body::Json(json!({ "org": { "id": "{{ org.a.id }}" } })))
    );
    assert_eq!(
        steps[6].request.cookies,
        vec![("org".to_string(), "{{ org.a.id }}".to_string())]
    );
    assert!(steps.iter().all(|s| s.expect.status == vec![400, 403]));
}

#[test]
fn a_scenario_file_that_cannot_be_read_says_so() {
    let err = scenario::load(std::path::Path::new("/nonexistent/s.yaml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/s.yaml: cannot read the scenario file"),
        "{err}"
    );
}

#[test]
fn the_example_scenarios_and_the_format_reference_parse() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios");
    let mut files = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(root)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    assert!(!files.is_empty(), "no scenario files under {root}");
    for file in &files {
        scenario::load(file).unwrap_or_else(|e| panic!("{e}"));
    }
    // Every complete scenario in the format reference parses.
    let doc = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let mut complete = 0;
    for block in doc.split("```yaml\n").skip(1) {
        let block = block.split("```").next().unwrap();
        if block.lines().any(|l| l.starts_with("id:")) {
            scenario::parse("scenarios/README.md", block).unwrap_or_else(|e| panic!("{e}\n{block}"));
            complete += 1;
        }
    }
    assert!(complete >= 1, "the format reference has no complete example");
}
