//! The check catalogue: every check tenantry knows, with a stable id, its
//! family, severity, CWE, what it sends, the safe outcome and how to fix a
//! failure. Mirrors `CHECKS.md`; reports, waivers and `tenantry checks`
//! read it from here.

use std::fmt;

/// How bad a failure of the check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Informational.
    Info,
    /// Hardening.
    Low,
    /// Weakens isolation under some conditions.
    Medium,
    /// Breaks isolation for some requests.
    High,
    /// Cross-tenant data access or takeover.
    Critical,
}

impl Severity {
    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses a lowercase name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A check family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Family {
    /// Short code (`ISO`).
    pub code: &'static str,
    /// Title.
    pub title: &'static str,
    /// The general fix.
    pub remediation: &'static str,
}

/// One check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// Stable id (`ISO-001`).
    pub id: &'static str,
    /// Family code.
    pub family: &'static str,
    /// Short title.
    pub title: &'static str,
    /// Severity of a failure.
    pub severity: Severity,
    /// CWE number.
    pub cwe: u32,
    /// What the harness sends.
    pub sends: &'static str,
    /// The safe outcome.
    pub safe: &'static str,
    /// How to fix a failure (besides the family's general fix).
    pub remediation: &'static str,
}

impl Check {
    /// The family.
    pub fn family(&self) -> &'static Family {
        FAMILIES
            .iter()
            .find(|f| f.code == self.family)
            .unwrap_or(&FAMILIES[0])
    }
}

/// The families, in catalogue order.
pub const FAMILIES: &[Family] = &[
    Family {
        code: "ISO",
        title: "cross-tenant isolation",
        remediation: "Scope every query to the verified org (one query builder that always adds the org \
                      predicate) and back it with row-level security; answer foreign ids exactly like missing ones.",
    },
    Family {
        code: "ORG",
        title: "forged organization parameters",
        remediation: "Take the org only from the verified session token; refuse (403) any request whose path, \
                      query, headers, cookies or body name another org, before the handler runs.",
    },
    Family {
        code: "TOK",
        title: "session token attacks",
        remediation: "Verify with an algorithm allow-list and keys you hold (never keys or key URLs from the token), \
                      check every claim with its type, small leeway, exact issuer and authorized parties.",
    },
    Family {
        code: "TPL",
        title: "custom JWT templates",
        remediation: "Render only the claims the template defines, never accept template tokens as session \
                      tokens, and fall back to the session token when a template is unusable.",
    },
    Family {
        code: "SES",
        title: "sessions, org switching, sign-in",
        remediation: "Re-check membership and role when tokens are minted, keep tokens short-lived, and never \
                      create a session before every sign-in factor is complete.",
    },
    Family {
        code: "RL",
        title: "per-organization rate limiting",
        remediation: "Key limits on the verified org, decide atomically in the store (one script per decision), \
                      never count refused requests, and make the failure mode explicit.",
    },
    Family {
        code: "OAU",
        title: "OAuth connect state",
        remediation: "Bind state to org, user, session and provider, store it server-side with a short TTL, \
                      consume it atomically exactly once, use PKCE, and allow-list return paths.",
    },
    Family {
        code: "RLS",
        title: "database layer",
        remediation: "Serve as a non-owner role without BYPASSRLS, FORCE row-level security with a restrictive \
                      org policy on every tenant table, and set the org transaction-locally.",
    },
    Family {
        code: "FUZ",
        title: "HTTP fuzzing",
        remediation: "Validate every input before it reaches the data layer and answer bad input with a 4xx; \
                      take the org only from the verified token, whatever the request says.",
    },
];

macro_rules! checks {
    ($( $id:literal $family:literal $sev:ident $cwe:literal $title:literal
        sends $sends:literal safe $safe:literal fix $fix:literal; )*) => {
        /// Every check, in catalogue order.
        pub const CHECKS: &[Check] = &[$(
            Check {
                id: $id,
                family: $family,
                title: $title,
                severity: Severity::$sev,
                cwe: $cwe,
                sends: $sends,
                safe: $safe,
                remediation: $fix,
            },
        )*];
    };
}

