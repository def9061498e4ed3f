//! Postgres from local server binaries: found on PATH, through
//! `pg_config --bindir`, or in Debian's `/usr/lib/postgresql/<major>/bin`.
//!
//! Cold start runs `initdb` once per machine and Postgres version into a
//! cache folder; every later start copies that template cluster into a fresh
//! run folder and starts `postgres` on a free loopback port. The server runs
//! as an unprivileged account when this process is root.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{self, RunAs, RunDir};
use super::ServiceError;

/// The superuser every cluster we initdb has.
pub(crate) const SUPERUSER: &str = "tenantry";

#[derive(Debug, Clone)]
pub(crate) struct Binaries {
    pub bindir: PathBuf,
    pub version: String,
}

impl Binaries {
    fn tool(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }
}

/// Finds `initdb` and `postgres`, in this order: PATH (through symlinks to
/// the real bindir), `pg_config --bindir`, Debian's versioned folders
/// (highest major first).
pub(crate) fn find_binaries() -> Result<Binaries, ServiceError> {
    find_binaries_in(candidate_bindirs())
}

fn candidate_bindirs() -> Vec<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("TENANTRY_PG_BINDIR") {
        candidates.push(PathBuf::from(dir));
    }
    if let Some(initdb) = process::on_path("initdb") {
        let real = fs::canonicalize(&initdb).unwrap_or(initdb);
        if let Some(dir) = real.parent() {
            candidates.push(dir.to_path_buf());
        }
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
            candidates.push(PathBuf::from(dir));
        }
    }
    if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
        let mut majors: Vec<(u32, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let major = e.file_name().to_str()?.parse::<u32>().ok()?;
                Some((major, e.path().join("bin")))
            })
            .collect();
        majors.sort_by_key(|m| std::cmp::Reverse(m.0));
        candidates.extend(majors.into_iter().map(|(_, dir)| dir));
    }
    candidates
}

/// The first folder of `candidates` that holds `initdb` and `postgres`.
pub(crate) fn find_binaries_in(candidates: Vec<PathBuf>) -> Result<Binaries, ServiceError> {
    for bindir in candidates {
        let usable = ["initdb", "postgres"]
            .iter()
            .all(|tool| process::is_executable(&bindir.join(tool)));
        if !usable {
            continue;
        }
        let out = Command::new(bindir.join("postgres")).arg("--version").output();
        if let Ok(out) = out {
            // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
            let text = String::from_utf8_lossy(&out.stdout);
            if let Some(version) = text.split_whitespace().nth(2) {
                return Ok(Binaries {
                    bindir,
                    version: version.to_string(),
                });
            }
        }
    }
    Err(ServiceError::NotAvailable {
        service: "PostgreSQL",
        remedy: "install PostgreSQL server binaries (Debian: `apt-get install postgresql`; \
                 they land in /usr/lib/postgresql/<major>/bin), build with `--features docker` \
                 and run a Docker engine, or set TENANTRY_DATABASE_URL to a superuser URL"
            .into(),
    })
}

/// A template cluster: an initdb'd data folder plus its superuser password.
struct Template {
    data: PathBuf,
    password: String,
}

