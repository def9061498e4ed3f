//! Our session-token verifier on ONE thread, for the peer comparison with
//! jose `jwtVerify` and `@clerk/backend` `verifyToken`
//! (`benches/peers/jose-verify.mjs`, `benches/peers/clerk-verify.mjs`).
//!
//! Mints a real Clerk v2 session token the way the reference server does
//! (RSA-2048 key ring, `mint`), writes what the Node peers need to verify the
//! very same token into `--out DIR`, checks that the strict `Verifier`
//! accepts it and refuses a tampered copy, then verifies it in a loop for
//! `--seconds S` with the key cached in the ring and prints one JSON line:
//! `{"name":"tenantry-verifier","threads":1,"verifications_per_s":..}`.
//!
//! Files written to DIR: `token.jwt`, `tampered.jwt` (the payload's org role
//! changed to `owner`, signature kept), `public.pem` (SPKI, as Clerk's
//! `jwtKey`), `jwks.json`, `expect.json` (`{issuer, authorized_parties, kid}`).
//!
//! `cargo run --release -p tenantry-benches --example verify_load -- --out DIR --seconds 5`
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tenantry_reference::identity::keys::KeyRing;
use tenantry_reference::identity::token::{mint, SessionClaims, Verifier, VerifierConfig};

const ISSUER: &str = "https://clerk.tenantry.test";
const AUTHORIZED_PARTY: &str = "http://localhost:3000";
/// Production tokens live 60 s; this one must outlive the whole comparison
/// run (the peers check `exp` too), so it lives an hour.
const LIFETIME_SECS: i64 = 3600;

const USAGE: &str = "usage: verify_load --out DIR [--seconds S (default 5)]";

