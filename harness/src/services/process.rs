//! Operating-system plumbing for locally started servers: run directories,
//! free ports, dropping root, and reaping servers left behind by a process
//! that died without running its destructors (SIGKILL, `panic = "abort"`).

use std::fs;
use std::io;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::ServiceError;

/// The folder under which every run directory lives.
pub(crate) fn base_dir() -> PathBuf {
    std::env::temp_dir().join("tenantry-services")
}

/// The folder where initdb'd template clusters are cached per machine.
pub(crate) fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TENANTRY_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    std::env::temp_dir().join("tenantry-cache")
}

/// Creates `dir` (and parents) world-traversable, so a dropped-privilege
/// server can reach its own run directory below it.
pub(crate) fn create_traversable_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut perms = fs::metadata(dir)?.permissions();
    if perms.mode() & 0o755 != 0o755 {
        perms.set_mode(0o755);
        fs::set_permissions(dir, perms)?;
    }
    Ok(())
}

/// A 128-bit random hex string.
pub(crate) fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    // The OS RNG failing is not something a test harness can recover from,
    // but fall back to time+pid entropy rather than panicking.
    if getrandom_fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes = (nanos ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn getrandom_fill(buf: &mut [u8]) -> io::Result<()> {
    use std::io::Read;
    fs::File::open("/dev/urandom")?.read_exact(buf)
}

/// The kernel's ephemeral port range, where outgoing connections get their
/// local port: `/proc/sys/net/ipv4/ip_local_port_range`, or Linux's default
/// when it cannot be read.
pub(crate) fn ephemeral_range() -> (u16, u16) {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| parse_port_range(&text))
        .unwrap_or((32768, 60999))
}

/// Parses `ip_local_port_range` ("32768\t60999\n").
pub(crate) fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let mut parts = text.split_whitespace().map(str::parse::<u16>);
    let (low, high) = (parts.next()?.ok()?, parts.next()?.ok()?);
    (low <= high).then_some((low, high))
}

/// Where a service port is drawn from: outside the ephemeral range, so no
/// outgoing connection can ever hold it. A client that connects to a port
/// nothing listens on, from a local port picked out of the ephemeral range,
/// can connect to itself when both are the same (a TCP simultaneous open);
/// a server stopped for a moment would then find its port taken. Below the
/// range (up to 16 384 ports, never under 1 024), else above it.
pub(crate) fn service_ports((low, high): (u16, u16)) -> Option<std::ops::RangeInclusive<u16>> {
    const FLOOR: u16 = 1024;
    const SPAN: u16 = 16_384;
    if low > FLOOR + 256 {
        return Some(low.saturating_sub(SPAN).max(FLOOR)..=low - 1);
    }
    (high < u16::MAX - 256).then(|| high + 1..=high.saturating_add(SPAN))
}

