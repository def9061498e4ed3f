//! `tenantry bench`: the same load against one or more targets (profiles,
//! running reference servers, or reference stacks started per isolation
//! mode), one after another, side by side.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use tenantry_harness::audit;
use tenantry_harness::bench::{self, BenchConfig, BenchReport, Progress, RateLimitCheck};
use tenantry_harness::profile::Profile;
use tenantry_reference::config::Isolation;

use crate::reference_stack::{self, ORIGIN};
use crate::target::UrlTargetArgs;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// A target: a profile file (TOML; see docs/profiles.md), or the base URL of a running
    /// reference server (with --secret-key). Repeatable: each is a column.
    #[arg(long = "target", value_name = "PROFILE|URL")]
    targets: Vec<String>,
    /// Start the reference stack with this database.isolation and measure it as a column:
    /// both, app-filter-only or rls-only. Repeatable. Without --target or --reference: one
    /// reference stack (both).
    #[arg(
        long = "reference",
        value_name = "MODE",
        value_parser = clap::builder::PossibleValuesParser::new(["both", "app-filter-only", "rls-only"])
    )]
    references: Vec<String>,
    #[command(flatten)]
    url: UrlTargetArgs,
    /// Requests in flight (closed-loop workers).
    #[arg(short = 'c', long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
    /// Measured time per target (e.g. 10s, 500ms, 1m).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = positive_duration)]
    duration: Duration,
    /// Unmeasured load before the measured time, per target (0s: none).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Only these endpoints: comma-separated names or globs (e.g. `projects.*,*.list`).
    /// Endpoints are `<resource>.list`, `<resource>.read` and `<resource>.search`.
    #[arg(long, value_name = "SELECTORS")]
    endpoints: Option<String>,
    /// Seed of the request mix (printed on every run; the same seed sends the same mix).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Orgs the load is spread over (one admin user each).
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    orgs: u16,
    /// Items created per resource type and org.
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u16).range(1..=100))]
    items: u16,
    /// 429 accuracy of the profile's rate-limit policies: auto (when each takes at most
    /// 30 s), on, or off.
    #[arg(long, value_name = "WHEN", default_value = "auto",
          value_parser = clap::builder::PossibleValuesParser::new(["auto", "on", "off"]))]
    rate_limit_check: String,
    /// Whole windows each 429 accuracy phase drives.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    rate_limit_windows: u32,
    /// Compare the harness client with wrk (Debian package `wrk`) on one GET endpoint of
    /// the first target: same token, concurrency and duration.
    #[arg(long)]
    compare_wrk: bool,
    /// Write the JSON report (schema tenantry.bench/1) here (`-`: standard output, the
    /// table then goes to standard error).
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
    /// Write an SVG chart of each target's latency by percentile here.
    #[arg(long, value_name = "FILE.svg")]
    chart: Option<PathBuf>,
    /// Write the table as Markdown here.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
}

/// `500ms`, `3s`, `2m`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let parsed = if let Some(n) = t.strip_suffix("ms") {
        n.trim().parse::<u64>().ok().map(Duration::from_millis)
    } else if let Some(n) = t.strip_suffix('s') {
        n.trim().parse::<u64>().ok().map(Duration::from_secs)
    } else if let Some(n) = t.strip_suffix('m') {
        n.trim().parse::<u64>().ok().map(|m| Duration::from_secs(m * 60))
    } else {
        t.parse::<u64>().ok().map(Duration::from_secs)
    };
    match parsed {
        Some(d) if d <= Duration::from_secs(3600) => Ok(d),
        Some(_) => Err(format!("`{text}` is longer than an hour")),
        None => Err(format!(
            "`{text}` is not a duration; expected whole milliseconds, seconds or minutes, e.g. 500ms, 10s, 1m"
        )),
    }
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err(format!("`{text}`: expected more than zero")),
        d => Ok(d),
    }
}

/// A column to measure.
enum Column {
    Profile(Box<Profile>),
    Reference(Isolation),
}

