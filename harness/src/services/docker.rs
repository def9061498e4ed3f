//! Postgres and Redis in Docker through testcontainers (cargo feature
//! `docker`). Used only when a Docker engine answers; otherwise the local
//! binaries backend takes over.

use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::ContainerAsync;
use testcontainers_modules::{postgres, redis};

use super::ServiceError;

/// Whether a Docker engine is plausibly reachable: `DOCKER_HOST` is set or
/// the default socket exists.
pub(crate) fn engine_available() -> bool {
    std::env::var_os("DOCKER_HOST").is_some() || std::path::Path::new("/var/run/docker.sock").exists()
}

pub(crate) struct DockerPostgres {
    pub port: u16,
    pub password: String,
    _container: ContainerAsync<postgres::Postgres>,
}

impl std::fmt::Debug for DockerPostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerPostgres")
            .field("port", &self.port)
            .finish()
    }
}

pub(crate) async fn start_postgres(user: &str) -> Result<DockerPostgres, ServiceError> {
    let password = super::process::random_hex();
    let container = postgres::Postgres::default()
        .with_user(user)
        .with_password(&password)
        .with_db_name("postgres")
        .start()
        .await
        .map_err(|e| ServiceError::Start {
            service: "PostgreSQL (docker)",
            detail: e.to_string(),
        })?;
    let port = container
        .get_host_port_ipv4(5432)
        .await
        .map_err(|e| ServiceError::Start {
            service: "PostgreSQL (docker)",
            detail: e.to_string(),
        })?;
    Ok(DockerPostgres {
        port,
        password,
        _container: container,
    })
}

pub(crate) struct DockerRedis {
    pub port: u16,
    _container: ContainerAsync<redis::Redis>,
}

impl std::fmt::Debug for DockerRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRedis").field("port", &self.port).finish()
    }
}

pub(crate) async fn start_redis() -> Result<DockerRedis, ServiceError> {
    let container = redis::Redis::default()
        .start()
        .await
        .map_err(|e| ServiceError::Start {
            service: "Redis (docker)",
            detail: e.to_string(),
        })?;
    let port = container
        .get_host_port_ipv4(6379)
        .await
        .map_err(|e| ServiceError::Start {
            service: "Redis (docker)",
            detail: e.to_string(),
        })?;
    Ok(DockerRedis {
        port,
        _container: container,
    })
}