/// Returns the cached template cluster for these binaries, creating it
/// (initdb) when missing. Concurrent creators race on a rename; the loser
/// discards its copy.
fn template(bins: &Binaries, account: Option<&RunAs>) -> Result<(Template, bool), ServiceError> {
    let cache = process::cache_dir();
    process::create_traversable_dir(&cache)
        .map_err(|e| ServiceError::io("create the cache folder", &cache, e))?;
    let dir = cache.join(format!("pg-{}-template", bins.version));
    let ready = |dir: &Path| dir.join("data/PG_VERSION").exists() && dir.join("password").exists();
    if ready(&dir) {
        let password =
            fs::read_to_string(dir.join("password")).map_err(|e| ServiceError::io("read", &dir, e))?;
        return Ok((
            Template {
                data: dir.join("data"),
                password: password.trim().to_string(),
            },
            false,
        ));
    }
    let staging = cache.join(format!("pg-{}-building-{}", bins.version, process::random_hex()));
    process::create_traversable_dir(&staging).map_err(|e| ServiceError::io("create", &staging, e))?;
    let password = process::random_hex();
    let pwfile = staging.join("password");
    fs::write(&pwfile, format!("{password}\n")).map_err(|e| ServiceError::io("write", &pwfile, e))?;
    let data = staging.join("data");
    fs::create_dir(&data).map_err(|e| ServiceError::io("create", &data, e))?;
    if let Some(account) = account {
        process::chown_tree(&staging, account).map_err(|e| ServiceError::io("chown", &staging, e))?;
    }
    let mut cmd = Command::new(bins.tool("initdb"));
    cmd.arg("--pgdata")
        .arg(&data)
        .args([
            "--username",
            SUPERUSER,
            "--auth",
            "scram-sha-256",
            "--encoding",
            "UTF8",
        ])
        .args(["--locale", "C", "--no-instructions", "--no-sync"])
        .arg("--pwfile")
        .arg(&pwfile)
        .stdin(Stdio::null());
    as_account(&mut cmd, account);
    let out = cmd
        .output()
        .map_err(|e| ServiceError::io("run initdb", &bins.tool("initdb"), e))?;
    if !out.status.success() {
        let _ = fs::remove_dir_all(&staging);
        return Err(ServiceError::Start {
            service: "PostgreSQL",
            detail: format!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    if fs::rename(&staging, &dir).is_err() {
        // Another process won the race; use its template.
        let _ = fs::remove_dir_all(&staging);
        return template(bins, account).map(|(t, _)| (t, true));
    }
    Ok((
        Template {
            data: dir.join("data"),
            password,
        },
        true,
    ))
}

fn as_account(cmd: &mut Command, account: Option<&RunAs>) {
    if let Some(account) = account {
        cmd.uid(account.uid).gid(account.gid);
        cmd.env("HOME", "/").env("USER", &account.name);
    }
}

/// A Postgres server started by us. Dropping it stops the server and
/// removes its folder; [`LocalPostgres::stop`] and [`LocalPostgres::restart`]
/// take it away and bring it back on the same port with the same data.
#[derive(Debug)]
pub(crate) struct LocalPostgres {
    child: Option<Child>,
    pub port: u16,
    pub password: String,
    pub version: String,
    pub cold: bool,
    bins: Binaries,
    account: Option<RunAs>,
    // Dropped last: the folder goes after the server stops.
    run: RunDir,
}

impl LocalPostgres {
    pub(crate) fn start() -> Result<Self, ServiceError> {
        let bins = find_binaries()?;
        let account = process::unprivileged_account()?;
        let (template, cold) = template(&bins, account.as_ref())?;
        let run = RunDir::create("pg")?;
        let data = run.path.join("data");
        process::copy_tree(&template.data, &data)
            .map_err(|e| ServiceError::io("copy the template cluster", &data, e))?;
        // Postgres insists on a private data folder.
        fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| ServiceError::io("chmod", &data, e))?;
        if let Some(account) = &account {
            process::chown_tree(&run.path, account).map_err(|e| ServiceError::io("chown", &run.path, e))?;
        }
        let mut last_error = None;
        for _attempt in 0..4 {
            let port = process::free_port()
                .map_err(|e| ServiceError::io("find a free port", Path::new("127.0.0.1"), e))?;
            match spawn(&bins, &run, &data, port, account.as_ref()) {
                Ok(child) => {
                    run.record_server(child.id());
                    return Ok(Self {
                        child: Some(child),
                        port,
                        password: template.password,
                        version: bins.version.clone(),
                        cold,
                        bins,
                        account,
                        run,
                    });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or(ServiceError::Start {
            service: "PostgreSQL",
            detail: "no attempt was made".into(),
        }))
    }
}

fn spawn(
    bins: &Binaries,
    run: &RunDir,
    data: &Path,
    port: u16,
    account: Option<&RunAs>,
) -> Result<Child, ServiceError> {
    let log = run.path.join("postgres.log");
    let log_file = fs::File::create(&log).map_err(|e| ServiceError::io("create", &log, e))?;
    if let Some(account) = account {
        let _ = std::os::unix::fs::chown(&log, Some(account.uid), Some(account.gid));
    }
    let mut cmd = Command::new(bins.tool("postgres"));
    cmd.arg("-D")
        .arg(data)
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(&run.path)
        // Throwaway clusters: durability buys nothing, speed does.
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
        .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
        .args(["-c", "shared_buffers=32MB", "-c", "max_connections=200"])
        .args(["-c", "unix_socket_permissions=0700"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    as_account(&mut cmd, account);
    let mut child = cmd
        .spawn()
        .map_err(|e| ServiceError::io("start postgres", &bins.tool("postgres"), e))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ServiceError::Start {
                service: "PostgreSQL",
                detail: format!("postgres exited with {status}:\n{}", process::tail(&log, 15)),
            });
        }
        // Ready once the postmaster has written "ready" into its pid file.
        let pidfile = fs::read_to_string(data.join("postmaster.pid")).unwrap_or_default();
        if pidfile
            .lines()
            .nth(7)
            .map(|l| l.trim() == "ready")
            .unwrap_or(false)
        {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ServiceError::Start {
                service: "PostgreSQL",
                detail: format!(
                    "postgres did not become ready in 30 s:\n{}",
                    process::tail(&log, 15)
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl LocalPostgres {
    /// Stops the server with an immediate shutdown (SIGQUIT): clients are
    /// cut off and nothing is checkpointed, as in a crash; the next start
    /// runs crash recovery.
    pub(crate) fn stop(&mut self) {
        self.shut_down();
    }

    /// Starts the stopped server again on the same port with the same data.
    /// The port lies outside the ephemeral range ([`process::free_port`]), so
    /// no client's reconnect attempt can be holding it.
    pub(crate) fn restart(&mut self) -> Result<(), ServiceError> {
        self.shut_down();
        let data = self.run.path.join("data");
        let child = spawn(&self.bins, &self.run, &data, self.port, self.account.as_ref())?;
        self.run.record_server(child.id());
        self.child = Some(child);
        Ok(())
    }

    pub(crate) fn running(&self) -> bool {
        self.child.is_some()
    }

    fn shut_down(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Immediate shutdown: the cluster is thrown away anyway.
            process::signal(child.id(), "QUIT");
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        self.shut_down();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_found_names_what_to_install() {
        let empty = std::env::temp_dir().join(format!("tenantry-empty-{}", process::random_hex()));
        fs::create_dir_all(&empty).unwrap();
        let err = find_binaries_in(vec![empty.clone()]).unwrap_err().to_string();
        fs::remove_dir_all(&empty).unwrap();
        assert!(err.starts_with("PostgreSQL is not available:"), "{err}");
        assert!(err.contains("apt-get install postgresql"), "{err}");
        assert!(err.contains("TENANTRY_DATABASE_URL"), "{err}");
    }

    #[test]
    fn the_machine_postgres_is_found_with_its_version() {
        let bins = find_binaries().expect("PostgreSQL server binaries on this machine");
        assert!(
            bins.version.chars().next().is_some_and(|c| c.is_ascii_digit()),
            "{:?}",
            bins
        );
    }
}