pub async fn run(args: BenchArgs) -> anyhow::Result<u8> {
    // Everything that can be wrong with the input, before anything starts.
    let wrk = if args.compare_wrk {
        Some(bench::wrk::find().context(
            "--compare-wrk needs wrk, which is not on PATH; install it with `apt-get install wrk`",
        )?)
    } else {
        None
    };
    let mut columns = Vec::new();
    for target in &args.targets {
        columns.push(Column::Profile(Box::new(args.url.profile(target)?)));
    }
    for mode in &args.references {
        columns.push(Column::Reference(
            mode.parse::<Isolation>().map_err(anyhow::Error::msg)?,
        ));
    }
    if columns.is_empty() {
        columns.push(Column::Reference(Isolation::Both));
    }
    // An `--endpoints` selector that matches nothing is refused before any
    // stack starts (the reference profile's endpoints do not depend on it).
    let reference = Profile::reference("http://127.0.0.1:1", "sk_test_check", ORIGIN);
    for column in &columns {
        let profile = match column {
            Column::Profile(p) => p.as_ref(),
            Column::Reference(_) => &reference,
        };
        bench::plan::select(
            &bench::plan::endpoint_names(profile),
            args.endpoints.as_deref().unwrap_or_default(),
        )?;
    }
    let seed = args.seed.unwrap_or_else(audit::random_seed);
    let config = BenchConfig {
        concurrency: usize::from(args.concurrency),
        duration: args.duration,
        warmup: args.warmup,
        seed,
        endpoints: args.endpoints.clone().unwrap_or_default(),
        orgs: usize::from(args.orgs),
        items: usize::from(args.items),
        rate_limit: match args.rate_limit_check.as_str() {
            "on" => RateLimitCheck::On,
            "off" => RateLimitCheck::Off,
            _ => RateLimitCheck::Auto,
        },
        rate_limit_windows: args.rate_limit_windows,
        ..BenchConfig::default()
    };
    eprintln!(
        "bench: {} target(s), {} workers, {} ms measured after {} ms warm-up each, seed {seed} (repeat with --seed {seed})",
        columns.len(),
        config.concurrency,
        config.duration.as_millis(),
        config.warmup.as_millis()
    );
    let mut report = BenchReport {
        config: config.clone(),
        targets: Vec::new(),
    };
    let mut names: Vec<String> = Vec::new();
    for (i, column) in columns.into_iter().enumerate() {
        let wrk = if i == 0 { wrk.as_deref() } else { None };
        let mut bar = BenchProgress::new();
        let result = match column {
            Column::Profile(profile) => {
                let name = unique(&mut names, profile.name.clone());
                bench::run_target(&name, &profile, &config, wrk, &mut |p| bar.update(p)).await
            }
            Column::Reference(isolation) => {
                let name = unique(&mut names, format!("reference ({isolation})"));
                let stack = reference_stack::start(&[], isolation).await?;
                let result =
                    bench::run_target(&name, &stack.profile(), &config, wrk, &mut |p| bar.update(p)).await;
                stack.stop().await;
                result
            }
        };
        bar.finish();
        report.targets.push(result?);
    }
    let table = report.table();
    if args.json.as_deref() == Some("-") {
        eprint!("{table}");
    } else {
        print!("{table}");
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.to_json())?;
        if path == "-" {
            println!("{text}");
        } else {
            std::fs::write(path, text + "\n").with_context(|| format!("writing {path}"))?;
        }
    }
    if let Some(path) = &args.chart {
        std::fs::write(path, report.svg()).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.markdown {
        std::fs::write(path, report.markdown()).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(0)
}

/// `name`, or `name #2`, … when taken.
fn unique(names: &mut Vec<String>, name: String) -> String {
    let mut candidate = name.clone();
    let mut n = 2;
    while names.contains(&candidate) {
        candidate = format!("{name} #{n}");
        n += 1;
    }
    names.push(candidate.clone());
    candidate
}

/// A bar per phase on a terminal; one line per phase otherwise.
struct BenchProgress {
    bar: Option<indicatif::ProgressBar>,
    tty: bool,
    phase: Option<(String, &'static str, Instant)>,
}

impl BenchProgress {
    fn new() -> Self {
        Self {
            bar: None,
            tty: std::io::stderr().is_terminal(),
            phase: None,
        }
    }

    fn update(&mut self, p: &Progress) {
        let same = matches!(&self.phase, Some((t, ph, _)) if *t == p.target && *ph == p.phase);
        if !same {
            self.finish();
            self.phase = Some((p.target.clone(), p.phase, Instant::now()));
            if self.tty {
                let bar = indicatif::ProgressBar::new(p.total.as_millis().max(1) as u64);
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
                bar.set_prefix(format!("{}: {}", p.target, p.phase));
                self.bar = Some(bar);
            } else {
                let length = if p.total.is_zero() {
                    String::new()
                } else {
                    format!(" ({} ms)", p.total.as_millis())
                };
                eprintln!("bench: {}: {}{length} ...", p.target, p.phase);
            }
        }
        if let (Some(bar), Some((_, _, started))) = (&self.bar, &self.phase) {
            bar.set_position(started.elapsed().as_millis().min(u128::from(u64::MAX)) as u64);
            bar.set_message(format!("{} requests", p.requests));
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_or_say_what_is_expected() {
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").unwrap_err().contains("not a duration"));
        assert!(positive_duration("0s").unwrap_err().contains("more than zero"));
        assert!(parse_duration("2h").is_err());
    }

    #[test]
    fn column_names_are_unique() {
        let mut names = Vec::new();
        assert_eq!(unique(&mut names, "a".into()), "a");
        assert_eq!(unique(&mut names, "a".into()), "a #2");
    }
}
