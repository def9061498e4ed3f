//! The leak oracle's scanning throughput (bytes/s) with 10 000 registered
//! canaries (100 orgs x 100), on response-like JSON bodies: a list page of
//! 20 projects (about 6 KB) and of 500 (about 150 KB), each
//! - `no_needles`: no registered string at all;
//! - `own_canaries`: every item carries one of the active org's canaries
//!   (matches the oracle must find and then clear);
//! - `foreign_hits`: as `own_canaries`, with 3 items carrying another org's
//!   canary (3 leaks).
//!
//! The baseline (`naive_contains`) is what one would write without the
//! automaton: `str::contains` for each of the 10 000 canaries, then the
//! owner check. Both must report the same leaks. The naive loop runs on the
//! 20-item pages only (on 150 KB it takes about a second per body).
//!
//! `scripts/bench-ratios oracle` prints the automaton's throughput as a ratio
//! of the naive loop's. `cargo bench -p tenantry-benches --bench oracle`

use std::collections::BTreeSet;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tenantry_harness::oracle::{CanarySource, NeedleKind, Oracle};

const ORGS: usize = 100;
const CANARIES_PER_ORG: usize = 100;
const ACTIVE: &str = "org_000";
const FOREIGN_HITS: usize = 3;

fn org(i: usize) -> String {
    format!("org_{i:03}")
}

/// `(canary, org)` for every registered canary; the active org's are first.
fn canaries() -> Vec<(String, String)> {
    let mut source = CanarySource::new(0x5eed_0a11);
    (0..ORGS)
        .flat_map(|o| (0..CANARIES_PER_ORG).map(move |_| o))
        .map(|o| (source.canary(), org(o)))
        .collect()
}

#[derive(Clone, Copy)]
enum Kind {
    NoNeedles,
    OwnCanaries,
    ForeignHits,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::NoNeedles => "no_needles",
            Kind::OwnCanaries => "own_canaries",
            Kind::ForeignHits => "foreign_hits",
        }
    }
}

/// Whether item `i` of `items` carries a foreign canary: items 1, 1 + step
/// and 1 + 2 step, spread over the page.
fn foreign_slot(i: usize, items: usize) -> bool {
    let step = (items / FOREIGN_HITS).max(2);
    i % step == 1 && i / step < FOREIGN_HITS
}

/// A `GET /api/projects`-like page of `items` projects.
fn body(items: usize, kind: Kind, canaries: &[(String, String)]) -> String {
    let own: Vec<&str> = canaries
        .iter()
        .filter(|(_, o)| o == ACTIVE)
        .map(|(c, _)| c.as_str())
        .collect();
    let foreign: Vec<&str> = canaries
        .iter()
        .filter(|(_, o)| o != ACTIVE)
        .map(|(c, _)| c.as_str())
        .collect();
    let mut out = String::from(r#"{"data":["#);
    for i in 0..items {
        let name = match kind {
            Kind::NoNeedles => format!("project number {i:05} of the bench"),
            Kind::ForeignHits if foreign_slot(i, items) => {
                format!("quarterly plan {}", foreign[(i * 37) % foreign.len()])
            }
            _ => format!("quarterly plan {}", own[i % own.len()]),
        };
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            r#"{{"id":"prj_01jd{i:022}","name":"{name}","description":"Notes for the team about milestones, owners and the review schedule of item {i}.","created_by":"user_2pq8bench{i:06}","created_at":"2026-11-28T12:{m:02}:00Z","updated_at":"2026-11-28T13:{m:02}:00Z"}}"#,
            m = i % 60
        ));
    }
    out.push_str(r#"],"next_cursor":"prj_01jd0000000000000000000099"}"#);
    out
}

/// The baseline: one `str::contains` per registered canary.
fn naive(canaries: &[(String, String)], active: &str, text: &str) -> BTreeSet<String> {
    canaries
        .iter()
        .filter(|(needle, owner)| owner != active && text.contains(needle.as_str()))
        .map(|(needle, _)| needle.clone())
        .collect()
}

fn leaks(oracle: &mut Oracle, text: &str) -> BTreeSet<String> {
    oracle
        .scan(ACTIVE, text.as_bytes())
        .into_iter()
        .map(|leak| leak.needle)
        .collect()
}

fn bench(c: &mut Criterion) {
    let canaries = canaries();
    let mut oracle = Oracle::new();
    for (i, (canary, org)) in canaries.iter().enumerate() {
        oracle
            .register(canary, org, NeedleKind::Canary, &format!("prj_{i}"))
            .expect("seeded canaries are long and distinct");
    }
    assert_eq!(oracle.len(), ORGS * CANARIES_PER_ORG);

    let mut group = c.benchmark_group("oracle_scan");
    for items in [20usize, 500] {
        for kind in [Kind::NoNeedles, Kind::OwnCanaries, Kind::ForeignHits] {
            let text = body(items, kind, &canaries);
            let expected = match kind {
                Kind::ForeignHits => FOREIGN_HITS,
                _ => 0,
            };
            // Both scanners must agree on the leaks, or the comparison is void
            // (this also builds the automaton before timing).
            let found = leaks(&mut oracle, &text);
            assert_eq!(found.len(), expected, "{} {items}", kind.name());
            if items <= 20 {
                assert_eq!(found, naive(&canaries, ACTIVE, &text));
            }
            let param = format!("{}_{items}", kind.name());
            group.throughput(Throughput::Bytes(text.len() as u64));
            group.bench_function(BenchmarkId::new("aho_corasick", &param), |b| {
                b.iter(|| oracle.scan(ACTIVE, text.as_bytes()))
            });
            if items <= 20 {
                group.sample_size(10);
                group.bench_function(BenchmarkId::new("naive_contains", &param), |b| {
                    b.iter(|| naive(&canaries, ACTIVE, &text))
                });
                group.sample_size(100);
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
