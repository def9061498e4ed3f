//! The OpenAPI document tells the whole truth: the pinned Schemathesis
//! (installed by `scripts/test` from PyPI, see `scripts/schemathesis/`) runs
//! every check it has, its stateful phase included, against a reference
//! server behind the real proxy — once with a valid org token and once
//! without — and must find nothing. A failure prints Schemathesis's report:
//! each failure with the curl command that reproduces it.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::token_checks::{now, PARTY};
use common::TestStack;
use tenantry_reference::identity::token::{mint, SessionClaims};

/// The pinned version (the first line of the requirements file names it).
const VERSION: &str = "4.32.5";
/// Examples per operation and phase with a token: enough to reach every
/// status the API answers, few enough for CI.
const MAX_EXAMPLES: &str = "25";
/// Without a token every org route answers 401: a few examples establish it.
const MAX_EXAMPLES_ANONYMOUS: &str = "8";
/// Fixed, so a failure reproduces; Schemathesis prints it too.
const SEED: &str = "21";
/// The org of the token.
const ORG: &str = "org_st";

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The `st` executable `scripts/test` installs; a missing one fails the test.
fn st() -> PathBuf {
    let root = root();
    let pinned = std::fs::read_to_string(root.join("scripts/schemathesis/requirements.txt"))
        .expect("scripts/schemathesis/requirements.txt");
    assert!(
        pinned.lines().any(|l| l == format!("schemathesis=={VERSION}")),
        "scripts/schemathesis/requirements.txt and this test must pin the same Schemathesis ({VERSION})"
    );
    let st = root.join(format!("target/py/schemathesis-{VERSION}/bin/st"));
    assert!(
        st.is_file(),
        "Schemathesis {VERSION} is not installed at {}: run scripts/test (it installs the pinned \
         version from PyPI with scripts/schemathesis/install)",
        st.display()
    );
    st
}

/// An org admin's session token, valid for the whole run.
fn org_token(stack: &TestStack) -> String {
    let claims = SessionClaims::session("https://clerk.tenantry.local", "user_st", "sess_st", now(), 3_600)
        .for_party(PARTY)
        .in_org(
            ORG,
            "schemathesis",
            "org:admin",
            &["org:projects:read".into(), "org:integrations:manage".into()],
        )
        .unwrap();
    mint(&stack.keys.active(), &claims).unwrap()
}

/// Runs Schemathesis against `stack`; returns whether it passed and its report.
async fn schemathesis(stack: &TestStack, token: Option<&str>) -> (bool, String) {
    let scratch = std::env::temp_dir().join(format!(
        "tenantry-schemathesis-{}-{}",
        std::process::id(),
        token.is_some()
    ));
    std::fs::create_dir_all(&scratch).unwrap();
    // The committed settings, plus the token for both of the document's
    // schemes (Schemathesis picks either; the proxy accepts the token in the
    // header or the cookie, and refuses two different ones).
    let mut config = std::fs::read_to_string(root().join("scripts/schemathesis/schemathesis.toml")).unwrap();
    if token.is_some() {
        config.push_str(&format!(
            "\n[auth.openapi.bearer]\nbearer = \"${{SCHEMATHESIS_ORG_TOKEN}}\"\n\
             [auth.openapi.session]\napi_key = \"${{SCHEMATHESIS_ORG_TOKEN}}\"\n\
             # Test data: the token's org, so the route answers more than 403 org_mismatch.\n\
             [[operations]]\ninclude-name = \"GET /api/orgs/{{org_id}}/projects\"\n\
             parameters = {{ \"path.org_id\" = \"{ORG}\" }}\n"
        ));
    }
    let config_path = scratch.join("schemathesis.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut command = tokio::process::Command::new(st());
    command
        .current_dir(&scratch)
        .arg("--config-file")
        .arg(&config_path)
        .arg("--no-color")
        .args(["run", &format!("{}/openapi.json", stack.base)])
        .args(["--checks", "all"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args([
            "--max-examples",
            if token.is_some() {
                MAX_EXAMPLES
            } else {
                MAX_EXAMPLES_ANONYMOUS
            },
        ])
        .args(["--seed", SEED])
        // One worker: CPython 3.11 can fail parsing Hypothesis's lambdas in
        // two threads at once ("AST constructor recursion depth mismatch").
        .args(["--workers", "1", "--request-timeout", "10"])
        .env("SCHEMATHESIS_ORG_TOKEN", token.unwrap_or_default())
        .env("HYPOTHESIS_STORAGE_DIRECTORY", scratch.join(".hypothesis"))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(600), command.output())
        .await
        .expect("Schemathesis finishes within 10 minutes")
        .expect("Schemathesis starts");
    let _ = std::fs::remove_dir_all(&scratch);
    let mut report = String::from_utf8_lossy(&out.stdout).into_owned();
    report.push_str(&String::from_utf8_lossy(&out.stderr));
    if let Some(token) = token {
        report = report.replace(token, "[token]");
    }
    (out.status.success(), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_with_and_without_a_token() {
    let st = st();
    let stack = TestStack::with_proxy().await;
    let token = org_token(&stack);
    let (with_token, report) = schemathesis(&stack, Some(&token)).await;
    println!("{report}");
    assert!(
        with_token,
        "Schemathesis ({}) found failures with an org token:\n{report}",
        st.display()
    );
    let (anonymous, report) = schemathesis(&stack, None).await;
    println!("{report}");
    assert!(
        anonymous,
        "Schemathesis found failures without a token:\n{report}"
    );
}
