//! Arbitrary bytes as a token: the verifier never panics, and accepts only
//! what the reference model accepts — RS256 under the test key (checked
//! independently of the key ring), no key-carrying headers, and valid claims
//! — returning exactly the claims the payload carries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenantry_fuzz::token::{model, setup, NOW};
use tenantry_reference::identity::token::SessionClaims;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(claims) = setup().verifier.verify(token, NOW) {
        let payload =
            model(token).unwrap_or_else(|why| panic!("accepted what the model refuses ({why}): {token}"));
        let carried: Option<SessionClaims> = serde_json::from_value(payload.into()).ok();
        assert_eq!(Some(claims), carried, "claims other than the payload's: {token}");
    }
});
