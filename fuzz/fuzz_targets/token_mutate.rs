//! The valid token with structure-aware mutations of its header, payload,
//! encoding and signature: accepted only if the reference model accepts it,
//! and — unless the test key itself re-signed it — only with the original
//! claims. Tokens signed by another key or with HMAC are never accepted; with
//! the header untouched and no duplicate claim keys (which the verifier may
//! refuse), what the model accepts is accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenantry_fuzz::mutate::Mutation;
use tenantry_fuzz::token::{model, setup, valid_claims, NOW};
use tenantry_reference::identity::token::SessionClaims;

fuzz_target!(|mutation: Mutation| {
    let (token, resigned) = mutation.apply();
    match (setup().verifier.verify(&token, NOW), model(&token)) {
        (Ok(claims), Ok(_)) if !resigned => {
            assert_eq!(claims, valid_claims(), "claims changed: {mutation:?}")
        }
        (Ok(_), Err(why)) => panic!("accepted what the model refuses ({why}): {mutation:?}"),
        (Err(e), Ok(payload)) if mutation.header.is_empty() && !mutation.duplicates_claims() => {
            let typed = serde_json::from_value::<SessionClaims>(payload.into());
            assert!(typed.is_err(), "refused ({e:?}) valid claims: {mutation:?}");
        }
        _ => {}
    }
});
