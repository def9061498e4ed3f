//! Arbitrary bytes as a token: the verifier never panics, and anything it
//! accepts also verifies independently (RS256 under the test key) and carries
//! the expected issuer.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tenantry_reference::identity::keys::KeyRing;
use tenantry_reference::identity::token::{Verifier, VerifierConfig};

const NOW: i64 = 1_800_000_000;
const ISSUER: &str = "https://clerk.tenantry.fuzz";

fn setup() -> &'static (Arc<KeyRing>, Verifier) {
    static SETUP: OnceLock<(Arc<KeyRing>, Verifier)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let ring = Arc::new(KeyRing::new(Duration::from_secs(3600)).expect("a key"));
        let verifier = Verifier::new(
            Arc::clone(&ring),
            VerifierConfig { issuer: ISSUER.into(), authorized_parties: vec![], leeway_secs: 5 },
        );
        (ring, verifier)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let (ring, verifier) = setup();
    if let Ok(claims) = verifier.verify(token, NOW) {
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let independent = jsonwebtoken::decode::<serde_json::Value>(token, ring.active().decoding_key(), &validation);
        assert!(independent.is_ok(), "accepted a token that does not verify: {token}");
        assert_eq!(claims.iss, ISSUER);
    }
});
