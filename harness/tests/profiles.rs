//! Target profiles: the worked examples in docs/profiles.md parse (so the
//! documentation stays true), and every kind of bad profile gets an error
//! naming file:line:column and what was expected (snapshotted).

use tenantry_harness::profile::{Profile, SessionSpec};
use tenantry_harness::template::{Body, QueryValue};

fn env(name: &str) -> Option<String> {
    match name {
        "CLERK_SECRET_KEY" => Some("sk_test_docs".into()),
        "CLERK_WEBHOOK_SIGNING_SECRET" => Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
        _ => None,
    }
}

const HEADER: &str =
    "base_url = \"http://127.0.0.1:1\"\n[session]\nsource = \"clerk-api\"\nsecret_key = \"sk\"\n";

fn toml_blocks() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/profiles.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.trim()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

#[test]
fn the_documented_profiles_parse() {
    let blocks = toml_blocks();
    assert_eq!(blocks.len(), 3, "docs/profiles.md has three TOML blocks");
    for (i, block) in blocks.iter().enumerate() {
        let text = if block.contains("base_url") {
            block.clone()
        } else {
            format!("{HEADER}{block}")
        };
        Profile::parse(&format!("docs/profiles.md block {}", i + 1), &text, &env)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
    // The tRPC example: mint, cookie, JSON-encoded query input with the org in it.
    let trpc = Profile::parse("trpc", &blocks[2], &env).unwrap();
    assert!(matches!(trpc.session, SessionSpec::Mint { .. }));
    assert!(!trpc.token_in_header);
    let read = trpc.resources[0].read.as_ref().unwrap();
    assert!(matches!(&read.query[0].1, QueryValue::Json(v) if v["json"]["orgId"] == "{{ org }}"));
    assert!(matches!(&trpc.resources[0].create.body, Some(Body::Json(_))));
    assert_eq!(trpc.org.json, ["/json/orgId"]);
}

#[test]
fn bad_profiles_name_the_place_and_what_was_expected() {
    let cases: &[(&str, &str)] = &[
        ("syntax", "base_url = \"http://x\"\n[session\n"),
        ("missing session", "base_url = \"http://x\"\n"),
        ("unknown top-level key", "base_url = \"http://x\"\nbsae = 1\n[session]\nsource = \"clerk-api\"\nsecret_key = \"k\"\n"),
        ("bad base_url", "base_url = \"ftp://x\"\n[session]\nsource = \"clerk-api\"\nsecret_key = \"k\"\n"),
        ("unknown source", "base_url = \"http://x\"\n[session]\nsource = \"okta\"\n"),
        ("key of another source", "base_url = \"http://x\"\n[session]\nsource = \"clerk-api\"\nsecret_key = \"k\"\nissuer = \"i\"\n"),
        ("clerk-api without key", "base_url = \"http://x\"\n[session]\nsource = \"clerk-api\"\n"),
        ("missing env var", "base_url = \"http://x\"\n[session]\nsource = \"clerk-api\"\nsecret_key = \"${NOT_SET_ANYWHERE}\"\n"),
        ("bad token_in", "base_url = \"http://x\"\n[session]\nsource = \"clerk-api\"\nsecret_key = \"k\"\ntoken_in = \"body\"\n"),
        ("mint off loopback", "base_url = \"http://x\"\n[session]\nsource = \"mint\"\nissuer = \"i\"\nlisten = \"0.0.0.0:80\"\n"),
        ("empty command", "base_url = \"http://x\"\n[session]\nsource = \"command\"\ncommand = []\n"),
        ("webhook secret", "base_url = \"http://x\"\n[session]\nsource = \"mint\"\nissuer = \"i\"\n[provision]\nvia = \"webhooks\"\nurl = \"/hooks\"\nsecret = \"plain\"\n"),
        ("unknown provisioning", "base_url = \"http://x\"\n[session]\nsource = \"mint\"\nissuer = \"i\"\n[provision]\nvia = \"carrier-pigeon\"\n"),
        ("unknown placeholder", "[[resources]]\nname = \"p\"\ncreate = { path = \"/p/{{ nope }}\" }\n"),
        ("read without id", "[[resources]]\nname = \"p\"\ncreate = { path = \"/p\" }\nread = { path = \"/p/1\" }\n"),
        ("search without q", "[[resources]]\nname = \"p\"\ncreate = { path = \"/p\" }\nsearch = { path = \"/s\" }\n"),
        ("unknown parent", "[[resources]]\nname = \"p\"\nparent = \"q\"\ncreate = { path = \"/p\" }\n"),
        ("duplicate resource", "[[resources]]\nname = \"p\"\ncreate = { path = \"/p\" }\n[[resources]]\nname = \"p\"\ncreate = { path = \"/q\" }\n"),
        ("relative path", "[[resources]]\nname = \"p\"\ncreate = { path = \"p\" }\n"),
        ("two bodies", "[[resources]]\nname = \"p\"\ncreate = { path = \"/p\", json = {}, form = {} }\n"),
        ("bad method", "[[resources]]\nname = \"p\"\ncreate = { method = \"FETCH\", path = \"/p\" }\n"),
        ("bad pointer", "[[resources]]\nname = \"p\"\nid = \"data.id\"\ncreate = { path = \"/p\" }\n"),
        ("unknown filter", "[[resources]]\nname = \"p\"\ncreate = { path = \"/p/{{ org | shout }}\" }\n"),
        ("admin_only unknown", "[[resources]]\nname = \"p\"\ncreate = { path = \"/p\" }\nadmin_only = [\"nuke\"]\n"),
        ("admin_only undeclared", "[[resources]]\nname = \"p\"\ncreate = { path = \"/p\" }\nadmin_only = [\"delete\"]\n"),
        ("org route without org", "[org]\nroutes = [{ path = \"/orgs\" }]\n"),
        ("job without done", "[[jobs]]\nstart = { path = \"/e\" }\npoll = { path = \"/e/{{ id }}\" }\nstatus = \"/s\"\ndone = []\n"),
        ("database url not postgres", "[database]\nurl = \"mysql://x\"\n"),
        ("database unknown key", "[database]\nurl = \"postgres://app@db/app\"\ntenant = \"org\"\n"),
        ("database setting", "[database]\nurl = \"postgres://app@db/app\"\ntenant_setting = \"org id\"\n"),
        ("database context without $1", "[database]\nurl = \"postgres://app@db/app\"\ncontext_statement = \"SET app.org_id = 'x'\"\n"),
        ("oauth without providers", "[oauth]\nproviders = []\nstart = { path = \"/c/{{ provider }}\" }\nauthorize_url = \"/url\"\ncallback = \"/cb\"\nstate_ttl_secs = 600\nconnections = { path = \"/i\" }\n"),
        ("oauth start without provider", "[oauth]\nproviders = [\"p\"]\nstart = { path = \"/connect\" }\nauthorize_url = \"/url\"\ncallback = \"/cb\"\nstate_ttl_secs = 600\nconnections = { path = \"/i\" }\n"),
        ("oauth authorize_url not a pointer", "[oauth]\nproviders = [\"p\"]\nstart = { path = \"/c/{{ provider }}\" }\nauthorize_url = \"url\"\ncallback = \"/cb\"\nstate_ttl_secs = 600\nconnections = { path = \"/i\" }\n"),
        ("oauth callback placeholder", "[oauth]\nproviders = [\"p\"]\nstart = { path = \"/c/{{ provider }}\" }\nauthorize_url = \"/url\"\ncallback = \"/cb/{{ org }}\"\nstate_ttl_secs = 600\nconnections = { path = \"/i\" }\n"),
        ("oauth return_to without json body", "[oauth]\nproviders = [\"p\"]\nstart = { path = \"/c/{{ provider }}\" }\nauthorize_url = \"/url\"\nreturn_to = \"/return_to\"\ncallback = \"/cb\"\nstate_ttl_secs = 600\nconnections = { path = \"/i\" }\n"),
        ("oauth deny with leading ?", "[oauth]\nproviders = [\"p\"]\nstart = { path = \"/c/{{ provider }}\" }\nauthorize_url = \"/url\"\ncallback = \"/cb\"\ndeny = \"?decision=deny\"\nstate_ttl_secs = 600\nconnections = { path = \"/i\" }\n"),
        ("oauth zero ttl", "[oauth]\nproviders = [\"p\"]\nstart = { path = \"/c/{{ provider }}\" }\nauthorize_url = \"/url\"\ncallback = \"/cb\"\nstate_ttl_secs = 0\nconnections = { path = \"/i\" }\n"),
        ("oauth missing connections", "[oauth]\nproviders = [\"p\"]\nstart = { path = \"/c/{{ provider }}\" }\nauthorize_url = \"/url\"\ncallback = \"/cb\"\nstate_ttl_secs = 600\n"),
        ("rate_limit without policies", "[rate_limit]\nbase_urls = [\"http://127.0.0.1:2\"]\n"),
        ("rate_limit empty base_urls", "[rate_limit]\nbase_urls = []\n[[rate_limit.policies]]\nname = \"s\"\nrequest = { path = \"/s\" }\nlimit = 5\nwindow_secs = 1\n"),
        ("rate_limit base_url not http", "[rate_limit]\nbase_urls = [\"127.0.0.1:2\"]\n[[rate_limit.policies]]\nname = \"s\"\nrequest = { path = \"/s\" }\nlimit = 5\nwindow_secs = 1\n"),
        ("rate_limit zero limit", "[[rate_limit.policies]]\nname = \"s\"\nrequest = { path = \"/s\" }\nlimit = 0\nwindow_secs = 1\n"),
        ("rate_limit zero window", "[[rate_limit.policies]]\nname = \"s\"\nrequest = { path = \"/s\" }\nlimit = 5\nwindow_secs = 0\n"),
        ("rate_limit unknown algorithm", "[[rate_limit.policies]]\nname = \"s\"\nrequest = { path = \"/s\" }\nlimit = 5\nwindow_secs = 1\nalgorithm = \"leaky\"\n"),
        ("rate_limit policy twice", "[[rate_limit.policies]]\nname = \"s\"\nrequest = { path = \"/s\" }\nlimit = 5\nwindow_secs = 1\n[[rate_limit.policies]]\nname = \"s\"\nrequest = { path = \"/t\" }\nlimit = 5\nwindow_secs = 1\n"),
        ("rate_limit request placeholder", "[[rate_limit.policies]]\nname = \"s\"\nrequest = { path = \"/s/{{ id }}\" }\nlimit = 5\nwindow_secs = 1\n"),
        ("rate_limit unknown key", "[[rate_limit.policies]]\nname = \"s\"\nrequest = { path = \"/s\" }\nlimit = 5\nwindow_secs = 1\nfail = \"open\"\n"),
        ("rate_limit hooks stop without start", "[[rate_limit.policies]]\nname = \"s\"\nrequest = { path = \"/s\" }\nlimit = 5\nwindow_secs = 1\n[rate_limit.hooks]\nstop_store = [\"ops/redis\", \"stop\"]\n"),
        ("rate_limit hooks empty command", "[[rate_limit.policies]]\nname = \"s\"\nrequest = { path = \"/s\" }\nlimit = 5\nwindow_secs = 1\n[rate_limit.hooks]\nadd_bypass_org = []\n"),
        ("rate_limit hooks unknown placeholder", "[[rate_limit.policies]]\nname = \"s\"\nrequest = { path = \"/s\" }\nlimit = 5\nwindow_secs = 1\n[rate_limit.hooks]\nadd_bypass_org = [\"ops/bypass\", \"{{ org_slug }}\"]\n"),
        ("rate_limit hooks store_url not redis", "[[rate_limit.policies]]\nname = \"s\"\nrequest = { path = \"/s\" }\nlimit = 5\nwindow_secs = 1\n[rate_limit.hooks]\nstore_url = \"http://127.0.0.1:6379\"\n"),
        ("rate_limit hooks timeout zero", "[[rate_limit.policies]]\nname = \"s\"\nrequest = { path = \"/s\" }\nlimit = 5\nwindow_secs = 1\n[rate_limit.hooks]\nstore_url = \"redis://127.0.0.1:6379\"\ntimeout_secs = 0\n"),
        ("rate_limit hooks unknown key", "[[rate_limit.policies]]\nname = \"s\"\nrequest = { path = \"/s\" }\nlimit = 5\nwindow_secs = 1\n[rate_limit.hooks]\nstop = [\"x\"]\n"),
        ("unknown template key", "[[resources]]\nname = \"p\"\ncreate = { path = \"/p\", bdoy = {} }\n"),
    ];
    let mut table = String::new();
    for (name, text) in cases {
        let text = if text.starts_with("base_url") {
            text.to_string()
        } else {
            format!("{HEADER}{text}")
        };
        let err = Profile::parse("target.toml", &text, &env)
            .err()
            .unwrap_or_else(|| panic!("{name}: accepted"));
        // The position is inside the text.
        assert!(
            err.line >= 1 && err.line <= text.lines().count() + 1,
            "{name}: {err}"
        );
        table.push_str(&format!("{name}\n  {err}\n"));
    }
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!("profile_errors", table));
}

#[test]
fn a_profile_file_that_cannot_be_read_says_so() {
    let err = Profile::load(std::path::Path::new("/nonexistent/target.toml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/target.toml:1:1: cannot read the profile"),
        "{err}"
    );
}

#[test]
fn the_reference_profile_declares_its_oauth_flow() {
    let profile = Profile::reference("http://127.0.0.1:1", "sk", "http://app");
    let oauth = profile.oauth.expect("[oauth] in the built-in profile");
    assert_eq!(oauth.providers, ["shopify", "quickbooks"]);
    assert_eq!(oauth.start.method, "POST");
    assert_eq!(oauth.start.path, "/api/integrations/{{ provider }}/connect");
    assert_eq!(oauth.authorize_url, "/authorize_url");
    assert_eq!(oauth.return_to.as_deref(), Some("/return_to"));
    assert_eq!(oauth.deny.as_deref(), Some("decision=deny"));
    assert_eq!(oauth.approve, "");
    assert_eq!(oauth.state_ttl, std::time::Duration::from_secs(600));
    assert_eq!(oauth.connections.path, "/api/integrations");
    assert_eq!(oauth.connection_items, "");
}
