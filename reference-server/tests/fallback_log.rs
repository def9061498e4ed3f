//! TPL-003's log half: the template-token fallback is logged at WARN with
//! the template name (and counted, see `identity::template_fallback`), and
//! the log line carries no token. Its own test binary, because it installs
//! the process-wide log subscriber.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_is_logged_at_warn_with_the_template_name() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let stack = common::TestStack::with_proxy().await;
    common::identity::template_fallback(&stack).await.unwrap();
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("falling back to the session token"))
        .unwrap_or_else(|| panic!("no fallback line in:\n{log}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("template=no-such-template"), "{line}");
    assert!(!line.contains("eyJ"), "a token in the log: {line}");
}
