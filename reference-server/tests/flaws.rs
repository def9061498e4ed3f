//! Every injected flaw makes the check meant for it fail — the same check
//! that passes on the clean stack in `data_plane.rs`, `proxy.rs` and
//! `identity.rs`.
#![cfg(feature = "inject")]

mod common;

use common::checks::{self, seed, Check};
use common::identity;
use common::token_checks;
use common::TestStack;
use tenantry_reference::inject::Flaw;

/// Runs, on a stack with `flaw` injected, the check that must catch it. The
/// match is exhaustive: a new flaw does not compile until it has a check.
async fn catching_check(flaw: Flaw) -> Check {
    if matches!(flaw.family(), "TOK" | "ORG" | "SES" | "TPL") {
        // Identity flaws live in the proxy, the identity service and the
        // app's auth handlers: attack them with real tokens and sign-ins.
        let stack = TestStack::with_proxy_and_flaws(&[flaw]).await;
        return match flaw {
            Flaw::JwtAlgNone
            | Flaw::JwtHs256Confusion
            | Flaw::JwtSkipExp
            | Flaw::JwtIgnoreAzp
            | Flaw::TemplateTokenAsSession => {
                let world = token_checks::seed(&stack).await;
                token_checks::forged_tokens_refused(&stack, &world).await
            }
            Flaw::TrustOrgParam | Flaw::OrgPathUnchecked => {
                let world = token_checks::seed(&stack).await;
                token_checks::org_params_refused(&stack, &world).await
            }
            Flaw::RoleFromClaimUnsigned => identity::role_from_verified_token_only(&stack).await,
            Flaw::ClientTrustAsComplete => identity::client_trust_safety(&stack).await,
            Flaw::ClientTrustStuck => identity::client_trust_liveness(&stack).await,
            Flaw::TemplateFallback500 => identity::template_fallback(&stack).await,
            other => panic!("{other} is in family {} but has no proxy check", other.family()),
        };
    }
    if flaw.family() == "RL" {
        return rate_limit_check(flaw).await;
    }
    if flaw.family() == "OAU" {
        return oauth_check(flaw).await;
    }
    let stack = TestStack::with_flaws(&[flaw]).await;
    let world = seed(&stack).await;
    match flaw {
        Flaw::RlsNotForced => checks::rls_alone(&stack, &world)
            .await
            .and(checks::catalog(&stack).await),
        Flaw::NoAppFilter => checks::wrapper_alone(&stack, &world).await,
        Flaw::NoRls => checks::rls_alone(&stack, &world).await,
        Flaw::SessionScopedContext => checks::pooled_reuse(&stack, &world).await,
        Flaw::CacheKeyWithoutOrg => checks::stats_isolation(&world).await,
        Flaw::JobWithoutOrg => checks::export_isolation(&world).await,
        Flaw::SearchWithoutOrgFilter | Flaw::UpdateWithoutOrgFilter => {
            checks::wrapper_alone(&stack, &world).await
        }
        Flaw::ParentKeyWithoutOrg => checks::http_isolation(&world)
            .await
            .and(checks::catalog(&stack).await),
        Flaw::GrantAllToAppRole | Flaw::ReportViewNotInvoker => checks::catalog(&stack).await,
        Flaw::MissingContextMatchesAll => checks::no_context(&stack).await,
        Flaw::JwtAlgNone
        | Flaw::JwtHs256Confusion
        | Flaw::JwtSkipExp
        | Flaw::JwtIgnoreAzp
        | Flaw::TemplateTokenAsSession
        | Flaw::TrustOrgParam
        | Flaw::OrgPathUnchecked
        | Flaw::RoleFromClaimUnsigned
        | Flaw::ClientTrustAsComplete
        | Flaw::ClientTrustStuck
        | Flaw::TemplateFallback500
        | Flaw::RatelimitPerIp
        | Flaw::RatelimitPerUser
        | Flaw::RatelimitGlobalKey
        | Flaw::RatelimitNonatomic
        | Flaw::RatelimitBypassIgnored
        | Flaw::RatelimitRejectedConsumes
        | Flaw::RatelimitHeadersWrong
        | Flaw::RatelimitFailOpenSilent
        | Flaw::RatelimitOffByOne
        | Flaw::OauthStateNoTtl
        | Flaw::OauthStateReusable
        | Flaw::OauthStateNotUserBound
        | Flaw::OauthStateNotOrgBound
        | Flaw::OauthStateNotProviderBound
        | Flaw::OauthStateRace
        | Flaw::OauthNoPkce
        | Flaw::OauthOpenRedirect => unreachable!("handled above"),
    }
}

