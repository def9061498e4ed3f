//! `tenantry score`: the flaw manifest (and `docs/flaws.md`, generated from
//! it), the scorecard of a few flaws, and the `--tool` contract with
//! commands whose verdicts are known. The whole corpus is scored by
//! `scripts/test` (`tenantry score --fast`).

use std::process::Command;

fn tenantry(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tenantry"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[cfg(not(feature = "inject"))]
#[test]
fn without_the_corpus_score_says_how_to_get_it() {
    let (code, _, stderr) = tenantry(&["score", "--fast"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--features inject"), "{stderr}");
}

#[cfg(feature = "inject")]
mod corpus {
    use super::*;

    #[test]
    fn docs_flaws_md_is_the_manifest() {
        let (code, manifest, stderr) = tenantry(&["score", "--manifest"]);
        assert_eq!(code, Some(0), "{stderr}");
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/flaws.md")).unwrap();
        assert!(
            doc == manifest,
            "docs/flaws.md is not what `tenantry score --manifest` prints; regenerate it:\n  cargo run --features inject -- score --manifest > docs/flaws.md"
        );
        let (_, json, _) = tenantry(&["score", "--manifest", "--json", "-"]);
        let flaws: serde_json::Value = serde_json::from_str(&json).unwrap();
        let flaws = flaws.as_array().unwrap();
        assert!(flaws.len() >= 33, "{}", flaws.len());
        for f in flaws {
            let checks = f["expected_checks"].as_array().unwrap();
            assert!(!checks.is_empty(), "{f}");
            for c in checks {
                assert!(
                    c.as_str().unwrap().starts_with(f["family"].as_str().unwrap()),
                    "{f}"
                );
            }
        }
    }

    #[test]
    fn unknown_flaws_and_bad_tools_are_refused_before_anything_runs() {
        let (code, _, stderr) = tenantry(&["score", "--flaws", "no-such-flaw"]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("unknown flaw `no-such-flaw`"), "{stderr}");
        let (code, _, stderr) = tenantry(&["score", "--tool", "tenantry=true"]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("reserved"), "{stderr}");
    }

    /// Two flaws and no clean run for tenantry, and two tools whose answers
    /// are fixed: one that always reports a finding (after checking that
    /// the contract's variables are there), one that never does.
    #[test]
    fn a_scorecard_of_two_flaws_and_two_known_tools() {
        let dir = std::env::temp_dir().join(format!("tenantry-score-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let markdown = dir.join("score.md");
        let always = "always=test -n \"$TENANTRY_TARGET_URL\" && test -n \"$TENANTRY_TOKEN_A\" && test -n \"$TENANTRY_TOKEN_B\" && test -n \"$TENANTRY_ORG_B\" && test -n \"$TENANTRY_RESOURCE_A\" && exit 1";
        let (code, stdout, stderr) = tenantry(&[
            "score",
            "--fast",
            "--seeds",
            "0",
            "--seed",
            "3",
            "--flaws",
            "trust-org-param,jwt-alg-none",
            "--tool",
            always,
            "--tool",
            "never=exit 0",
            "--json",
            "-",
            "--markdown",
            markdown.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(0), "{stderr}");
        let card: serde_json::Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        assert_eq!(card["schema"], "tenantry.score/1");
        assert_eq!(card["tools"], serde_json::json!(["tenantry", "always", "never"]));
        let tenantry = &card["summary"]["tenantry"]["overall"];
        assert_eq!(
            (tenantry["caught"].as_u64(), tenantry["flaws"].as_u64()),
            (Some(2), Some(2)),
            "{card}"
        );
        assert_eq!(tenantry["tpr"], 1.0);
        assert_eq!(card["summary"]["always"]["overall"]["caught"], 2, "{stderr}");
        assert_eq!(card["summary"]["always"]["errors"], 0, "{stderr}");
        assert_eq!(card["summary"]["never"]["overall"]["caught"], 0);
        assert_eq!(card["summary"]["never"]["overall"]["j"], 0.0);
        for row in card["flaws"].as_array().unwrap() {
            let checks = row["results"]["tenantry"]["checks"].as_array().unwrap();
            let expected = row["flaw"]["expected_checks"].as_array().unwrap();
            assert!(checks.iter().any(|c| expected.contains(c)), "{row}");
        }
        let md = std::fs::read_to_string(&markdown).unwrap();
        assert!(md.contains("| tenantry | 100% (2/2) |"), "{md}");
        assert!(md.contains("| never | 0% (0/2) |"), "{md}");
        // The tools' credentials stay out of the scorecard.
        assert!(!stdout.contains("eyJ") && !md.contains("eyJ"), "a token leaked");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A tool that fails (exit 3) is an error, not a verdict.
    #[test]
    fn a_tool_that_cannot_answer_is_an_error_and_fails_no_gate_of_tenantry() {
        let (code, stdout, stderr) = tenantry(&[
            "score",
            "--seeds",
            "0",
            "--fast",
            "--flaws",
            "trust-org-param",
            "--tool",
            "broken=echo \"token $TENANTRY_TOKEN_A\" >&2; exit 3",
            "--json",
            "-",
        ]);
        assert_eq!(code, Some(0), "{stderr}");
        let card: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(card["summary"]["broken"]["errors"], 1, "{card}");
        let error = card["flaws"][0]["results"]["broken"]["error"].as_str().unwrap();
        assert!(error.contains("exited Some(3)"), "{error}");
        assert!(error.contains("token [redacted]"), "{error}");
    }
}
