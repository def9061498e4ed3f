//! Scoring an external tester (`--tool NAME=CMD`): the command runs with
//! `sh -c` against a reference stack started for the run (a flaw's, or the
//! clean one), with the target and two orgs' credentials in its
//! environment, and answers by its exit status: 0 no finding, 1 finding,
//! anything else (or the timeout) an error. The contract is in
//! `docs/score.md`; a worked example for Schemathesis is
//! `scripts/score-tools/schemathesis.sh`.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tenantry_harness::audit;
use tenantry_harness::client::{Client, Request};
use tenantry_harness::world::WorldSpec;
use tenantry_reference::config::Isolation;

use super::card::Verdict;
use super::corpus::failed;
use crate::reference_stack;

/// An external tester.
#[derive(Debug, Clone)]
pub struct Tool {
    /// Its column in the scorecard.
    pub name: String,
    /// The shell command.
    pub command: String,
    /// How long one run may take.
    pub timeout: Duration,
}

impl Tool {
    /// `NAME=CMD` (or a bare command, named after its first word).
    pub fn parse(spec: &str, timeout_secs: u64) -> anyhow::Result<Self> {
        let (name, command) = match spec.split_once('=') {
            Some((name, command))
                if !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
            {
                (name.to_string(), command.to_string())
            }
            _ => {
                let first = spec.split_whitespace().next().unwrap_or_default();
                let name = first.rsplit('/').next().unwrap_or(first).to_string();
                (name, spec.to_string())
            }
        };
        anyhow::ensure!(
            !command.trim().is_empty() && !name.is_empty(),
            "--tool `{spec}`: expected NAME=COMMAND (e.g. --tool 'schemathesis=scripts/score-tools/schemathesis.sh')"
        );
        anyhow::ensure!(
            name != "tenantry" && name != "scenarios",
            "--tool: `{name}` is a reserved column name"
        );
        Ok(Self {
            name,
            command,
            timeout: Duration::from_secs(timeout_secs.max(1)),
        })
    }
}

/// Runs `tool` against a stack with `flaw` (or clean), started in this
/// process on a Postgres of its own.
pub async fn run(tool: &Tool, flaw: Option<&str>) -> Verdict {
    let flaws: Vec<String> = flaw.map(String::from).into_iter().collect();
    let stack = match reference_stack::start(&flaws, Isolation::Both).await {
        Ok(stack) => stack,
        Err(e) => return failed(format!("the reference stack did not start: {e:#}")),
    };
    let verdict = match environment(&stack).await {
        Ok(env) => execute(tool, &env).await,
        Err(e) => failed(format!("could not set the world up for the tool: {e:#}")),
    };
    stack.stop().await;
    verdict
}

/// The variables of the contract (docs/score.md).
async fn environment(stack: &reference_stack::Stack) -> anyhow::Result<Vec<(String, String)>> {
    let profile = stack.profile();
    let client = Client::new(&profile.base_url, 4, Duration::from_secs(20));
    let mut sessions = audit::sessions_for(&profile, &client).await?;
    let tag = format!("{:08x}", audit::random_seed() as u32);
    let spec = WorldSpec::tagged(
        "Score",
        "score",
        &tag,
        &["a", "b"],
        &[
            ("alice", &[("a", "org:admin")]),
            ("carol", &[("a", "org:member")]),
            ("bob", &[("b", "org:admin")]),
        ],
    );
    let world = sessions.provision(&spec).await?;
    let mut env = vec![
        ("TENANTRY_TARGET_URL".to_string(), stack.base.clone()),
        (
            "TENANTRY_OPENAPI_URL".to_string(),
            format!("{}/openapi.json", stack.base),
        ),
        ("TENANTRY_SECRET_KEY".to_string(), stack.secret_key.clone()),
    ];
    for (var, user, org) in [("A", "alice", "a"), ("A2", "carol", "a"), ("B", "bob", "b")] {
        let token = sessions.token(&world, user, Some(org)).await?;
        env.push((format!("TENANTRY_TOKEN_{var}"), token));
    }
    for (var, org, token_var) in [("A", "a", "TENANTRY_TOKEN_A"), ("B", "b", "TENANTRY_TOKEN_B")] {
        let org_id = world.org(org).map(|o| o.id.clone()).unwrap_or_default();
        env.push((format!("TENANTRY_ORG_{var}"), org_id));
        let token = env
            .iter()
            .find(|(k, _)| k == token_var)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let reply = client
            .send(Request::new("POST", "/api/projects").bearer(&token).json(json!({
                "name": format!("score {org} {tag}"),
                "description": format!("belongs to org {org} only"),
            })))
            .await;
        anyhow::ensure!(
            reply.status == 201,
            "creating a project in org {org}: HTTP {}",
            reply.status
        );
        let id = reply.json()["id"].as_str().unwrap_or_default().to_string();
        env.push((format!("TENANTRY_RESOURCE_{var}"), format!("/api/projects/{id}")));
    }
    Ok(env)
}

async fn execute(tool: &Tool, env: &[(String, String)]) -> Verdict {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&tool.command)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(e) => return failed(format!("cannot start `sh -c {}`: {e}", tool.command)),
    };
    let out = match tokio::time::timeout(tool.timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return failed(format!("waiting for the tool: {e}")),
        Err(_) => return failed(format!("timed out after {} s", tool.timeout.as_secs())),
    };
    match out.status.code() {
        Some(code @ (0 | 1)) => Verdict {
            flagged: code == 1,
            checks: Vec::new(),
            families: Vec::new(),
            seconds: 0.0,
            error: None,
            notes: Vec::new(),
        },
        code => {
            let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            // The scorecard never carries the credentials the tool was given.
            for (k, v) in env {
                if (k.contains("TOKEN") || k.contains("SECRET")) && !v.is_empty() {
                    stderr = stderr.replace(v.as_str(), "[redacted]");
                }
            }
            let last: Vec<&str> = stderr.lines().rev().take(2).collect();
            failed(format!(
                "exited {code:?} (0: no finding, 1: finding): {}",
                last.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ))
        }
    }
}