/// OAuth flaws, on a dev-auth stack with the in-process state store and a
/// one-second state TTL.
async fn oauth_check(flaw: Flaw) -> Check {
    use common::oauth_checks as oauth;
    use tenantry_reference::inject::Flaws;
    use tenantry_reference::server::StackOptions;
    let ttl = std::time::Duration::from_secs(1);
    let options = StackOptions {
        dev_auth: true,
        flaws: Flaws::of(&[flaw]),
        ..StackOptions::default()
    };
    let stack = TestStack::with_config(options, |c| c.oauth.state_ttl_secs = ttl.as_secs()).await;
    match flaw {
        Flaw::OauthStateNoTtl => oauth::expired_state(&stack, ttl).await,
        Flaw::OauthStateReusable => oauth::happy_path_then_replay(&stack).await,
        Flaw::OauthStateNotUserBound | Flaw::OauthStateNotOrgBound => {
            oauth::replay_by_colleague_and_other_org(&stack).await
        }
        Flaw::OauthStateNotProviderBound => oauth::provider_swap(&stack).await,
        Flaw::OauthStateRace => oauth::concurrent_callbacks(&stack).await,
        Flaw::OauthNoPkce => oauth::pkce_mismatch(&stack).await,
        Flaw::OauthOpenRedirect => oauth::no_open_redirect(&stack).await,
        other => panic!("{other} is in family OAU but has no OAuth check"),
    }
}

/// Rate-limit flaws, on a dev-auth stack limited by a real Redis.
async fn rate_limit_check(flaw: Flaw) -> Check {
    use common::ratelimit_checks as rl;
    use tenantry_reference::config::StoreKind;
    use tenantry_reference::inject::Flaws;
    use tenantry_reference::server::StackOptions;
    let options = StackOptions {
        flaws: Flaws::of(&[flaw]),
        ..StackOptions::default()
    };
    let (stack, redis) = rl::stack(StoreKind::Redis, options, |c| {
        c.rate_limit.bypass_orgs = vec!["org_rl_vip".into()];
    })
    .await;
    match flaw {
        Flaw::RatelimitPerIp | Flaw::RatelimitGlobalKey => rl::orgs_independent(&stack).await,
        Flaw::RatelimitPerUser => rl::users_share_the_org_budget(&stack).await,
        Flaw::RatelimitNonatomic => rl::exact_under_concurrency(&stack, &[&stack.base], "org_rl_exact").await,
        Flaw::RatelimitBypassIgnored => rl::bypass_applies(&stack, "org_rl_vip").await,
        Flaw::RatelimitRejectedConsumes => rl::rejected_do_not_consume(&stack).await,
        Flaw::RatelimitHeadersWrong => rl::headers_consistent(&stack).await,
        Flaw::RatelimitFailOpenSilent => rl::store_down_then_recovery(&stack, redis.as_ref().unwrap()).await,
        Flaw::RatelimitOffByOne => rl::exact_under_concurrency(&stack, &[&stack.base], "org_rl_exact").await,
        other => panic!("{other} is in family RL but has no rate-limit check"),
    }
}

