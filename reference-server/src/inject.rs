//! Injected flaws (cargo feature `inject`): each a named, documented mistake
//! at one narrow point, forming the known-vulnerable corpus that tenantry is
//! scored on. A build without the feature contains none of this.

use std::fmt;
use std::str::FromStr;

macro_rules! flaws {
    ($( $variant:ident = $name:literal, $family:literal, $cwe:literal, [$($check:literal),+], $description:literal; )*) => {
        /// A named flaw.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Flaw {
            $(
                #[doc = $description]
                $variant,
            )*
        }

        impl Flaw {
            /// Every flaw, in declaration order.
            pub const ALL: &'static [Flaw] = &[$(Flaw::$variant),*];

            /// The `--inject` name.
            pub fn name(self) -> &'static str {
                match self { $(Flaw::$variant => $name,)* }
            }

            /// The check family meant to catch it.
            pub fn family(self) -> &'static str {
                match self { $(Flaw::$variant => $family,)* }
            }

            /// One line on what the mistake is.
            pub fn description(self) -> &'static str {
                match self { $(Flaw::$variant => $description,)* }
            }

            /// The CWE the mistake is an instance of.
            pub fn cwe(self) -> u32 {
                match self { $(Flaw::$variant => $cwe,)* }
            }

            /// The checks of tenantry's catalogue that must report it (at
            /// least one per flaw: a flaw no check is meant to catch cannot be
            /// added).
            pub fn checks(self) -> &'static [&'static str] {
                match self { $(Flaw::$variant => &[$($check),+],)* }
            }
        }
    };
}