checks! {
    "ISO-001" "ISO" Critical 639 "read by id"
        sends "B's member GETs A's resource by id" safe "403/404, no A canary"
        fix "Look resources up by (org, id), never by id alone.";
    "ISO-002" "ISO" Critical 639 "update by id"
        sends "B PATCHes A's resource" safe "refused, A's row unchanged"
        fix "Scope updates to the verified org; check affected rows.";
    "ISO-003" "ISO" Critical 639 "delete by id"
        sends "B DELETEs A's resource" safe "refused, A's row still there"
        fix "Scope deletes to the verified org; check affected rows.";
    "ISO-004" "ISO" Critical 200 "list"
        sends "list endpoints as B" safe "only B's rows, never an A canary or id"
        fix "Every list query carries the org predicate.";
    "ISO-005" "ISO" Critical 200 "search"
        sends "search for A's canary as B" safe "no hit"
        fix "Search indexes and queries are filtered by org.";
    "ISO-006" "ISO" High 639 "child under foreign parent"
        sends "create/read a child under A's parent as B" safe "refused"
        fix "Resolve the parent within the org before touching children; composite keys with the org.";
    "ISO-007" "ISO" Medium 672 "use after delete"
        sends "read/update after delete" safe "404"
        fix "Deleted resources are gone from every path, caches included.";
    "ISO-008" "ISO" Critical 200 "exports and jobs"
        sends "an export started by B" safe "never contains A data; job ids not readable cross-org"
        fix "Background jobs run with the org context of the org that queued them.";
    "ISO-009" "ISO" Critical 524 "org-keyed cache"
        sends "A and B read the cached endpoint alternately" safe "each sees only its own data"
        fix "Cache keys always contain the org (a key type that cannot be built without it).";
    "ISO-010" "ISO" Medium 209 "error bodies"
        sends "errors for foreign ids" safe "no canary, same shape as not found"
        fix "Map foreign and missing to one response; keep details in the log.";
    "ISO-011" "ISO" Low 204 "existence oracle"
        sends "A's id vs no such id, as B" safe "status and timing do not distinguish them"
        fix "Answer foreign ids exactly like missing ids.";
    "ISO-012" "ISO" Low 330 "enumeration"
        sends "sequential or guessable ids" safe "ids are not predictable across orgs"
        fix "Use random ids (128 bits).";
    "ISO-013" "ISO" High 306 "unauthenticated"
        sends "every tenant endpoint without a token" safe "401, no data"
        fix "Routes are org-required by default; public routes are declared.";
    "ORG-001" "ORG" Critical 639 "org in the path"
        sends "B's token with A's org id in the path" safe "403 org_mismatch, never A's data"
        fix "Compare path orgs with the active org before the handler.";
    "ORG-002" "ORG" Critical 639 "org in the query"
        sends "B's token with org_id / organization_id / orgId = A" safe "403 or ignored, never A's data"
        fix "Never read the org from the query.";
    "ORG-003" "ORG" Critical 639 "org in a header"
        sends "B's token with X-Org-Id / Organization-Id = A" safe "403 or ignored, never A's data"
        fix "Never read the org from request headers.";
    "ORG-004" "ORG" Critical 639 "org in the JSON body"
        sends "B's token with A's org in a JSON field (any depth)" safe "403 or ignored, never a write into A"
        fix "Ignore or refuse org fields in bodies; the token decides.";
    "ORG-005" "ORG" Critical 639 "org in a form field"
        sends "B's token with A's org in a form field" safe "403 or ignored"
        fix "Ignore or refuse org fields in forms.";
    "ORG-006" "ORG" High 639 "org in a cookie"
        sends "B's token with an org cookie naming A" safe "403 or ignored"
        fix "Never read the org from cookies.";
    "ORG-007" "ORG" High 180 "encodings"
        sends "case changes, URL/double encoding, whitespace, NUL, confusables, duplicates" safe "same outcome as ORG-001..006"
        fix "Normalise before comparing; refuse duplicates and ambiguous encodings.";
    "ORG-008" "ORG" High 639 "slug vs id"
        sends "A's slug where an id is expected and vice versa" safe "same outcome"
        fix "Compare both the active org's id and slug.";
    "ORG-009" "ORG" High 285 "personal account"
        sends "a token with no active org on org-required routes" safe "403"
        fix "Org-required routes refuse tokens without an active org.";
    "TOK-001" "TOK" Critical 347 "broken signature" sends "a valid token with its signature altered" safe "401" fix "Verify signatures.";
    "TOK-002" "TOK" Critical 347 "null signature" sends "header.payload. with an empty signature" safe "401" fix "Refuse empty signatures.";
    "TOK-003" "TOK" Critical 347 "alg none" sends "alg none, None, NONE, nOnE, missing, empty" safe "401" fix "Allow-list algorithms on the raw header.";
    "TOK-004" "TOK" Critical 347 "HS256 empty key" sends "HS256 signed with an empty key" safe "401" fix "Allow-list RS256 only.";
    "TOK-005" "TOK" Critical 347 "HS256 common secrets" sends "HS256 with common secrets" safe "401" fix "Allow-list RS256 only.";
    "TOK-006" "TOK" Critical 347 "RS->HS key confusion" sends "HS256 keyed with the public key (PEM, PKCS#1, DER)" safe "401" fix "Bind each key to its algorithm.";
    "TOK-007" "TOK" Critical 347 "psychic signature" sends "ES256 with r = s = 0" safe "401" fix "Use a library that rejects zero signatures; allow-list algorithms.";
    "TOK-008" "TOK" Critical 347 "foreign key under the real kid" sends "a token signed by an attacker key with the real kid" safe "401" fix "Verify with the key the kid names in your JWKS only.";
    "TOK-009" "TOK" Critical 347 "embedded jwk" sends "a jwk header with the attacker's key" safe "401" fix "Never take keys from the token.";
    "TOK-010" "TOK" Critical 918 "jku/x5u/x5c" sends "key URLs or chains in the header" safe "401 and no outbound fetch" fix "Never fetch keys named by a token.";
    "TOK-011" "TOK" High 20 "kid injection" sends "kid traversal, SQL, command injection, unknown kid" safe "401" fix "Look kids up in a map, never a path or a query.";
    "TOK-012" "TOK" Medium 20 "claim type fuzz" sends "every claim as null, bool, string, number" safe "401, never a 500" fix "Check every claim's JSON type.";
    "TOK-013" "TOK" High 613 "expiry" sends "expired, missing exp, exp beyond leeway" safe "401" fix "Require exp; leeway <= 5 s.";
    "TOK-014" "TOK" Medium 613 "not yet valid" sends "future nbf, iat in the future" safe "401" fix "Check nbf and iat.";
    "TOK-015" "TOK" Medium 20 "time claim types" sends "\"exp\":\"never\"" safe "401" fix "Time claims are numbers.";
    "TOK-016" "TOK" High 345 "foreign issuer" sends "another issuer" safe "401" fix "Compare iss exactly.";
    "TOK-017" "TOK" Medium 345 "issuer array" sends "iss as an array" safe "401" fix "iss is one string.";
    "TOK-018" "TOK" High 345 "template token as session" sends "a JWT-template token (no sid)" safe "401" fix "Session tokens must carry sid.";
    "TOK-019" "TOK" Medium 345 "unknown crit" sends "crit with unknown extensions" safe "401" fix "Refuse unknown crit.";
    "TOK-020" "TOK" High 345 "authorized party" sends "azp not allowed or missing" safe "401" fix "Check azp against the allow-list; require it when the list is set.";
    "TOK-021" "TOK" Medium 345 "pending session" sends "sts = pending" safe "401" fix "Accept only sts = active.";
    "TOK-022" "TOK" Critical 345 "role tamper" sends "role or permissions changed without re-signing" safe "401/403" fix "Read roles only from verified claims.";
    "TOK-023" "TOK" Critical 345 "org tamper" sends "org claim changed without re-signing" safe "401" fix "Read the org only from verified claims.";
    "TOK-024" "TOK" High 345 "cross-app audience" sends "a token minted for another app" safe "401" fix "Check azp/aud.";
    "TOK-025" "TOK" High 345 "cookie vs header" sends "__session and Authorization disagree" safe "401" fix "One documented precedence rule; refuse conflicts.";
    "TPL-001" "TPL" High 200 "template claims" sends "a template token" safe "claims exactly as defined, nothing else of the user" fix "Render only defined claims.";
    "TPL-002" "TPL" Medium 613 "lifetime, audience, skew" sends "template tokens over time" safe "lifetime, aud and skew honoured" fix "Apply the template's lifetime and skew.";
    "TPL-003" "TPL" Medium 755 "fallback" sends "a missing or broken template" safe "the session token, logged and counted, no 500" fix "Fall back to the session token and count it.";
    "SES-001" "SES" Critical 639 "org switch" sends "setActive(B), then requests" safe "the new token never yields A data; A URLs refused" fix "Mint the org from the session's active org; key caches by org.";
    "SES-002" "SES" High 639 "stale token after switch" sends "old A token on B routes, new B token on A routes" safe "403" fix "Compare route orgs with the token's org.";
    "SES-003" "SES" High 613 "membership removal" sends "requests by a removed member" safe "refused once the token expires" fix "Re-check membership at every token mint; keep tokens short.";
    "SES-004" "SES" High 269 "role change" sends "admin actions by a demoted admin" safe "refused within one token lifetime" fix "Re-read roles at every token mint.";
    "SES-005" "SES" Critical 287 "client trust safety" sends "a password sign-in on a new device" safe "no session before the second factor" fix "Handle needs_client_trust as not signed in.";
    "SES-006" "SES" Medium 287 "client trust liveness" sends "a user hitting needs_client_trust" safe "the user can complete sign-in" fix "Handle every sign-in status; send the code.";
    "SES-007" "SES" High 294 "code replay across attempts" sends "a code from one attempt on another" safe "refused" fix "Bind codes to their attempt; single use.";
    "SES-008" "SES" High 613 "signed out" sends "tokens of a revoked session" safe "refused after expiry; refresh refused at once" fix "Check session status when minting.";
    "RL-001" "RL" High 770 "exact limit" sends "N concurrent clients of one org" safe "admitted <= limit per window" fix "Decide atomically in the store.";
    "RL-002" "RL" High 770 "org isolation" sends "A at its limit, B (hostile ids) requests" safe "B unaffected" fix "Key on the org; encode org ids in keys.";
    "RL-003" "RL" Medium 770 "per org, not per user" sends "many users of one org" safe "one shared budget" fix "Key on the org, not the user.";
    "RL-004" "RL" Medium 770 "not per IP" sends "spoofed X-Forwarded-For, many addresses" safe "budget not widened" fix "Never key on client-supplied addresses.";
    "RL-005" "RL" Medium 770 "bypass" sends "bypass orgs; an edited list" safe "never 429; edits apply without a restart" fix "Consult a reloadable bypass list before the store.";
    "RL-006" "RL" Low 770 "headers" sends "sequential traffic" safe "q, w, r consistent; Retry-After integer >= 1; not cacheable" fix "Emit the draft's headers from the decision.";
    "RL-007" "RL" Low 770 "retry honoured" sends "a request after Retry-After" safe "succeeds" fix "Retry-After is the time until a slot frees.";
    "RL-008" "RL" Medium 770 "rejected do not consume" sends "retries while limited" safe "admitted after the window" fix "Record only admitted requests.";
    "RL-009" "RL" Low 770 "window edge" sends "bursts at window boundaries" safe "within the algorithm's bound" fix "Use a sliding window or state the fixed window's bound.";
    "RL-010" "RL" High 770 "multi-instance" sends "traffic over two instances" safe "limit holds" fix "Keep counts in a shared store.";
    "RL-011" "RL" Medium 755 "store down" sends "requests while the store is down" safe "the configured fail mode, no 500s, recovery" fix "Time-bound store calls; explicit fail mode.";
    "RL-012" "RL" Low 400 "cost" sends "decisions while watching the store" safe "one round trip each; every key with a TTL" fix "One script per decision; PEXPIRE every key.";
    "OAU-001" "OAU" High 352 "missing state" sends "a callback without state" safe "refused" fix "Require state.";
    "OAU-002" "OAU" Medium 352 "malformed state" sends "empty, malformed, oversized state" safe "refused" fix "Bound and validate state.";
    "OAU-003" "OAU" High 330 "guessed state" sends "guessed states" safe "refused" fix "128+ random bits.";
    "OAU-004" "OAU" High 352 "tampered state" sends "a modified state" safe "refused" fix "Look states up server-side.";
    "OAU-005" "OAU" High 294 "reuse after success" sends "the callback again" safe "refused" fix "Consume state atomically.";
    "OAU-006" "OAU" Medium 294 "reuse after error" sends "an error callback, then the state again" safe "refused" fix "Error callbacks consume the state too.";
    "OAU-007" "OAU" High 362 "concurrent redeem" sends "concurrent callbacks with one state" safe "exactly one wins" fix "GETDEL or a single-statement consume.";
    "OAU-008" "OAU" Medium 613 "expired state" sends "a state past its TTL" safe "refused; TTL <= 10 min" fix "Store states with a TTL.";
    "OAU-009" "OAU" Critical 352 "another user's state" sends "a colleague's state, same org" safe "refused" fix "Bind state to the user.";
    "OAU-010" "OAU" Critical 639 "another org's state" sends "a state from another org" safe "refused" fix "Bind state to the org.";
    "OAU-011" "OAU" High 352 "login CSRF" sends "a callback forced on a victim" safe "refused" fix "Bind state to the session.";
    "OAU-012" "OAU" Medium 352 "session changed" sends "a callback after the session changed" safe "refused" fix "Bind state to the session.";
    "OAU-013" "OAU" High 345 "provider swap" sends "a state for one provider at another" safe "refused" fix "Bind state to the provider.";
    "OAU-014" "OAU" High 345 "code injection" sends "a code without the flow's PKCE challenge" safe "not redeemed" fix "Use PKCE S256.";
    "OAU-015" "OAU" Medium 601 "open redirect" sends "redirect or return URL tamper" safe "refused" fix "Allow-list relative return paths.";
    "OAU-016" "OAU" Critical 639 "connection in another org" sends "any completed flow" safe "stored only in the org that started it" fix "Write connections through the tenant layer.";
    "RLS-001" "RLS" Critical 250 "role posture" sends "catalog queries" safe "app role: not superuser, no BYPASSRLS, not owner" fix "Serve as a dedicated non-owner role.";
    "RLS-002" "RLS" Critical 284 "catalog" sends "catalog queries" safe "RLS enabled and forced, policies for every command, org-leading index" fix "FORCE RLS and add the org policy.";
    "RLS-003" "RLS" Critical 639 "raw SQL with context" sends "raw SQL with org A set" safe "only A rows" fix "Policies compare organization_id with the context.";
    "RLS-004" "RLS" Critical 639 "no context" sends "raw SQL without context" safe "no rows" fix "A missing context matches nothing.";
    "RLS-005" "RLS" Critical 668 "pooled reuse" sends "A then B on one pooled connection" safe "B sees nothing of A" fix "Set the context transaction-locally.";
    "RLS-006" "RLS" Critical 639 "writes aimed at B" sends "inserts/updates into B as A" safe "fail WITH CHECK or touch 0 rows" fix "WITH CHECK on every policy.";
    "RLS-007" "RLS" Medium 203 "key oracles" sends "unique and foreign-key probes" safe "composite keys with the org" fix "Composite keys with organization_id.";
    "RLS-008" "RLS" High 284 "views and definer functions" sends "catalog queries" safe "security_invoker views; pinned search_path" fix "Use security_invoker views.";
    "RLS-009" "RLS" High 284 "switching RLS off" sends "SET row_security = off, TRUNCATE, policy DDL" safe "denied to the app role" fix "No such grants to the app role.";
    "RLS-010" "RLS" High 284 "restrictive policy" sends "an extra permissive policy" safe "cannot widen access" fix "Make the org policy RESTRICTIVE.";
    "RLS-011" "RLS" High 693 "layer ablation" sends "the app filter alone, RLS alone" safe "each isolates" fix "Keep both layers.";
    "FUZ-001" "FUZ" High 755 "no 5xx and no foreign data under mutation"
        sends "the profile's requests mutated (other org's ids and slugs in every place and encoding, duplicate and undeclared fields, odd values, method swaps, tampered tokens), as each org and anonymously" safe "never a 5xx, never another org's canary or id"
        fix "Validate input before the data layer and map every failure to a 4xx; keep the org from the verified token only.";
}