#[derive(Debug)]
struct Args {
    out: PathBuf,
    seconds: f64,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut out = None;
    let mut seconds = 5.0;
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value; {USAGE}"))
        };
        match flag.as_str() {
            "--out" => out = Some(PathBuf::from(value()?)),
            "--seconds" => {
                let text = value()?;
                seconds = text
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
                    .ok_or_else(|| {
                        format!("--seconds: expected a number of seconds in (0, 3600], got `{text}`")
                    })?;
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}`; {USAGE}")),
        }
    }
    let out = out.ok_or_else(|| format!("--out DIR is required; {USAGE}"))?;
    Ok(Args { out, seconds })
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The token with its payload's org role changed to `owner` and the
/// signature kept: what every verifier in the comparison must refuse. Built
/// by signing the changed claims and splicing the original signature onto
/// the new header and payload.
fn tampered(
    key: &tenantry_reference::identity::keys::SigningKey,
    claims: &SessionClaims,
    token: &str,
) -> Result<String, String> {
    let mut changed = claims.clone();
    let org = changed
        .o
        .as_mut()
        .ok_or("the minted claims have no active org to tamper with")?;
    org.rol = "owner".into();
    let forged = mint(key, &changed).map_err(|e| format!("minting the tampered claims: {e}"))?;
    let (Some((signed, _)), Some((_, signature))) = (forged.rsplit_once('.'), token.rsplit_once('.')) else {
        return Err("a minted token is not three parts".into());
    };
    Ok(format!("{signed}.{signature}"))
}

/// The reference verifier as the proxy configures it (issuer, azp allow-list,
/// 5 s leeway) over `ring`.
fn verifier(ring: &Arc<KeyRing>) -> Verifier {
    Verifier::new(
        Arc::clone(ring),
        VerifierConfig {
            issuer: ISSUER.into(),
            authorized_parties: vec![AUTHORIZED_PARTY.into()],
            leeway_secs: 5,
        },
    )
}

fn run(args: Args) -> Result<(), String> {
    let ring =
        Arc::new(KeyRing::new(Duration::from_secs(3600)).map_err(|e| format!("generating the key: {e}"))?);
    let verifier = verifier(&ring);
    let claims = SessionClaims::session(ISSUER, "user_bench", "sess_bench", now_secs(), LIFETIME_SECS)
        .in_org(
            "org_bench",
            "bench",
            "org:admin",
            &["org:projects:read".into(), "org:projects:write".into()],
        )
        .map_err(|e| format!("encoding the org permissions: {e}"))?
        .for_party(AUTHORIZED_PARTY);
    let key = ring.active();
    let token = mint(&key, &claims).map_err(|e| format!("minting: {e}"))?;
    let tampered = tampered(&key, &claims, &token)?;

    // The peers verify exactly this token with exactly this public key.
    let expect = format!(
        "{{\"issuer\":\"{ISSUER}\",\"authorized_parties\":[\"{AUTHORIZED_PARTY}\"],\"kid\":\"{}\"}}\n",
        key.kid()
    );
    std::fs::create_dir_all(&args.out).map_err(|e| format!("creating {}: {e}", args.out.display()))?;
    for (name, text) in [
        ("token.jwt", format!("{token}\n")),
        ("tampered.jwt", format!("{tampered}\n")),
        ("public.pem", key.public_pem().to_string()),
        ("jwks.json", format!("{}\n", ring.jwks())),
        ("expect.json", expect),
    ] {
        let path = args.out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }

    // A verifier that accepts everything must not win the comparison.
    verifier
        .verify(&token, now_secs())
        .map_err(|e| format!("our verifier refused the real token: {e}"))?;
    match verifier.verify(&tampered, now_secs()) {
        Err(tenantry_reference::identity::token::TokenRejected::BadSignature) => {}
        Err(other) => {
            return Err(format!(
                "the tampered token was refused for the wrong reason: {other}"
            ))
        }
        Ok(_) => return Err("our verifier ACCEPTED the tampered token".into()),
    }

    // Warm up, then verify for the whole duration on this one thread.
    let warm_until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < warm_until {
        std::hint::black_box(verifier.verify(std::hint::black_box(&token), now_secs()))
            .map_err(|e| format!("verification failed during warm-up: {e}"))?;
    }
    let duration = Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let mut verifications: u64 = 0;
    let elapsed = loop {
        for _ in 0..64 {
            std::hint::black_box(verifier.verify(std::hint::black_box(&token), now_secs()))
                .map_err(|e| format!("verification failed during the run: {e}"))?;
        }
        verifications += 64;
        let elapsed = started.elapsed();
        if elapsed >= duration {
            break elapsed;
        }
    };
    let per_s = verifications as f64 / elapsed.as_secs_f64();
    println!(
        "{{\"name\":\"tenantry-verifier\",\"threads\":1,\"verifications_per_s\":{per_s:.1},\"verifications\":{verifications},\"seconds\":{:.3}}}",
        elapsed.as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)).and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("verify_load: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenantry_reference::identity::token::TokenRejected;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse_args(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn flags_are_checked() {
        assert!(args(&[]).unwrap_err().contains("--out DIR is required"));
        assert!(args(&["--out"]).unwrap_err().contains("needs a value"));
        assert!(args(&["--out", "d", "--seconds", "0"]).is_err());
        assert!(args(&["--out", "d", "--seconds", "nan"]).is_err());
        assert!(args(&["--out", "d", "--bogus"])
            .unwrap_err()
            .contains("unknown argument"));
        let ok = args(&["--out", "d", "--seconds", "0.5"]).unwrap();
        assert_eq!((ok.out, ok.seconds), (PathBuf::from("d"), 0.5));
    }

    #[test]
    fn the_tampered_token_keeps_the_signature_and_is_refused() {
        let ring = Arc::new(KeyRing::new(Duration::from_secs(60)).unwrap());
        let verifier = verifier(&ring);
        let now = now_secs();
        let claims = SessionClaims::session(ISSUER, "user_t", "sess_t", now, 60)
            .in_org("org_t", "t", "org:admin", &[])
            .unwrap()
            .for_party(AUTHORIZED_PARTY);
        let key = ring.active();
        let token = mint(&key, &claims).unwrap();
        let forged = tampered(&key, &claims, &token).unwrap();
        assert_ne!(forged, token);
        assert_eq!(
            forged.rsplit_once('.').unwrap().1,
            token.rsplit_once('.').unwrap().1
        );
        assert_eq!(verifier.verify(&token, now).unwrap().o.unwrap().rol, "admin");
        assert_eq!(
            verifier.verify(&forged, now).unwrap_err(),
            TokenRejected::BadSignature
        );
        let personal = SessionClaims::session(ISSUER, "user_t", "sess_t", now, 60);
        assert!(
            tampered(&key, &personal, &token).is_err(),
            "no org: nothing to tamper with"
        );
    }
}