flaws! {
    RlsNotForced = "rls-not-forced", "RLS", 284, ["RLS-001", "RLS-002"],
        "Tenant tables do not FORCE row-level security and the app connects as the table owner, so RLS never applies.";
    NoAppFilter = "no-app-filter", "ISO", 639, ["ISO-001", "ISO-002", "ISO-004", "ISO-005"],
        "The TenantDb query builder skips the organization_id predicate; only RLS stands between orgs.";
    NoRls = "no-rls", "RLS", 284, ["RLS-002", "RLS-010"],
        "The restrictive org policies are dropped; only the application filter stands between orgs.";
    SessionScopedContext = "session-scoped-context", "RLS", 488, ["RLS-005"],
        "The org context is set with session scope (plain SET) instead of transaction-local, so it outlives the request on a pooled connection.";
    CacheKeyWithoutOrg = "cache-key-without-org", "ISO", 524, ["ISO-009"],
        "The /api/stats cache key omits the org, so one org is served another org's cached stats.";
    JobWithoutOrg = "job-without-org", "ISO", 863, ["ISO-008"],
        "The export worker runs as a BYPASSRLS service role and queries without the org filter, so an export contains every org's data.";
    JwtAlgNone = "jwt-alg-none", "TOK", 347, ["TOK-003"],
        "The verifier accepts `alg: none` tokens without a signature.";
    JwtHs256Confusion = "jwt-hs256-confusion", "TOK", 347, ["TOK-006"],
        "The verifier accepts HS256 tokens keyed with the RSA public key's PEM (RS->HS key confusion).";
    JwtSkipExp = "jwt-skip-exp", "TOK", 613, ["TOK-013"],
        "The verifier does not check `exp`, so expired tokens keep working.";
    JwtIgnoreAzp = "jwt-ignore-azp", "TOK", 345, ["TOK-020", "TOK-024"],
        "The verifier ignores `azp`, so tokens minted for another app are accepted.";
    TemplateTokenAsSession = "template-token-as-session", "TOK", 345, ["TOK-018"],
        "The verifier accepts tokens without `sid` (JWT-template tokens) as session tokens.";
    TrustOrgParam = "trust-org-param", "ORG", 639, ["ORG-002", "ORG-003", "ORG-007"],
        "The proxy takes the org from `?org_id=` or `X-Org-Id` when present instead of refusing a mismatch.";
    OrgPathUnchecked = "org-path-unchecked", "ORG", 639, ["ORG-001", "ORG-007"],
        "`/api/orgs/{org_id}/…` serves the org named in the path, unchecked against the active org.";
    ClientTrustAsComplete = "client-trust-as-complete", "SES", 287, ["SES-005"],
        "The app's sign-in handler treats `needs_client_trust` as signed in and creates the session through the Backend API, skipping the email code.";
    ClientTrustStuck = "client-trust-stuck", "SES", 754, ["SES-006"],
        "The app's sign-in handler has no branch for `needs_client_trust`: no code is sent and the user can never finish signing in.";
    TemplateFallback500 = "template-fallback-500", "TPL", 755, ["TPL-003"],
        "The template-token helper answers 500 when the template is missing or broken instead of falling back to the session token.";
    RatelimitPerIp = "ratelimit-per-ip", "RL", 770, ["RL-002"],
        "The limiter keys on the client IP instead of the org, so an org spread over many addresses is never limited (and one office IP starves its neighbours).";
    RatelimitPerUser = "ratelimit-per-user", "RL", 770, ["RL-003"],
        "The limiter keys on the user instead of the org, so an org multiplies its budget by its number of users.";
    RatelimitGlobalKey = "ratelimit-global-key", "RL", 770, ["RL-002"],
        "The limiter key omits the org, so all orgs share one budget and one org's flood limits every other org.";
    RatelimitNonatomic = "ratelimit-nonatomic", "RL", 362, ["RL-001", "RL-012"],
        "The limiter reads the counter, decides in the app, then INCRs and EXPIREs in separate calls: concurrent requests over-admit.";
    RatelimitBypassIgnored = "ratelimit-bypass-ignored", "RL", 770, ["RL-005"],
        "The bypass list is loaded but never consulted, so trusted orgs are limited like everyone else.";
    RatelimitRejectedConsumes = "ratelimit-rejected-consumes", "RL", 770, ["RL-008"],
        "Refused requests are recorded too, so a client that retries while limited stays limited forever.";
    RatelimitHeadersWrong = "ratelimit-headers-wrong", "RL", 684, ["RL-006"],
        "The RateLimit headers are off: remaining counts this request as not yet made and Retry-After is in milliseconds.";
    RatelimitFailOpenSilent = "ratelimit-fail-open-silent", "RL", 636, ["RL-011"],
        "When the store is down every policy fails open, with no header, log or metric saying so.";
    OauthStateNoTtl = "oauth-state-no-ttl", "OAU", 613, ["OAU-008"],
        "OAuth states are stored without a TTL, so a leaked state works forever.";
    OauthStateReusable = "oauth-state-reusable", "OAU", 294, ["OAU-005", "OAU-006"],
        "The callback reads the state without deleting it, so it can be replayed after success.";
    OauthStateNotUserBound = "oauth-state-not-user-bound", "OAU", 352, ["OAU-009"],
        "The callback does not check that the state was issued to the calling user and session: a colleague in the same org can finish (or hijack) someone else's flow.";
    OauthStateNotOrgBound = "oauth-state-not-org-bound", "OAU", 352, ["OAU-010", "OAU-016"],
        "The callback does not check the state's org, so a state from org A completes in org B and A's authorization lands in B.";
    OauthStateNotProviderBound = "oauth-state-not-provider-bound", "OAU", 345, ["OAU-013"],
        "The callback does not check the state's provider, so a state issued for one provider completes another provider's flow.";
    OauthStateRace = "oauth-state-race", "OAU", 367, ["OAU-007"],
        "The callback checks the state and deletes it in two steps, so concurrent callbacks with one state all pass the check.";
    OauthNoPkce = "oauth-no-pkce", "OAU", 345, ["OAU-014"],
        "The connect flow sends no PKCE challenge, so an authorization code injected into the callback is redeemed.";
    OauthOpenRedirect = "oauth-open-redirect", "OAU", 601, ["OAU-015"],
        "The post-connect return path is not checked, so the callback redirects to any URL (open redirect).";
    RoleFromClaimUnsigned = "role-from-claim-unsigned", "TOK", 345, ["TOK-025"],
        "The proxy verifies the Bearer token but reads the org role from the `__session` cookie's payload, unverified (and lets the two differ).";
    SearchWithoutOrgFilter = "search-without-org-filter", "ISO", 862, ["ISO-005"],
        "`/api/search` builds its queries without the org predicate, so only RLS keeps other orgs' projects and documents out of the hits.";
    UpdateWithoutOrgFilter = "update-without-org-filter", "ISO", 639, ["ISO-002"],
        "`PATCH /api/documents/{id}` updates by id alone (no org predicate), so only RLS keeps an org from overwriting another org's document.";
    ParentKeyWithoutOrg = "parent-key-without-org", "ISO", 639, ["ISO-006"],
        "`documents.project_id` references `projects(id)` alone (through a unique index on id) instead of `(organization_id, id)`, so a document can be created under another org's project.";
    GrantAllToAppRole = "grant-all-to-app-role", "RLS", 732, ["RLS-009"],
        "The tenant tables are granted to the app role with GRANT ALL, TRUNCATE included, and TRUNCATE ignores row-level security.";
    ReportViewNotInvoker = "report-view-not-invoker", "RLS", 284, ["RLS-008"],
        "A reporting view over the tenant tables, created by the migration's superuser and granted to the app role, is not `security_invoker`: it reads every org with its owner's rights.";
    MissingContextMatchesAll = "missing-context-matches-all", "RLS", 1188, ["RLS-004"],
        "The org policy lets a missing or empty `app.org_id` match every row (meant for migrations and backfills), so any query that forgets the context sees every org.";
    RatelimitOffByOne = "ratelimit-off-by-one", "RL", 193, ["RL-001"],
        "The limiter's script admits while `count <= limit` instead of `count < limit`, so every window admits one request more than the limit.";
}

impl fmt::Display for Flaw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Flaw {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Flaw::ALL.iter().copied().find(|f| f.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Flaw::ALL.iter().map(|f| f.name()).collect();
            format!("unknown flaw `{s}`; known flaws: {}", names.join(", "))
        })
    }
}

/// The set of injected flaws of one server instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flaws(Vec<Flaw>);

impl Flaws {
    /// No flaws.
    pub fn none() -> Self {
        Self::default()
    }

    /// Exactly these flaws.
    pub fn of(flaws: &[Flaw]) -> Self {
        let mut set = Self::default();
        for &flaw in flaws {
            set.insert(flaw);
        }
        set
    }

    /// Adds a flaw.
    pub fn insert(&mut self, flaw: Flaw) {
        if !self.0.contains(&flaw) {
            self.0.push(flaw);
        }
    }

    /// Whether `flaw` is injected.
    pub fn has(&self, flaw: Flaw) -> bool {
        self.0.contains(&flaw)
    }

    /// The injected flaws.
    pub fn iter(&self) -> impl Iterator<Item = Flaw> + '_ {
        self.0.iter().copied()
    }

    /// Whether none is injected.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &flaw in Flaw::ALL {
            assert_eq!(flaw.name().parse::<Flaw>(), Ok(flaw));
            assert!(seen.insert(flaw.name()), "duplicate name {}", flaw.name());
            assert!(!flaw.description().is_empty());
        }
        assert!("nope".parse::<Flaw>().unwrap_err().contains("no-app-filter"));
    }
}
