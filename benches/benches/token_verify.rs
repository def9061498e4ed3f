//! Session-token verification with the key cached in the ring (RS256,
//! RSA-2048, aws-lc-rs), against signing and against a refusal on the header
//! alone (alg not allowed), which must cost almost nothing.
//!
//! `cargo bench -p tenantry-benches --bench token_verify`

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tenantry_reference::identity::keys::KeyRing;
use tenantry_reference::identity::token::{mint, SessionClaims, Verifier, VerifierConfig};

fn bench(c: &mut Criterion) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let ring = Arc::new(KeyRing::new(Duration::from_secs(3600)).unwrap());
    let verifier = Verifier::new(
        Arc::clone(&ring),
        VerifierConfig {
            issuer: "https://clerk.tenantry.test".into(),
            authorized_parties: vec!["http://localhost:3000".into()],
            leeway_secs: 5,
        },
    );
    let claims = SessionClaims::session(
        "https://clerk.tenantry.test",
        "user_bench",
        "sess_bench",
        now,
        3600,
    )
    .in_org(
        "org_bench",
        "bench",
        "org:admin",
        &["org:projects:read".into(), "org:projects:write".into()],
    )
    .unwrap()
    .for_party("http://localhost:3000");
    let token = mint(&ring.active(), &claims).unwrap();
    assert!(verifier.verify(&token, now).is_ok());
    let mut parts: Vec<&str> = token.split('.').collect();
    let none_header = "eyJhbGciOiJub25lIn0"; // {"alg":"none"}
    parts[0] = none_header;
    let alg_none = parts.join(".");
    assert!(verifier.verify(&alg_none, now).is_err());

    let mut group = c.benchmark_group("token");
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify_rs256_cached_key", |b| {
        b.iter(|| verifier.verify(&token, now).unwrap())
    });
    group.bench_function("refuse_alg_none", |b| {
        b.iter(|| verifier.verify(&alg_none, now).unwrap_err())
    });
    group.bench_function("mint_rs256", |b| {
        b.iter(|| mint(&ring.active(), &claims).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
