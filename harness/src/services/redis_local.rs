//! Redis from a local `redis-server` binary on a free loopback port, with
//! persistence off. It can be stopped and started again on the same port,
//! which the store-failure checks use.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{self, RunDir};
use super::ServiceError;

pub(crate) fn find_binary() -> Result<PathBuf, ServiceError> {
    if let Some(path) = std::env::var_os("TENANTRY_REDIS_SERVER") {
        return Ok(PathBuf::from(path));
    }
    process::on_path("redis-server")
        .or_else(|| {
            [
                "/usr/bin/redis-server",
                "/usr/local/bin/redis-server",
                "/usr/sbin/redis-server",
            ]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| process::is_executable(p))
        })
        .ok_or_else(|| ServiceError::NotAvailable {
            service: "Redis",
            remedy: "install Debian's redis-server (`apt-get install redis-server`; scripts/test \
                     does this when run as root), build with `--features docker` and run a \
                     Docker engine, or set TENANTRY_REDIS_URL"
                .into(),
        })
}

#[derive(Debug)]
pub(crate) struct LocalRedis {
    binary: PathBuf,
    child: Option<Child>,
    pub port: u16,
    run: RunDir,
}

impl LocalRedis {
    pub(crate) fn start() -> Result<Self, ServiceError> {
        let binary = find_binary()?;
        let mut last = None;
        for _ in 0..4 {
            let port = process::free_port()
                .map_err(|e| ServiceError::io("find a free port", std::path::Path::new("127.0.0.1"), e))?;
            let mut redis = Self {
                binary: binary.clone(),
                child: None,
                port,
                run: RunDir::create("redis")?,
            };
            match redis.spawn() {
                Ok(()) => return Ok(redis),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(ServiceError::Start {
            service: "Redis",
            detail: "no attempt was made".into(),
        }))
    }

    fn spawn(&mut self) -> Result<(), ServiceError> {
        let log = self.run.path.join("redis.log");
        let mut child = Command::new(&self.binary)
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "yes"])
            .arg("--dir")
            .arg(&self.run.path)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| ServiceError::io("start redis-server", &self.binary, e))?;
        self.run.record_server(child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(ServiceError::Start {
                    service: "Redis",
                    detail: format!("redis-server exited with {status}:\n{}", process::tail(&log, 10)),
                });
            }
            if ping(self.port) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ServiceError::Start {
                    service: "Redis",
                    detail: format!(
                        "redis-server did not answer PING in 10 s:\n{}",
                        process::tail(&log, 10)
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the server (SIGKILL: as abrupt as a crash).
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port.
    pub(crate) fn restart(&mut self) -> Result<(), ServiceError> {
        self.stop();
        let _ = fs::remove_file(self.run.path.join("redis.log"));
        self.spawn()
    }

    pub(crate) fn running(&self) -> bool {
        self.child.is_some()
    }
}

/// Sends an inline PING over a plain socket.
fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(stream.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
