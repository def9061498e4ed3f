//! Arbitrary text as a target profile: the parser never panics, and every
//! error it returns points into the file (line and column >= 1, the line
//! within the text).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenantry_harness::profile::Profile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `${NAME}` resolves for names starting with `SET`, so both paths run.
    let env = |name: &str| name.starts_with("SET").then(|| format!("value-of-{name}"));
    if let Err(e) = Profile::parse("fuzz.toml", text, &env) {
        assert!(e.line >= 1 && e.column >= 1, "no position: {e:?}");
        assert!(
            e.line <= text.matches('\n').count() + 1,
            "line past the end: {e:?}"
        );
    }
});
