//! Arbitrary text as a scenario file: the parser never panics, and every
//! error it returns points into the file (line and column >= 1, the line
//! within the text).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenantry_harness::scenario::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = parse("fuzz.yaml", text) {
        assert!(e.line >= 1 && e.column >= 1, "no position: {e:?}");
        // YAML breaks lines at LF, CRLF and a lone CR.
        let breaks = text.replace("\r\n", "\n").matches(['\n', '\r']).count();
        // An error at the end of input names the end of the last line
        // (it once named the line after it: fuzz/README.md, "Findings").
        assert!(e.line <= breaks + 1, "line past the end: {e:?}");
    }
});
