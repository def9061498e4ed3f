//! Debian's `wrk` as the baseline for the harness's own client: the same
//! endpoint, token and concurrency. The token goes to wrk in a Lua script
//! (mode 0600, removed afterwards) rather than on its command line, where
//! any local user could read it.

use std::path::PathBuf;
use std::time::Duration;

/// What wrk measured.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkResult {
    /// Requests per second (wrk's `Requests/sec`).
    pub rps: f64,
    /// Median latency (ms).
    pub p50_ms: f64,
    /// 99th percentile latency (ms).
    pub p99_ms: f64,
    /// Requests completed.
    pub requests: u64,
    /// Answers that were not 2xx or 3xx.
    pub non_2xx: u64,
}

/// Where `wrk` is on `PATH`, if it is.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("wrk"))
        .find(|p| p.is_file())
}

/// Runs wrk against `url` with `header` (name, value; kept off the command
/// line), `connections` connections on `threads` threads for `duration`.
pub async fn run(
    wrk: &std::path::Path,
    url: &str,
    header: Option<(&str, &str)>,
    connections: usize,
    threads: usize,
    duration: Duration,
) -> Result<WrkResult, String> {
    let script = std::env::temp_dir().join(format!(
        "tenantry-wrk-{}-{}.lua",
        std::process::id(),
        &crate::oracle::new_canary()[4..14]
    ));
    let mut lua = String::new();
    if let Some((name, value)) = header {
        if value.contains("]==]") || name.contains("]==]") {
            return Err("the header cannot be passed to wrk".into());
        }
        lua.push_str(&format!("wrk.headers[ [==[{name}]==] ] = [==[{value}]==]\n"));
    }
    write_private(&script, &lua).map_err(|e| format!("writing {}: {e}", script.display()))?;
    let secs = duration.as_secs().max(1);
    let output = tokio::process::Command::new(wrk)
        .arg("-c")
        .arg(connections.max(threads).to_string())
        .arg("-t")
        .arg(threads.to_string())
        .arg("-d")
        .arg(format!("{secs}s"))
        .arg("--latency")
        .arg("-s")
        .arg(&script)
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await;
    let _ = std::fs::remove_file(&script);
    let output = output.map_err(|e| format!("running {}: {e}", wrk.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "wrk exited with {}: {}{}",
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    parse(&stdout).ok_or_else(|| format!("cannot read wrk's output:\n{stdout}"))
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// `1.23ms` / `850.00us` / `1.02s` in milliseconds.
fn millis(text: &str) -> Option<f64> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    number.trim().parse::<f64>().ok().map(|v| v * scale)
}

/// Reads wrk's (`--latency`) report.
pub fn parse(out: &str) -> Option<WrkResult> {
    let mut rps = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut requests = None;
    let mut non_2xx = 0;
    for line in out.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            rps = v.trim().parse::<f64>().ok();
        } else if let Some(v) = line.strip_prefix("50%") {
            p50 = millis(v);
        } else if let Some(v) = line.strip_prefix("99%") {
            p99 = millis(v);
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = v.trim().parse().unwrap_or(0);
        } else if line.contains(" requests in ") {
            requests = line.split_whitespace().next().and_then(|n| n.parse().ok());
        }
    }
    Some(WrkResult {
        rps: rps?,
        p50_ms: p50?,
        p99_ms: p99.unwrap_or(0.0),
        requests: requests.unwrap_or(0),
        non_2xx,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_reports_are_read() {
        let out = "Running 2s test @ http://127.0.0.1:8080/api/projects
  2 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.10ms  300.00us   9.00ms   90.00%
    Req/Sec     1.80k   100.00     2.00k    70.00%
  Latency Distribution
     50%  850.00us
     75%    1.20ms
     90%    1.50ms
     99%    2.10ms
  7200 requests in 2.00s, 3.00MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   3600.12
Transfer/sec:      1.50MB
";
        let r = parse(out).unwrap();
        assert_eq!(r.rps, 3600.12);
        assert!((r.p50_ms - 0.85).abs() < 1e-9);
        assert!((r.p99_ms - 2.1).abs() < 1e-9);
        assert_eq!(r.requests, 7200);
        assert_eq!(r.non_2xx, 3);
        assert_eq!(parse("garbage"), None);
    }
}
