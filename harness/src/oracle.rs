//! The leak oracle: every resource the harness creates carries canaries —
//! unique random strings — in its text fields, and the harness registers
//! canary -> org and id -> org. Every response (status line, headers, body)
//! is scanned with one Aho-Corasick automaton; a canary or id of an org other
//! than the request's active org is a leak, whatever the endpoint.

use aho_corasick::{AhoCorasick, MatchKind};

/// What a registered needle is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeedleKind {
    /// A canary string planted in a text field.
    Canary,
    /// A resource id.
    Id,
}

/// Who a needle belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The owning org.
    pub org: String,
    /// Canary or id.
    pub kind: NeedleKind,
    /// The resource it belongs to (for evidence).
    pub resource: String,
}

/// A foreign needle found in a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    /// The needle.
    pub needle: String,
    /// Its owner.
    pub owner: Owner,
    /// Byte offset in the scanned text.
    pub offset: usize,
    /// Up to 48 bytes either side, lossily decoded.
    pub excerpt: String,
}

/// Why a needle cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// Shorter than [`MIN_NEEDLE`]: it would match by accident.
    #[error("needle `{0}` is too short to scan for without false positives")]
    TooShort(String),
    /// Already registered for another org.
    #[error("needle `{0}` is already registered for org {1}")]
    Conflict(String, String),
}

/// Shortest needle accepted.
pub const MIN_NEEDLE: usize = 12;

/// A fresh canary: `tnry` + 24 random base32 characters (120 bits). It says
/// nothing about its org; the registry knows.
pub fn new_canary() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    let mut out = String::from("tnry");
    out.extend(bytes.iter().map(|b| ALPHABET[(*b & 31) as usize] as char));
    out
}

/// Deterministic canaries from a seed (SplitMix64), so a seeded run plants
/// the same strings again.
#[derive(Debug, Clone)]
pub struct CanarySource {
    state: u64,
}

impl CanarySource {
    /// A source for `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next canary: `tnry` + 24 base32 characters.
    pub fn canary(&mut self) -> String {
        const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
        let mut out = String::from("tnry");
        for _ in 0..2 {
            let mut v = self.next_u64();
            for _ in 0..12 {
                out.push(ALPHABET[(v & 31) as usize] as char);
                v >>= 5;
            }
        }
        out
    }
}

/// Canaries and ids by org, and the automaton over them.
#[derive(Debug, Default)]
pub struct Oracle {
    needles: Vec<String>,
    owners: Vec<Owner>,
    index: std::collections::HashMap<String, usize>,
    automaton: Option<AhoCorasick>,
}

impl Oracle {
    /// An empty oracle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `needle` as belonging to `org` (idempotent for the same owner).
    pub fn register(
        &mut self,
        needle: &str,
        org: &str,
        kind: NeedleKind,
        resource: &str,
    ) -> Result<(), RegisterError> {
        if needle.len() < MIN_NEEDLE {
            return Err(RegisterError::TooShort(needle.into()));
        }
        if let Some(&i) = self.index.get(needle) {
            if self.owners[i].org != org {
                return Err(RegisterError::Conflict(needle.into(), self.owners[i].org.clone()));
            }
            return Ok(());
        }
        self.index.insert(needle.to_string(), self.needles.len());
        self.needles.push(needle.to_string());
        self.owners.push(Owner {
            org: org.into(),
            kind,
            resource: resource.into(),
        });
        self.automaton = None;
        Ok(())
    }

    /// How many needles are registered.
    pub fn len(&self) -> usize {
        self.needles.len()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// The owner of `needle`, if registered.
    pub fn owner(&self, needle: &str) -> Option<&Owner> {
        self.index.get(needle).map(|&i| &self.owners[i])
    }

    fn automaton(&mut self) -> &AhoCorasick {
        if self.automaton.is_none() {
            let built = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&self.needles)
                .expect("needles are plain strings of bounded count");
            self.automaton = Some(built);
        }
        self.automaton.as_ref().expect("just built")
    }

