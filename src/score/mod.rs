//! `tenantry score`: the reference stack's injected flaws are a corpus of
//! known-vulnerable targets, the clean stack a known-safe one. Every flaw
//! gets a stack of its own (one Postgres cluster shared, a database per
//! run), tenantry audits it — and any `--tool` tests it — and the
//! scorecard says what each caught and what it flagged on the clean stack.
//!
//! tenantry's runs are `tenantry audit` processes (so a crash of one run
//! cannot take the score down, and runs go in parallel); a tool is a shell
//! command run against a stack this process starts, with the target's URL
//! and credentials in its environment (see `docs/score.md`).

// Without the corpus only the disabled command remains.
#[cfg_attr(not(feature = "inject"), allow(dead_code))]
mod card;
#[cfg(feature = "inject")]
mod corpus;
#[cfg(feature = "inject")]
mod tool;

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ScoreArgs {
    /// Fast mode (CI): each flaw is audited with the checks of its own family only, with
    /// a short campaign, and the clean stack with every check under one seed.
    #[arg(long)]
    fast: bool,
    /// Clean-stack runs, each with its own seed (default 3; 1 with --fast; 0: none, and
    /// no false-positive rate).
    #[arg(long, value_name = "N")]
    seeds: Option<u32>,
    /// Runs at once (default: the number of CPUs).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Only these flaws (comma-separated names; see --manifest).
    #[arg(long, value_name = "NAMES")]
    flaws: Option<String>,
    /// The first seed (printed; pass it back to repeat a score).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Also score an external tester: `NAME=COMMAND`, run with `sh -c` against each
    /// flawed stack and the clean one; exit 0 means "no finding", 1 "finding" (any
    /// other status is an error). Repeatable. The contract is in docs/score.md.
    #[arg(long = "tool", value_name = "NAME=CMD")]
    tools: Vec<String>,
    /// Stop a tool's run after this many seconds (counted as an error).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    tool_timeout: u64,
    /// Also score the scenario library: `tenantry run PATH` against each stack.
    #[arg(long, value_name = "PATH")]
    scenarios: Option<PathBuf>,
    /// Write the scorecard as JSON here (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
    /// Write the scorecard as Markdown here.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Print the flaw manifest (Markdown; JSON with --json) and exit.
    #[arg(long)]
    manifest: bool,
}

/// The exit code: 0 when tenantry caught every flaw and raised no false
/// alarm on the clean stack, 1 otherwise (2: could not run).
#[cfg(not(feature = "inject"))]
pub async fn run(_args: ScoreArgs) -> anyhow::Result<u8> {
    anyhow::bail!(
        "this tenantry was built without the flaw corpus; build it with `cargo build --features inject` to score"
    )
}

/// The exit code: 0 when tenantry caught every flaw and raised no false
/// alarm on the clean stack, 1 otherwise (2: could not run).
#[cfg(feature = "inject")]
pub async fn run(args: ScoreArgs) -> anyhow::Result<u8> {
    corpus::run(args).await
}
