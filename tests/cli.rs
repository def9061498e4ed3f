//! The `tenantry` binary end to end: `serve` starts Postgres and the
//! reference server and answers requests; bad input exits 2 with a precise
//! error; help texts are snapshotted.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

fn tenantry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tenantry"))
}

fn snapshot_settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings
}

/// A running `tenantry serve` and the URL it printed.
struct Served {
    child: std::process::Child,
    url: String,
}

fn serve(extra: &[&str]) -> Served {
    serve_with_env(extra, &[])
}

/// `serve` with `env` added to this process's environment.
fn serve_with_env(extra: &[&str], env: &[(&str, &str)]) -> Served {
    let mut child = tenantry()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("tenantry reference server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    Served { child, url }
}

impl Served {
    /// SIGTERM, then the exit status and everything it logged.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        (status, stderr)
    }
}

#[test]
fn serve_starts_postgres_and_the_server_and_stops_on_sigterm() {
    let served = serve(&["--dev-auth"]);
    let url = served.url.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let health = http.get(format!("{url}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let created = http
            .post(format!("{url}/api/projects"))
            .header("x-tenantry-dev-tenant", "org_cli;user_cli;org:admin")
            .json(&serde_json::json!({ "name": "from the cli test" }))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let anonymous = http.get(format!("{url}/api/projects")).send().await.unwrap();
        assert_eq!(anonymous.status(), 401);
    });
    let (status, stderr) = served.stop();
    assert!(status.success(), "exit {status}: {stderr}");
    assert!(stderr.contains("ready in"), "{stderr}");
    assert!(stderr.contains("WARNING: --dev-auth"), "{stderr}");
}

#[test]
fn serve_without_dev_auth_puts_the_proxy_in_front() {
    let served = serve(&[]);
    let url = served.url.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let forged = http
            .get(format!("{url}/api/projects"))
            .header("x-tenantry-dev-tenant", "org_cli;user_cli;org:admin")
            .send()
            .await
            .unwrap();
        assert_eq!(
            forged.status(),
            401,
            "the dev header means nothing behind the proxy"
        );
        let jwks: serde_json::Value = http
            .get(format!("{url}/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(jwks["keys"][0]["kty"], "RSA");
    });
    let (status, stderr) = served.stop();
    assert!(status.success(), "exit {status}: {stderr}");
    assert!(!stderr.contains("WARNING: --dev-auth"), "{stderr}");
}

