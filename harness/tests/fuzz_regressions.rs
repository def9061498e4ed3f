//! Regressions found by fuzzing (see fuzz/README.md, "Findings"): each input
//! is one a fuzz target once failed on, minimised.

use tenantry_harness::scenario::parse;

/// `scenario_parse`: a key left without its `:` on the last line, with no
/// final newline, is reported one line past the end of the file (`3:1` for a
/// two-line file), and so is an unclosed flow collection (`steps: [` gives
/// `2:1`): the YAML scanner's end-of-input marker is passed through as the
/// error position. The error names the end of the last line instead.
#[test]
fn an_error_at_end_of_input_names_a_line_of_the_file() {
    for text in ["a: b\nc", "# comment\na: b\nc", "steps: ["] {
        assert_error_inside(text);
    }
}

/// `text` fails to parse, with an error on one of its lines.
fn assert_error_inside(text: &str) {
    let e = parse("f.yaml", text).unwrap_err();
    let lines = text.lines().count().max(1);
    assert!(
        (1..=lines).contains(&e.line) && e.column >= 1,
        "{text:?}: error at {}:{} in a {lines}-line file ({})",
        e.line,
        e.column,
        e.message
    );
}

/// Errors anywhere else carry a position inside the file.
#[test]
fn errors_carry_a_position_inside_the_file() {
    for text in ["a\nb: c\nd", "id: x\nid: y\n", "\u{feff}: :"] {
        let e = parse("f.yaml", text).unwrap_err();
        assert!(e.line >= 1 && e.column >= 1, "{text:?}: {e:?}");
        assert!(e.line <= text.lines().count().max(1), "{text:?}: {e:?}");
    }
}

/// `scenario_parse` (the CI smoke, 2026-11-29): a lone document marker
/// (`---`, no newline) parses as an empty document whose null node the
/// parser places on line 2; the "expected a scenario mapping" error named
/// that line. It names the end of the file's only line now.
#[test]
fn an_empty_document_after_a_marker_is_reported_inside_the_file() {
    for text in ["---", "--- ", "# c\n---", "---\n...", "...\n---"] {
        assert_error_inside(text);
    }
}