    /// Every needle in `text` that belongs to an org other than `active_org`.
    pub fn scan(&mut self, active_org: &str, text: &[u8]) -> Vec<Leak> {
        if self.needles.is_empty() {
            return Vec::new();
        }
        let hits: Vec<(usize, usize, usize)> = self
            .automaton()
            .find_iter(text)
            .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
            .collect();
        hits.into_iter()
            .filter(|(i, _, _)| self.owners[*i].org != active_org)
            .map(|(i, start, end)| {
                let from = start.saturating_sub(48);
                let to = (end + 48).min(text.len());
                Leak {
                    needle: self.needles[i].clone(),
                    owner: self.owners[i].clone(),
                    offset: start,
                    excerpt: String::from_utf8_lossy(&text[from..to]).into_owned(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_needles_are_leaks_own_are_not() {
        let mut oracle = Oracle::new();
        let a = new_canary();
        let b = new_canary();
        assert_ne!(a, b);
        assert_eq!(a.len(), 28);
        oracle.register(&a, "org_a", NeedleKind::Canary, "prj_1").unwrap();
        oracle.register(&b, "org_b", NeedleKind::Canary, "prj_2").unwrap();
        oracle
            .register(
                "prj_0123456789abcdef",
                "org_a",
                NeedleKind::Id,
                "prj_0123456789abcdef",
            )
            .unwrap();
        let body = format!(r#"{{"items":[{{"name":"{a}"}},{{"name":"{b}","id":"prj_0123456789abcdef"}}]}}"#);
        let leaks = oracle.scan("org_b", body.as_bytes());
        let found: Vec<&str> = leaks.iter().map(|l| l.needle.as_str()).collect();
        assert_eq!(found, [a.as_str(), "prj_0123456789abcdef"]);
        assert_eq!(leaks[0].owner.org, "org_a");
        assert!(leaks[0].excerpt.contains(&a));
        assert!(oracle.scan("org_a", b"nothing here").is_empty());
        assert_eq!(
            oracle.scan("org_a", body.as_bytes()).len(),
            1,
            "only B's canary is foreign to A"
        );
    }

    #[test]
    fn seeded_canaries_repeat_and_differ_by_seed() {
        let a: Vec<String> = (0..3)
            .map({
                let mut s = CanarySource::new(7);
                move |_| s.canary()
            })
            .collect();
        let b: Vec<String> = (0..3)
            .map({
                let mut s = CanarySource::new(7);
                move |_| s.canary()
            })
            .collect();
        let c: Vec<String> = (0..3)
            .map({
                let mut s = CanarySource::new(8);
                move |_| s.canary()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|x| x.len() == 28 && x.starts_with("tnry")));
        assert_ne!(a[0], a[1]);
    }

    #[test]
    fn registration_rules() {
        let mut oracle = Oracle::new();
        assert!(matches!(
            oracle.register("short", "org_a", NeedleKind::Id, "x"),
            Err(RegisterError::TooShort(_))
        ));
        let c = new_canary();
        oracle.register(&c, "org_a", NeedleKind::Canary, "x").unwrap();
        oracle.register(&c, "org_a", NeedleKind::Canary, "x").unwrap();
        assert_eq!(oracle.len(), 1);
        assert!(matches!(
            oracle.register(&c, "org_b", NeedleKind::Canary, "x"),
            Err(RegisterError::Conflict(_, _))
        ));
    }

    #[test]
    fn scans_ten_thousand_needles_and_rebuilds_after_registration() {
        let mut oracle = Oracle::new();
        let canaries: Vec<String> = (0..10_000).map(|_| new_canary()).collect();
        for (i, c) in canaries.iter().enumerate() {
            oracle
                .register(
                    c,
                    if i % 2 == 0 { "org_a" } else { "org_b" },
                    NeedleKind::Canary,
                    "r",
                )
                .unwrap();
        }
        let text = format!("xx {} yy {} zz", canaries[9_999], canaries[4]);
        let leaks = oracle.scan("org_a", text.as_bytes());
        assert_eq!(leaks.len(), 1);
        assert_eq!(leaks[0].needle, canaries[9_999]);
        let late = new_canary();
        oracle.register(&late, "org_c", NeedleKind::Canary, "r").unwrap();
        assert_eq!(oracle.scan("org_a", late.as_bytes()).len(), 1);
    }
}
