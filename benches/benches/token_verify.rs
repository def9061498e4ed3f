//! Session-token work on one thread, all with jsonwebtoken's aws_lc_rs backend
//! (the rust_crypto backend is about 12x slower on RS256; do not use it).
//!
//! - `token`: the reference verifier (RS256, RSA-2048, key cached in the ring):
//!   a full verification, a refusal on the header alone (`alg: none`), minting.
//! - `token_alg`: the signature check alone — `jsonwebtoken::decode` of the same
//!   claims signed with RS256 (RSA-2048, the baseline), ES256 (P-256) and EdDSA
//!   (Ed25519), keys generated in-process — and signing with each.
//! - `token_jwks`: key lookup by `kid` in the reference key ring
//!   (`identity::keys::KeyRing`: the active key, then retired keys within the
//!   overlap) holding 1, 4 or 16 keys, for the active key and for the oldest
//!   retired one (the last probed), and a full verification of a token signed
//!   by that oldest key (baseline: the ring of 1).
//!
//! `scripts/bench-ratios token_verify` prints each against its baseline.
//! `cargo bench -p tenantry-benches --bench token_verify`

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::Value;
use tenantry_reference::identity::keys::{KeyRing, SigningKey};
use tenantry_reference::identity::token::{mint, SessionClaims, Verifier, VerifierConfig};

const ISSUER: &str = "https://clerk.tenantry.test";
const PARTY: &str = "http://localhost:3000";
const RING_SIZES: [usize; 3] = [1, 4, 16];

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn claims(now: i64) -> SessionClaims {
    SessionClaims::session(ISSUER, "user_bench", "sess_bench", now, 3600)
        .in_org(
            "org_bench",
            "bench",
            "org:admin",
            &["org:projects:read".into(), "org:projects:write".into()],
        )
        .expect("a valid org claim")
        .for_party(PARTY)
}

fn verifier(ring: Arc<KeyRing>) -> Verifier {
    Verifier::new(
        ring,
        VerifierConfig {
            issuer: ISSUER.into(),
            authorized_parties: vec![PARTY.into()],
            leeway_secs: 5,
        },
    )
}

/// One algorithm's keys, as jsonwebtoken takes them.
struct AlgKeys {
    name: &'static str,
    alg: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// RSA-2048 (from the reference's key type), P-256 and Ed25519, made in-process.
fn alg_keys(rsa: &SigningKey) -> Vec<AlgKeys> {
    let es = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("a P-256 key");
    let es_pkcs8 = es.to_pkcs8v1().expect("P-256 key as PKCS#8");
    let ed = Ed25519KeyPair::generate().expect("an Ed25519 key");
    let ed_pkcs8 = ed.to_pkcs8().expect("Ed25519 key as PKCS#8");
    vec![
        AlgKeys {
            name: "rs256",
            alg: Algorithm::RS256,
            encoding: rsa.encoding_key().clone(),
            decoding: rsa.decoding_key().clone(),
        },
        AlgKeys {
            name: "es256",
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(es_pkcs8.as_ref()),
            // The aws_lc_rs backend verifies against the uncompressed point.
            decoding: DecodingKey::from_ec_der(es.public_key().as_ref()),
        },
        AlgKeys {
            name: "eddsa",
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(ed_pkcs8.as_ref()),
            decoding: DecodingKey::from_ed_der(ed.public_key().as_ref()),
        },
    ]
}

/// The signature check only, as the reference verifier configures it (the
/// claims are checked separately there).
fn validation(alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation
}

fn sign(keys: &AlgKeys, claims: &SessionClaims) -> String {
    let mut header = Header::new(keys.alg);
    header.kid = Some(format!("kid_{}", keys.name));
    header.typ = Some("JWT".into());
    jsonwebtoken::encode(&header, claims, &keys.encoding).expect("signing with a fresh key")
}

fn decode(token: &str, keys: &AlgKeys, validation: &Validation) -> Value {
    jsonwebtoken::decode::<Value>(token, &keys.decoding, validation)
        .expect("the token verifies")
        .claims
}

fn bench_reference_verifier(c: &mut Criterion, now: i64) {
    let ring = Arc::new(KeyRing::new(Duration::from_secs(3600)).expect("an RSA key"));
    let verifier = verifier(Arc::clone(&ring));
    let claims = claims(now);
    let token = mint(&ring.active(), &claims).expect("minting");
    assert!(verifier.verify(&token, now).is_ok());
    let mut parts: Vec<&str> = token.split('.').collect();
    let none_header = "eyJhbGciOiJub25lIn0"; // {"alg":"none"}
    parts[0] = none_header;
    let alg_none = parts.join(".");
    assert!(verifier.verify(&alg_none, now).is_err());

    let mut group = c.benchmark_group("token");
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify_rs256_cached_key", |b| {
        b.iter(|| verifier.verify(&token, now).expect("verifies"))
    });
    group.bench_function("refuse_alg_none", |b| {
        b.iter(|| verifier.verify(&alg_none, now).expect_err("refused"))
    });
    group.bench_function("mint_rs256", |b| {
        b.iter(|| mint(&ring.active(), &claims).expect("minting"))
    });
    group.finish();
}