async fn expect_caught(flaw: Flaw) {
    match catching_check(flaw).await {
        Ok(()) => panic!("flaw {flaw} was injected but its check passed"),
        Err(violation) => eprintln!("{flaw} caught:\n{violation}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rls_not_forced_is_caught() {
    expect_caught(Flaw::RlsNotForced).await;
    // The catalog sweep sees it on its own too.
    let stack = TestStack::with_flaws(&[Flaw::RlsNotForced]).await;
    let err = checks::catalog(&stack).await.unwrap_err();
    assert!(err.contains("RLS not forced"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_app_filter_is_caught_by_layer_ablation() {
    expect_caught(Flaw::NoAppFilter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_app_filter_is_still_contained_by_rls() {
    // Defence in depth: with the app filter gone, RLS alone keeps HTTP isolated.
    let stack = TestStack::with_flaws(&[Flaw::NoAppFilter]).await;
    let world = seed(&stack).await;
    checks::http_isolation(&world).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_rls_is_caught() {
    expect_caught(Flaw::NoRls).await;
    let stack = TestStack::with_flaws(&[Flaw::NoRls]).await;
    let world = seed(&stack).await;
    assert!(checks::no_context(&stack).await.is_err());
    assert!(checks::cross_org_writes(&stack, &world).await.is_err());
    assert!(checks::catalog(&stack).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_scoped_context_is_caught_on_pooled_reuse() {
    expect_caught(Flaw::SessionScopedContext).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_key_without_org_is_caught() {
    expect_caught(Flaw::CacheKeyWithoutOrg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_without_org_is_caught() {
    expect_caught(Flaw::JobWithoutOrg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_alg_none_is_caught() {
    expect_caught(Flaw::JwtAlgNone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_hs256_confusion_is_caught() {
    expect_caught(Flaw::JwtHs256Confusion).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_skip_exp_is_caught() {
    expect_caught(Flaw::JwtSkipExp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_ignore_azp_is_caught() {
    expect_caught(Flaw::JwtIgnoreAzp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_token_as_session_is_caught() {
    expect_caught(Flaw::TemplateTokenAsSession).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_org_param_is_caught() {
    expect_caught(Flaw::TrustOrgParam).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_path_unchecked_is_caught() {
    expect_caught(Flaw::OrgPathUnchecked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_from_claim_unsigned_is_caught() {
    expect_caught(Flaw::RoleFromClaimUnsigned).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_trust_as_complete_is_caught() {
    expect_caught(Flaw::ClientTrustAsComplete).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_trust_stuck_is_caught() {
    expect_caught(Flaw::ClientTrustStuck).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_fallback_500_is_caught() {
    expect_caught(Flaw::TemplateFallback500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratelimit_per_ip_is_caught() {
    expect_caught(Flaw::RatelimitPerIp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratelimit_per_user_is_caught() {
    expect_caught(Flaw::RatelimitPerUser).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratelimit_global_key_is_caught() {
    expect_caught(Flaw::RatelimitGlobalKey).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratelimit_nonatomic_is_caught() {
    expect_caught(Flaw::RatelimitNonatomic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratelimit_bypass_ignored_is_caught() {
    expect_caught(Flaw::RatelimitBypassIgnored).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratelimit_rejected_consumes_is_caught() {
    expect_caught(Flaw::RatelimitRejectedConsumes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratelimit_headers_wrong_is_caught() {
    expect_caught(Flaw::RatelimitHeadersWrong).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratelimit_fail_open_silent_is_caught() {
    expect_caught(Flaw::RatelimitFailOpenSilent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_state_no_ttl_is_caught() {
    expect_caught(Flaw::OauthStateNoTtl).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_state_reusable_is_caught() {
    expect_caught(Flaw::OauthStateReusable).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_state_not_user_bound_is_caught() {
    expect_caught(Flaw::OauthStateNotUserBound).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_state_not_org_bound_is_caught() {
    expect_caught(Flaw::OauthStateNotOrgBound).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_state_not_provider_bound_is_caught() {
    expect_caught(Flaw::OauthStateNotProviderBound).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_state_race_is_caught() {
    expect_caught(Flaw::OauthStateRace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_no_pkce_is_caught() {
    expect_caught(Flaw::OauthNoPkce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_open_redirect_is_caught() {
    expect_caught(Flaw::OauthOpenRedirect).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_without_org_filter_is_caught_by_layer_ablation() {
    expect_caught(Flaw::SearchWithoutOrgFilter).await;
    // RLS alone still keeps the search isolated on the default stack.
    let stack = TestStack::with_flaws(&[Flaw::SearchWithoutOrgFilter]).await;
    let world = seed(&stack).await;
    checks::http_isolation(&world).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_without_org_filter_is_caught_by_layer_ablation() {
    expect_caught(Flaw::UpdateWithoutOrgFilter).await;
    let stack = TestStack::with_flaws(&[Flaw::UpdateWithoutOrgFilter]).await;
    let world = seed(&stack).await;
    checks::http_isolation(&world).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_key_without_org_is_caught() {
    expect_caught(Flaw::ParentKeyWithoutOrg).await;
    let stack = TestStack::with_flaws(&[Flaw::ParentKeyWithoutOrg]).await;
    let world = seed(&stack).await;
    let err = checks::http_isolation(&world).await.unwrap_err();
    assert!(err.contains("create a document under A's project"), "{err}");
    let err = checks::catalog(&stack).await.unwrap_err();
    assert!(err.contains("without organization_id"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_all_to_app_role_is_caught() {
    expect_caught(Flaw::GrantAllToAppRole).await;
    let stack = TestStack::with_flaws(&[Flaw::GrantAllToAppRole]).await;
    let err = checks::catalog(&stack).await.unwrap_err();
    assert!(err.contains("TRUNCATE"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_view_not_invoker_is_caught() {
    expect_caught(Flaw::ReportViewNotInvoker).await;
    let stack = TestStack::with_flaws(&[Flaw::ReportViewNotInvoker]).await;
    let err = checks::catalog(&stack).await.unwrap_err();
    assert!(err.contains("not security_invoker"), "{err}");
    // And it really leaks: the app role, with org A set, reads org B's rows
    // through it.
    let world = seed(&stack).await;
    let mut app = stack.app_client().await;
    let tx = app.transaction().await.unwrap();
    tx.execute("SELECT set_config('app.org_id', $1, true)", &[&world.a.org])
        .await
        .unwrap();
    let orgs: Vec<String> = tx
        .query("SELECT DISTINCT organization_id FROM app.project_activity", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(orgs.contains(&world.b.org), "{orgs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_context_matches_all_is_caught() {
    expect_caught(Flaw::MissingContextMatchesAll).await;
    // Requests always set the context, so HTTP stays isolated.
    let stack = TestStack::with_flaws(&[Flaw::MissingContextMatchesAll]).await;
    let world = seed(&stack).await;
    checks::http_isolation(&world).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratelimit_off_by_one_is_caught() {
    expect_caught(Flaw::RatelimitOffByOne).await;
}

#[test]
fn every_flaw_is_listed_here() {
    // Flaw::ALL is generated from the enum; the exhaustive match in
    // `catching_check` covers each one, and this names the tests above.
    let tested = [
        Flaw::RlsNotForced,
        Flaw::NoAppFilter,
        Flaw::NoRls,
        Flaw::SessionScopedContext,
        Flaw::CacheKeyWithoutOrg,
        Flaw::JobWithoutOrg,
        Flaw::JwtAlgNone,
        Flaw::JwtHs256Confusion,
        Flaw::JwtSkipExp,
        Flaw::JwtIgnoreAzp,
        Flaw::TemplateTokenAsSession,
        Flaw::TrustOrgParam,
        Flaw::OrgPathUnchecked,
        Flaw::RoleFromClaimUnsigned,
        Flaw::ClientTrustAsComplete,
        Flaw::ClientTrustStuck,
        Flaw::TemplateFallback500,
        Flaw::RatelimitPerIp,
        Flaw::RatelimitPerUser,
        Flaw::RatelimitGlobalKey,
        Flaw::RatelimitNonatomic,
        Flaw::RatelimitBypassIgnored,
        Flaw::RatelimitRejectedConsumes,
        Flaw::RatelimitHeadersWrong,
        Flaw::RatelimitFailOpenSilent,
        Flaw::OauthStateNoTtl,
        Flaw::OauthStateReusable,
        Flaw::OauthStateNotUserBound,
        Flaw::OauthStateNotOrgBound,
        Flaw::OauthStateNotProviderBound,
        Flaw::OauthStateRace,
        Flaw::OauthNoPkce,
        Flaw::OauthOpenRedirect,
        Flaw::SearchWithoutOrgFilter,
        Flaw::UpdateWithoutOrgFilter,
        Flaw::ParentKeyWithoutOrg,
        Flaw::GrantAllToAppRole,
        Flaw::ReportViewNotInvoker,
        Flaw::MissingContextMatchesAll,
        Flaw::RatelimitOffByOne,
    ];
    for flaw in Flaw::ALL {
        assert!(tested.contains(flaw), "flaw {flaw} has no test in flaws.rs");
    }
}
