//! `[rate_limit.hooks]`: the profile's commands act as the RL suite's
//! hooks — placeholders and environment filled, failures and timeouts
//! reported with standard error, a missing command named.

use std::time::Duration;

use tenantry_harness::limits::{CommandHooks, LimitsHooks};
use tenantry_harness::profile::Profile;

fn declared(section: &str) -> CommandHooks {
    let text = format!(
        "base_url = \"http://127.0.0.1:1\"\n[session]\nsource = \"clerk-api\"\nsecret_key = \"sk\"\n\
         [[rate_limit.policies]]\nname = \"s\"\nrequest = {{ path = \"/s\" }}\nlimit = 5\nwindow_secs = 1\n\
         [rate_limit.hooks]\n{section}"
    );
    let vars = |name: &str| (name == "STORE_PASSWORD").then(|| "hunter2".to_string());
    let profile = Profile::parse("hooks.toml", &text, &vars).unwrap_or_else(|e| panic!("{e}"));
    let spec = profile.rate_limit.unwrap().hooks.expect("hooks");
    assert!(
        !format!("{spec:?}").contains("hunter2"),
        "the store URL is printed: {spec:?}"
    );
    CommandHooks::new(spec)
}

#[tokio::test]
async fn the_profiles_commands_are_the_hooks() {
    let dir = std::env::temp_dir().join(format!("tenantry-hooks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    let log_s = log.display().to_string();
    let hooks = declared(&format!(
        "add_bypass_org = [\"sh\", \"-c\", \"echo bypass $1 $TENANTRY_ORG_ID >> {log_s}\", \"sh\", \"{{{{ org_id }}}}\"]\n\
         bypass_reload_secs = 7\n\
         stop_store = [\"sh\", \"-c\", \"echo stop >> {log_s}\"]\n\
         start_store = [\"sh\", \"-c\", \"echo start >> {log_s}\"]\n\
         store_url = \"redis://:${{STORE_PASSWORD}}@127.0.0.1:6390\"\n"
    ));
    hooks.add_bypass_org("org_2b; rm -rf /").await.unwrap();
    hooks.stop_store().await.unwrap();
    hooks.start_store().await.unwrap();
    // No shell between the harness and the command: the org id is one
    // argument, whatever it holds.
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "bypass org_2b; rm -rf / org_2b; rm -rf /\nstop\nstart\n"
    );
    assert_eq!(hooks.bypass_reload_within(), Duration::from_secs(7));
    assert_eq!(
        hooks.store_url().as_deref(),
        Some("redis://:hunter2@127.0.0.1:6390")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_failing_slow_or_missing_command_is_the_reason_not_to_run() {
    let hooks = declared(
        "add_bypass_org = [\"sh\", \"-c\", \"echo 'bypass list is read-only' >&2; exit 3\"]\n\
         stop_store = [\"sleep\", \"5\"]\n\
         start_store = [\"tenantry-no-such-program\"]\n\
         timeout_secs = 1\n",
    );
    let failed = hooks.add_bypass_org("org_x").await.unwrap_err();
    assert!(
        failed.contains("add_bypass_org")
            && failed.contains("bypass list is read-only")
            && failed.contains('3'),
        "{failed}"
    );
    let slow = hooks.stop_store().await.unwrap_err();
    assert!(slow.contains("did not finish within 1.0 s"), "{slow}");
    let missing = hooks.start_store().await.unwrap_err();
    assert!(
        missing.contains("could not start `tenantry-no-such-program`"),
        "{missing}"
    );
    // Only a store URL: the commands are missing, and say which.
    let only_url = declared("store_url = \"redis://127.0.0.1:6390\"\n");
    let none = only_url.add_bypass_org("org_x").await.unwrap_err();
    assert_eq!(none, "[rate_limit.hooks] has no `add_bypass_org` command");
    assert_eq!(only_url.bypass_reload_within(), Duration::from_secs(5));
    assert!(only_url.stop_store().await.unwrap_err().contains("`stop_store`"));
}