/// The check with `id` (case-insensitive; `TEN-` prefix accepted).
pub fn find(id: &str) -> Option<&'static Check> {
    let id = id.trim();
    let id = id
        .strip_prefix("TEN-")
        .or_else(|| id.strip_prefix("ten-"))
        .unwrap_or(id);
    CHECKS.iter().find(|c| c.id.eq_ignore_ascii_case(id))
}

/// A filter over checks: ids (with `*` globs), families, minimum severity.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    patterns: Vec<String>,
    min_severity: Option<Severity>,
    /// Another selection a check must also be in.
    and: Option<Box<Selection>>,
}

/// Why a selection could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` matches no check id or family (see `tenantry checks list`)")]
pub struct UnknownSelector(pub String);

impl Selection {
    /// Parses `ISO,ORG-00*,TOK-003` (families, ids, globs) and an optional
    /// minimum severity.
    pub fn parse(spec: &str, min_severity: Option<Severity>) -> Result<Self, UnknownSelector> {
        let patterns: Vec<String> = spec
            .split(',')
            .map(|s| s.trim().to_ascii_uppercase())
            .filter(|s| !s.is_empty())
            .collect();
        for p in &patterns {
            if !CHECKS.iter().any(|c| matches(p, c)) {
                return Err(UnknownSelector(p.clone()));
            }
        }
        Ok(Self {
            patterns,
            min_severity,
            and: None,
        })
    }