/// A port on 127.0.0.1 that was free a moment ago, outside the kernel's
/// ephemeral range ([`service_ports`]). The server that binds it may still
/// lose a race with another process; callers retry on that.
pub(crate) fn free_port() -> io::Result<u16> {
    let Some(ports) = service_ports(ephemeral_range()) else {
        // The ephemeral range covers (nearly) every port: nothing is outside it.
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        return Ok(listener.local_addr()?.port());
    };
    let span = u32::from(*ports.end() - *ports.start()) + 1;
    let mut seed = u64::from_str_radix(&random_hex()[..16], 16).unwrap_or(0x9e37_79b9_7f4a_7c15);
    let mut last = io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free port outside the ephemeral range",
    );
    for _ in 0..256 {
        // xorshift: a new candidate each round without reading /dev/urandom again.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let port = *ports.start() + (seed % u64::from(span)) as u16;
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(listener) => return Ok(listener.local_addr()?.port()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The account a server runs as.
#[derive(Debug, Clone)]
pub(crate) struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Whether this process runs as root: `/proc/self` is owned by the effective uid.
pub(crate) fn running_as_root() -> bool {
    fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// Postgres refuses to run as root. When we are root, pick an unprivileged
/// account: `TENANTRY_PG_USER`, else `postgres`, else `tenantry` (created
/// with `useradd` if missing), else `nobody`.
pub(crate) fn unprivileged_account() -> Result<Option<RunAs>, ServiceError> {
    if !running_as_root() {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let lookup = |name: &str| -> Option<RunAs> {
        passwd.lines().find_map(|line| {
            let mut fields = line.split(':');
            let user = fields.next()?;
            if user != name {
                return None;
            }
            let _password = fields.next()?;
            let uid = fields.next()?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            Some(RunAs {
                name: user.to_string(),
                uid,
                gid,
            })
        })
    };
    if let Ok(name) = std::env::var("TENANTRY_PG_USER") {
        return lookup(&name).map(Some).ok_or_else(|| ServiceError::Setup {
            what: format!("TENANTRY_PG_USER names the account `{name}`, which does not exist"),
        });
    }
    for name in ["postgres", "tenantry"] {
        if let Some(account) = lookup(name) {
            return Ok(Some(account));
        }
    }
    let created = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "tenantry",
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if created {
        let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
        if let Some(line) = passwd.lines().find(|l| l.starts_with("tenantry:")) {
            let f: Vec<&str> = line.split(':').collect();
            if let (Some(uid), Some(gid)) = (f.get(2), f.get(3)) {
                if let (Ok(uid), Ok(gid)) = (uid.parse(), gid.parse()) {
                    return Ok(Some(RunAs {
                        name: "tenantry".into(),
                        uid,
                        gid,
                    }));
                }
            }
        }
    }
    lookup("nobody").map(Some).ok_or_else(|| ServiceError::Setup {
        what: "running as root and no unprivileged account (postgres, tenantry, nobody) \
               exists to run Postgres as; create one or set TENANTRY_PG_USER"
            .into(),
    })
}

/// Gives `path` and everything below it to `account`.
pub(crate) fn chown_tree(path: &Path, account: &RunAs) -> io::Result<()> {
    std::os::unix::fs::chown(path, Some(account.uid), Some(account.gid))?;
    if fs::symlink_metadata(path)?.is_dir() {
        for entry in fs::read_dir(path)? {
            chown_tree(&entry?.path(), account)?;
        }
    }
    Ok(())
}

/// Copies a directory tree, keeping permission bits.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    fs::set_permissions(to, fs::metadata(from)?.permissions())?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path())?, &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Sends a signal by name (`INT`, `QUIT`, `KILL`) through `kill(1)`; this
/// crate forbids `unsafe`, so no libc.
pub(crate) fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status();
}

/// Whether a process with this pid is alive (and not a zombie).
pub(crate) fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state field follows the parenthesised command name.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// Start time of a process in clock ticks since boot, to tell a pid from a
/// recycled one.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // Field 22 overall; `rest` starts at field 3.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// A run directory owned by this process. It records the owner so that a
/// later process can reap servers whose owner died without cleaning up.
#[derive(Debug)]
pub(crate) struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub(crate) fn create(kind: &str) -> Result<Self, ServiceError> {
        let base = base_dir();
        create_traversable_dir(&base).map_err(|e| ServiceError::io("create the run folder", &base, e))?;
        reap_stale(&base);
        let pid = std::process::id();
        let path = base.join(format!("{kind}-{pid}-{}", &random_hex()[..8]));
        create_traversable_dir(&path).map_err(|e| ServiceError::io("create the run folder", &path, e))?;
        let owner = format!("{pid} {}\n", start_time(pid).unwrap_or(0));
        fs::write(path.join("owner"), owner)
            .map_err(|e| ServiceError::io("write", &path.join("owner"), e))?;
        Ok(Self { path })
    }

    /// Records the pid of a server started in this directory.
    pub(crate) fn record_server(&self, pid: u32) {
        let _ = fs::write(self.path.join("server.pid"), format!("{pid}\n"));
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Stops servers whose owning process is gone and removes their folders.
fn reap_stale(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else { return };
    for entry in entries.flatten() {
        let dir = entry.path();
        let Ok(owner) = fs::read_to_string(dir.join("owner")) else {
            continue;
        };
        let mut parts = owner.split_whitespace();
        let (Some(pid), Some(started)) = (
            parts.next().and_then(|p| p.parse::<u32>().ok()),
            parts.next().and_then(|s| s.parse::<u64>().ok()),
        ) else {
            continue;
        };
        let owner_alive = alive(pid) && start_time(pid) == Some(started);
        if owner_alive {
            continue;
        }
        if let Some(server) = fs::read_to_string(dir.join("server.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            if alive(server) {
                signal(server, "QUIT");
                wait_gone(server, Duration::from_secs(3));
                if alive(server) {
                    signal(server, "KILL");
                }
            }
        }
        tracing::debug!(dir = %dir.display(), "reaped a stale service folder");
        let _ = fs::remove_dir_all(&dir);
    }
}

/// Polls until `pid` is gone or `limit` passes.
pub(crate) fn wait_gone(pid: u32, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    while alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Finds an executable by name on PATH.
pub(crate) fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

pub(crate) fn is_executable(path: &Path) -> bool {
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The last `n` lines of a log file, for error messages.
pub(crate) fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_whose_owner_died_is_reaped() {
        let base = std::env::temp_dir().join(format!("tenantry-reap-test-{}", random_hex()));
        create_traversable_dir(&base).unwrap();
        // An owner that is certainly gone, and a "server" that is alive.
        let mut owner = Command::new("true").spawn().unwrap();
        let owner_pid = owner.id();
        owner.wait().unwrap();
        let mut server = Command::new("sleep").arg("30").spawn().unwrap();
        let stale = base.join("pg-stale");
        fs::create_dir_all(&stale).unwrap();
        fs::write(stale.join("owner"), format!("{owner_pid} 1\n")).unwrap();
        fs::write(stale.join("server.pid"), format!("{}\n", server.id())).unwrap();
        // A folder of a live owner (this process) is left alone.
        let live = base.join("pg-live");
        fs::create_dir_all(&live).unwrap();
        let me = std::process::id();
        fs::write(live.join("owner"), format!("{me} {}\n", start_time(me).unwrap())).unwrap();

        reap_stale(&base);

        let status = server.wait().unwrap();
        assert!(!status.success(), "the orphaned server was signalled");
        assert!(!stale.exists(), "the stale folder is gone");
        assert!(live.exists(), "a live owner's folder stays");
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn free_ports_are_bindable_and_outside_the_ephemeral_range() {
        let (low, high) = ephemeral_range();
        for _ in 0..20 {
            let port = free_port().unwrap();
            assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
            assert!(
                !(low..=high).contains(&port),
                "port {port} lies in the ephemeral range {low}..={high}"
            );
        }
    }

    #[test]
    fn service_ports_avoid_the_ephemeral_range() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_port_range("1024 65535"), Some((1024, 65535)));
        assert_eq!(parse_port_range("60999 32768"), None);
        assert_eq!(parse_port_range("garbage"), None);
        assert_eq!(service_ports((32768, 60999)), Some(16384..=32767));
        assert_eq!(service_ports((10000, 20000)), Some(1024..=9999));
        // The range starts too low: above it instead.
        assert_eq!(service_ports((1024, 40000)), Some(40001..=56384));
        assert_eq!(service_ports((1024, 65535)), None);
    }
}