#[test]
fn a_bad_config_file_exits_2_naming_file_line_and_column() {
    let dir = std::env::temp_dir().join(format!("tenantry-cli-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[database]\npool_size = 4\npol_size = 5\n").unwrap();
    let out = tenantry()
        .arg("serve")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("error: {}:3:1: unknown field `pol_size`", file.display());
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn a_bad_environment_override_exits_2_naming_the_key() {
    let out = tenantry()
        .arg("serve")
        .env("TENANTRY_DATABASE_POOL_SIZE", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config key `database.pool_size` (from TENANTRY_DATABASE_POOL_SIZE): expected an integer, got `lots`"),
        "{stderr}"
    );
}

#[test]
fn every_key_can_come_from_the_environment_and_an_unknown_variable_is_named() {
    const SECRET_KEY: &str = "sk_test_tenantryCliSecretKey0123456789abcdefgh";
    let served = serve_with_env(
        &[],
        &[
            ("TENANTRY_IDENTITY_SECRET_KEY", SECRET_KEY),
            // Not among the variables the old hand list read.
            ("TENANTRY_IDENTITY_SESSION_TOKEN_LIFETIME_SECS", "123"),
            ("TENANTRY_IDENTITY_SESION_TOKEN_LIFETIME_SECS", "5"),
        ],
    );
    let url = served.url.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lifetime = rt.block_on(async {
        let http = reqwest::Client::new();
        let backend = |path: &str, body: serde_json::Value| {
            http.post(format!("{url}{path}"))
                .bearer_auth(SECRET_KEY)
                .json(&body)
                .send()
        };
        let user: serde_json::Value = backend(
            "/v1/users",
            serde_json::json!({ "email_address": ["lifetime@example.com"], "password": "correct horse battery staple" }),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let session: serde_json::Value = backend("/v1/sessions", serde_json::json!({ "user_id": user["id"] }))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let sid = session["id"].as_str().expect("a session id");
        let token: serde_json::Value = backend(&format!("/v1/sessions/{sid}/tokens"), serde_json::json!({}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let jwt = token["jwt"].as_str().expect("a session token");
        use base64::Engine;
        let payload = jwt.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap()
    });
    let (status, stderr) = served.stop();
    assert!(status.success(), "exit {status}: {stderr}");
    assert_eq!(lifetime, 123, "the token lives as long as the environment says");
    assert!(
        stderr.contains(
            "environment variable TENANTRY_IDENTITY_SESION_TOKEN_LIFETIME_SECS is not a configuration key and is ignored; \
             did you mean TENANTRY_IDENTITY_SESSION_TOKEN_LIFETIME_SECS (`identity.session_token_lifetime_secs`)?"
        ),
        "{stderr}"
    );
}

#[test]
fn help_texts() {
    let settings = snapshot_settings();
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["audit", "--help"],
        vec!["run", "--help"],
        vec!["checks", "--help"],
        vec!["db-audit", "--help"],
        vec!["score", "--help"],
        vec!["fuzz", "--help"],
    ] {
        let out = tenantry().args(&args).output().unwrap();
        assert!(out.status.success());
        // `--inject` exists only in builds with the `inject` feature.
        let flavour = if cfg!(feature = "inject") { "_inject" } else { "" };
        let name = format!("cli_help_{}{flavour}", args.join("_").replace("--", ""));
        settings.bind(|| insta::assert_snapshot!(name, String::from_utf8_lossy(&out.stdout)));
    }
}

#[test]
fn checks_list_and_explain() {
    let settings = snapshot_settings();
    let list = tenantry().args(["checks", "list"]).output().unwrap();
    assert!(list.status.success());
    let explain = tenantry()
        .args(["checks", "explain", "ten-iso-001"])
        .output()
        .unwrap();
    assert!(explain.status.success());
    let filtered = tenantry()
        .args([
            "checks",
            "list",
            "--checks",
            "ORG,TOK-00*",
            "--min-severity",
            "critical",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(filtered.status.success());
    let json: serde_json::Value = serde_json::from_slice(&filtered.stdout).unwrap();
    let ids: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"ORG-001") && ids.contains(&"TOK-003"), "{ids:?}");
    assert!(!ids.contains(&"ORG-007") && !ids.contains(&"ISO-001"), "{ids:?}");
    settings.bind(|| {
        insta::assert_snapshot!("cli_checks_list", String::from_utf8_lossy(&list.stdout));
        insta::assert_snapshot!("cli_checks_explain", String::from_utf8_lossy(&explain.stdout));
    });
    for (args, message) in [
        (vec!["checks", "explain", "ISO-999"], "no check `ISO-999`"),
        (
            vec!["checks", "list", "--checks", "NOPE"],
            "`NOPE` matches no check id or family",
        ),
    ] {
        let out = tenantry().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(message), "{args:?}");
    }
    let bad = tenantry()
        .args(["checks", "list", "--min-severity", "huge"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn audit_of_the_reference_stack_is_clean() {
    let out = tenantry().args(["audit", "--json", "-"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["schema"], "tenantry.audit/1");
    assert_eq!(report["findings"], serde_json::json!([]));
    assert!(report["checks_run"].as_array().unwrap().len() >= 14, "{report}");
    assert!(stderr.contains("0 findings"), "{stderr}");
    assert!(stderr.contains("starting the reference stack"), "{stderr}");
    // A severity floor selects checks: every check run is critical.
    let out = tenantry()
        .args([
            "audit",
            "--min-severity",
            "critical",
            "--cases",
            "0",
            "--json",
            "-",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = report["checks_run"].as_array().unwrap();
    assert!(!run.is_empty());
    for id in run {
        let check = tenantry_harness::checks::find(id.as_str().unwrap()).unwrap();
        assert_eq!(
            check.severity,
            tenantry_harness::checks::Severity::Critical,
            "{id}"
        );
    }
    let bad = tenantry()
        .args(["audit", "--target", "http://127.0.0.1:9"])
        .env_remove("TENANTRY_TARGET_SECRET_KEY")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--secret-key"));
}

#[test]
fn a_bad_profile_exits_2_naming_file_line_and_column() {
    let dir = std::env::temp_dir().join(format!("tenantry-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("target.toml");
    std::fs::write(
        &path,
        "base_url = \"http://127.0.0.1:9\"\n[session]\nsource = \"clerk-api\"\nsecret_key = \"sk\"\n\n[[resources]]\nname = \"p\"\ncreate = { path = \"/p\", methd = \"POST\" }\n",
    )
    .unwrap();
    let out = tenantry()
        .args(["audit", "--target", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:8:25: unknown field `methd`", path.display())),
        "{stderr}"
    );
    // A target that does not answer: exit 2, never a pass.
    std::fs::write(&path, "base_url = \"http://127.0.0.1:9\"\n[session]\nsource = \"clerk-api\"\nsecret_key = \"sk_test_unreachable\"\n").unwrap();
    let out = tenantry()
        .args(["audit", "--target", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("did not answer"), "{stderr}");
    assert!(!stderr.contains("sk_test_unreachable"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_signing_key_is_read_first_and_must_be_the_targets() {
    use tenantry_harness::tokens::{keys, RsaKey};
    let dir = std::env::temp_dir().join(format!("tenantry-cli-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.pem");
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not a key\n").unwrap();
    // Bad files: exit 2 naming the option and the file, before a stack starts.
    for (command, path, expected) in [
        ("audit", &missing, "cannot read it"),
        ("run", &garbage, "not a PEM file"),
        ("fuzz", &garbage, "not a PEM file"),
    ] {
        let mut args = vec![command.to_string()];
        if command == "run" {
            args.push(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios").into());
        }
        args.extend(["--signing-key".into(), path.display().to_string()]);
        let out = tenantry().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains(&format!("--signing-key {}: ", path.display())) && stderr.contains(expected),
            "{command}: {stderr}"
        );
        assert!(
            !stderr.contains("auditing") && !stderr.contains("running"),
            "{stderr}"
        );
    }
    // A key the target does not publish: refused, never a silent pass of the
    // re-signed cases. The key itself never reaches the output.
    let stranger = RsaKey::generate("stranger").unwrap();
    let text = keys::pem("PRIVATE KEY", &stranger.pkcs8().unwrap());
    let path = dir.join("stranger.pem");
    std::fs::write(&path, &text).unwrap();
    let out = tenantry()
        .args(["audit", "--checks", "TOK-013", "--cases", "0", "--signing-key"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("not in the target's JWKS"), "{stderr}");
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    for output in [&stdout, &stderr] {
        assert!(!output.contains(&body[..40]), "the key leaked: {output}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_executes_the_scenario_library_on_the_reference_stack() {
    let library = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");
    let out = tenantry().args(["run", library, "--seed", "5"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("PASS iso-001"), "{stdout}");
    assert!(stdout.contains(" 0 failed, 0 waived; "), "{stdout}");
    assert!(
        stdout.contains("gate: pass: 0 findings at or above info; exit 0"),
        "{stdout}"
    );
    assert!(
        stdout.trim_end().lines().any(|l| l.ends_with("; seed 5")),
        "{stdout}"
    );
}

#[test]
fn run_refuses_bad_scenarios_before_sending_anything() {
    let dir = std::env::temp_dir().join(format!("tenantry-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.yaml");
    std::fs::write(
        &path,
        "id: bad\ntitle: t\nseverity: high\nsteps:\n  - as: anonymous\n    request: { method: GET, path: /p, bdoy: 1 }\n",
    )
    .unwrap();
    // The target would not answer: the parse error must come first.
    let out = tenantry()
        .args([
            "run",
            dir.to_str().unwrap(),
            "--target",
            "http://127.0.0.1:9",
            "--secret-key",
            "sk",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:6:39: unknown key `bdoy` in request", path.display())),
        "{stderr}"
    );
    let out = tenantry()
        .args(["run", dir.join("missing.yaml").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the scenario file"));
    std::fs::remove_dir_all(&dir).unwrap();
}