fn bench_algorithms(c: &mut Criterion, now: i64) {
    let rsa = SigningKey::generate().expect("an RSA key");
    let keys = alg_keys(&rsa);
    let claims = claims(now);
    let tokens: Vec<(String, Validation)> = keys
        .iter()
        .map(|k| (sign(k, &claims), validation(k.alg)))
        .collect();
    // Every algorithm verifies the same claims, and a token of one algorithm
    // never verifies with another's key — or the comparison is void.
    let expected = serde_json::to_value(&claims).expect("claims as JSON");
    for (k, (token, validation)) in keys.iter().zip(&tokens) {
        assert_eq!(decode(token, k, validation), expected, "{}", k.name);
        for (other, (other_token, _)) in keys.iter().zip(&tokens) {
            if other.name != k.name {
                assert!(
                    jsonwebtoken::decode::<Value>(other_token, &k.decoding, validation).is_err(),
                    "{} token accepted by the {} key",
                    other.name,
                    k.name
                );
            }
        }
    }

    let mut group = c.benchmark_group("token_alg");
    group.throughput(Throughput::Elements(1));
    for (k, (token, validation)) in keys.iter().zip(&tokens) {
        group.bench_function(BenchmarkId::new("verify", k.name), |b| {
            b.iter(|| decode(token, k, validation))
        });
    }
    for k in &keys {
        group.bench_function(BenchmarkId::new("sign", k.name), |b| b.iter(|| sign(k, &claims)));
    }
    group.finish();
}

fn bench_jwks(c: &mut Criterion, now: i64) {
    let overlap = Duration::from_secs(3600);
    let largest = RING_SIZES.iter().copied().max().unwrap_or(1);
    // Generated once; each ring takes the first `n` (PKCS#8 copies, same kids).
    let generated: Vec<SigningKey> = (0..largest)
        .map(|_| SigningKey::generate().expect("an RSA key"))
        .collect();
    let copy = |key: &SigningKey| {
        SigningKey::from_pkcs8(key.kid().to_string(), key.pkcs8_der()).expect("the key reloads")
    };
    let claims = claims(now);

    let mut group = c.benchmark_group("token_jwks");
    group.throughput(Throughput::Elements(1));
    for n in RING_SIZES {
        // The active key is generated[0]; retired keys follow, the oldest last.
        let retired = generated[1..n]
            .iter()
            .enumerate()
            .map(|(i, key)| (copy(key), Duration::from_secs(10 * (i as u64 + 1))))
            .collect();
        let ring = Arc::new(KeyRing::from_parts(copy(&generated[0]), retired, overlap));
        assert_eq!(
            ring.jwks()["keys"].as_array().map(Vec::len),
            Some(n),
            "the ring publishes {n} keys"
        );
        let active_kid = generated[0].kid().to_string();
        let oldest_kid = generated[n - 1].kid().to_string();
        let oldest = ring
            .find(&oldest_kid)
            .expect("the oldest key is within the overlap");
        let token = mint(&oldest, &claims).expect("minting");
        let verifier = verifier(Arc::clone(&ring));
        assert!(verifier.verify(&token, now).is_ok());
        assert!(ring.find("key_not_in_the_ring").is_none());

        group.bench_function(BenchmarkId::new("find_active", n), |b| {
            b.iter(|| ring.find(&active_kid).expect("found"))
        });
        group.bench_function(BenchmarkId::new("find_oldest", n), |b| {
            b.iter(|| ring.find(&oldest_kid).expect("found"))
        });
        group.bench_function(BenchmarkId::new("find_unknown", n), |b| {
            b.iter(|| ring.find("key_not_in_the_ring").is_none())
        });
        group.bench_function(BenchmarkId::new("verify_oldest", n), |b| {
            b.iter(|| verifier.verify(&token, now).expect("verifies"))
        });
    }
    group.finish();
}

fn bench(c: &mut Criterion) {
    let now = now();
    bench_reference_verifier(c, now);
    bench_algorithms(c, now);
    bench_jwks(c, now);
}

criterion_group!(benches, bench);
criterion_main!(benches);