    /// Checks in both `self` and `other`.
    pub fn and(mut self, other: Selection) -> Self {
        self.and = Some(Box::new(match self.and.take() {
            Some(inner) => inner.and(other),
            None => other,
        }));
        self
    }

    /// Whether `check` is selected.
    pub fn includes(&self, check: &Check) -> bool {
        let by_pattern = self.patterns.is_empty() || self.patterns.iter().any(|p| matches(p, check));
        by_pattern
            && self.min_severity.is_none_or(|m| check.severity >= m)
            && self.and.as_ref().is_none_or(|s| s.includes(check))
    }

    /// Whether any check of `family` (`TOK`, `RL`, …) is selected.
    pub fn includes_family(&self, family: &str) -> bool {
        CHECKS.iter().any(|c| c.family == family && self.includes(c))
    }
}

/// The checks a selector names: a family (`TOK`), an id, or a glob (`TOK-00*`).
pub fn matching(pattern: &str) -> Vec<&'static Check> {
    CHECKS.iter().filter(|c| matches(pattern, c)).collect()
}

fn matches(pattern: &str, check: &Check) -> bool {
    if pattern == check.family {
        return true;
    }
    match pattern.split_once('*') {
        Some((prefix, suffix)) => check.id.starts_with(prefix) && check.id.ends_with(suffix),
        None => pattern == check.id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_well_formed_and_in_known_families() {
        let mut seen = std::collections::HashSet::new();
        for c in CHECKS {
            assert!(seen.insert(c.id), "duplicate {}", c.id);
            let (family, number) = c.id.split_once('-').unwrap();
            assert_eq!(family, c.family, "{}", c.id);
            assert_eq!(number.len(), 3, "{}", c.id);
            assert!(FAMILIES.iter().any(|f| f.code == c.family), "{}", c.id);
            assert!(c.cwe > 0 && !c.title.is_empty() && !c.safe.is_empty(), "{}", c.id);
        }
        // The catalogue's counts.
        let count = |f: &str| CHECKS.iter().filter(|c| c.family == f).count();
        assert_eq!(
            [
                count("ISO"),
                count("ORG"),
                count("TOK"),
                count("TPL"),
                count("SES"),
                count("RL"),
                count("OAU"),
                count("RLS"),
                count("FUZ")
            ],
            [13, 9, 25, 3, 8, 12, 16, 11, 1]
        );
    }

    #[test]
    fn find_and_select() {
        assert_eq!(find("iso-001").unwrap().title, "read by id");
        assert_eq!(find("TEN-ORG-009").unwrap().id, "ORG-009");
        assert!(find("ISO-999").is_none());
        let s = Selection::parse("ORG,TOK-00*", Some(Severity::High)).unwrap();
        assert!(s.includes(find("ORG-001").unwrap()));
        assert!(s.includes(find("TOK-003").unwrap()));
        assert!(!s.includes(find("TOK-012").unwrap()));
        assert!(!s.includes(find("ISO-001").unwrap()));
        let both = Selection::parse("ISO", None)
            .unwrap()
            .and(Selection::parse("ISO-001,ORG-001", None).unwrap());
        assert!(both.includes(find("ISO-001").unwrap()));
        assert!(!both.includes(find("ISO-002").unwrap()));
        assert!(!both.includes(find("ORG-001").unwrap()));
        assert_eq!(
            Selection::parse("NOPE", None).unwrap_err(),
            UnknownSelector("NOPE".into())
        );
    }
}
