//! Org-scoped OAuth connect flows over HTTP against the mock providers:
//! the happy path and every replay, expiry, race, swap, PKCE and redirect
//! attack — each refused with no connection written to any org. Runs on the
//! in-process state store and on Redis.

mod common;

use std::time::Duration;

use common::oauth_checks as oauth;
use common::TestStack;
use tenantry_harness::services::Redis;
use tenantry_reference::config::StoreKind;
use tenantry_reference::server::StackOptions;

pub const TTL: Duration = Duration::from_secs(1);

async fn stack_on(store: StoreKind) -> (TestStack, Option<Redis>) {
    let redis = match store {
        StoreKind::Redis => Some(Redis::start().await.expect("a Redis server")),
        StoreKind::Memory => None,
    };
    let url = redis.as_ref().map(|r| r.url().to_string());
    let stack = TestStack::with_config(
        StackOptions {
            dev_auth: true,
            ..StackOptions::default()
        },
        |c| {
            c.oauth.state_store = Some(store);
            c.oauth.redis_url = url;
            c.oauth.state_ttl_secs = TTL.as_secs();
        },
    )
    .await;
    (stack, redis)
}

async fn each_store<F, Fut>(check: F)
where
    F: Fn(TestStack) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    for store in [StoreKind::Memory, StoreKind::Redis] {
        let (stack, _redis) = stack_on(store).await;
        if let Err(e) = check(stack).await {
            panic!("{store:?} state store: {e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_and_replay_after_success() {
    each_store(|s| async move { oauth::happy_path_then_replay(&s).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_by_a_colleague_or_another_org_are_refused() {
    each_store(|s| async move { oauth::replay_by_colleague_and_other_org(&s).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_states_are_refused() {
    each_store(|s| async move { oauth::expired_state(&s, TTL).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_concurrent_callbacks_connect_once() {
    each_store(|s| async move { oauth::concurrent_callbacks(&s).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_swap_pkce_mismatch_and_error_callbacks_are_refused() {
    each_store(|s| async move {
        oauth::provider_swap(&s).await?;
        oauth::pkce_mismatch(&s).await?;
        oauth::error_callback_then_replay(&s).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_paths_are_allow_listed() {
    let (stack, _) = stack_on(StoreKind::Memory).await;
    oauth::no_open_redirect(&stack).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_sealed_at_rest_and_disconnect_is_org_scoped() {
    let (stack, _) = stack_on(StoreKind::Memory).await;
    oauth::happy_path_then_replay(&stack).await.unwrap();
    let db = stack.superuser().await;
    let row = db
        .query_one(
            "SELECT id, access_token_enc, refresh_token_enc FROM app.integrations WHERE organization_id = $1",
            &[&oauth::ORG_A],
        )
        .await
        .unwrap();
    let id: String = row.get(0);
    let access: Vec<u8> = row.get(1);
    assert!(access.len() > 28, "nonce + ciphertext + tag");
    assert!(
        !access.windows(3).any(|w| w == b"at_"),
        "the access token is stored in clear"
    );
    let refresh: Option<Vec<u8>> = row.get(2);
    assert!(refresh.is_some_and(|r| !r.windows(3).any(|w| w == b"rt_")));
    // Org B cannot disconnect org A's integration; a member without the
    // permission cannot either.
    let other = oauth::send(
        &stack,
        Some(oauth::CAROL),
        "DELETE",
        &format!("/api/integrations/{id}"),
        None,
    )
    .await;
    assert_eq!(other.status, 404, "{}", other.text);
    let weak = stack
        .http
        .delete(format!("{}/api/integrations/{id}", stack.base))
        .header(
            "x-tenantry-dev-tenant",
            format!("{};dave;org:member", oauth::ORG_A),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(weak.status(), 403);
    let gone = oauth::send(
        &stack,
        Some(oauth::ALICE),
        "DELETE",
        &format!("/api/integrations/{id}"),
        None,
    )
    .await;
    assert_eq!(gone.status, 204, "{}", gone.text);
    assert!(oauth::integrations(&stack, oauth::ALICE).await.is_empty());
}
