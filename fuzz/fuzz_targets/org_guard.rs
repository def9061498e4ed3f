//! Request parts -> the org guard refuses exactly when the reference model
//! does (some org identifier in the path, query, a header, a cookie, a JSON
//! or form body names anything but the active org), at the same position;
//! on raw parts it never panics and a foreign `org_id` appended to the query
//! is always refused.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tenantry_fuzz::org::{Raw, Request, ACTIVE};
use tenantry_reference::proxy::org_guard::{check, RequestParts};

#[derive(Debug, Arbitrary)]
enum Input<'a> {
    Structured(Request),
    Raw(Raw<'a>),
}

fuzz_target!(|input: Input<'_>| match input {
    Input::Structured(request) => {
        let wire = request.wire();
        assert_eq!(check(&wire.parts(), &ACTIVE), request.verdict(), "{wire:?}");
    }
    Input::Raw(raw) => {
        let mut parts = RequestParts {
            path: raw.path,
            query: raw.query,
            headers: raw.headers,
            cookies: raw.cookies,
            body: Some((raw.content_type, raw.body)),
        };
        let _ = check(&parts, &ACTIVE);
        let query = format!("{}&org_id=org_other", raw.query.unwrap_or_default());
        parts.query = Some(&query);
        assert!(
            check(&parts, &ACTIVE).is_err(),
            "a foreign org in the query got through: {parts:?}"
        );
    }
});
