//! Why a tenant statement failed: [`DbError`], from SQLSTATEs, wire and pool errors.

use crate::wire::{ServerError, StatementError, WireError};

use super::query::UnknownColumn;

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection within the pool's wait timeout, or the server is down.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The pool's circuit breaker is open: the database was down moments
    /// ago and is not asked again before [`crate::circuit::Open::retry_after`].
    #[error(transparent)]
    CircuitOpen(crate::circuit::Open),
    /// A statement violated a unique constraint.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A referenced row (in this org) does not exist.
    #[error("a referenced row does not exist: {0}")]
    MissingReference(String),
    /// Row-level security refused a write (WITH CHECK).
    #[error("row-level security refused the statement: {0}")]
    PolicyViolation(String),
    /// The statement ran out of time.
    #[error("statement timed out")]
    Timeout,
    /// The statement names a column its table lacks (a programming error).
    #[error(transparent)]
    Build(#[from] UnknownColumn),
    /// Anything else the server reported.
    #[error("database error: {0}")]
    Other(String),
}

impl DbError {
    fn from_sqlstate(code: &str, message: String) -> Self {
        match code {
            "23505" => DbError::Conflict(message),
            "23503" => DbError::MissingReference(message),
            "42501" | "44000" => DbError::PolicyViolation(message),
            "57014" => DbError::Timeout,
            c if c.starts_with("08") || c.starts_with("57P") => DbError::Unavailable(message),
            c => DbError::Other(format!("{c}: {message}")),
        }
    }
}

impl From<ServerError> for DbError {
    fn from(e: ServerError) -> Self {
        DbError::from_sqlstate(&e.code, e.message)
    }
}

impl From<StatementError> for DbError {
    fn from(e: StatementError) -> Self {
        match e {
            StatementError::Server(e) => e.into(),
            StatementError::Skipped => DbError::Other("statement skipped after an earlier failure".into()),
        }
    }
}

impl From<WireError> for DbError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Encode(detail) => DbError::Other(detail),
            WireError::CircuitOpen(open) => DbError::CircuitOpen(open),
            other => DbError::Unavailable(other.to_string()),
        }
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => DbError::from_sqlstate(db.code().code(), db.message().to_string()),
            None => DbError::Unavailable(e.to_string()),
        }
    }
}

impl From<deadpool::managed::PoolError<WireError>> for DbError {
    fn from(e: deadpool::managed::PoolError<WireError>) -> Self {
        match e {
            deadpool::managed::PoolError::Backend(e) => e.into(),
            other => DbError::Unavailable(other.to_string()),
        }
    }
}
