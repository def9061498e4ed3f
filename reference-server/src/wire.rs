//! A minimal Postgres connection that pipelines statements under one Sync.
//!
//! tokio-postgres pipelines *requests*, but ends each with its own Sync, so
//! `BEGIN`, the org context, a statement and `COMMIT` cost the server four
//! protocol cycles (four ReadyForQuery flushes) and the client four
//! responses. Like libpq's pipeline mode, [`Connection::pipeline`] sends any
//! number of statements followed by a single Sync and reads one
//! ReadyForQuery: one round trip and one cycle for the whole transaction.
//!
//! It speaks only what `TenantDb` needs: extended protocol, binary
//! parameters with explicit types, binary results, a per-connection cache of
//! named statements, password/MD5/SCRAM-SHA-256 authentication, no TLS
//! (loopback or a trusted network). A connection whose pipeline did not run
//! to its ReadyForQuery, or that is not idle, is never handed out again.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::{backend::Message, frontend};
use postgres_types::{FromSql, IsNull, ToSql, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A bound parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `text`
    Text(String),
    /// `bigint`
    Int(i64),
    /// `jsonb`
    Json(serde_json::Value),
    /// `bytea`
    Bytes(Vec<u8>),
    /// SQL NULL of any type.
    Null,
    /// The transaction's timestamp, `now()`: rendered into statements by the
    /// query builder, never bound.
    Now,
}

impl Value {
    fn type_(&self) -> Option<Type> {
        match self {
            Value::Text(_) => Some(Type::TEXT),
            Value::Int(_) => Some(Type::INT8),
            Value::Json(_) => Some(Type::JSONB),
            Value::Bytes(_) => Some(Type::BYTEA),
            Value::Null | Value::Now => None,
        }
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Text(s) => s.to_sql(ty, out),
            Value::Int(n) => n.to_sql(ty, out),
            Value::Json(v) => v.to_sql(ty, out),
            Value::Bytes(b) => b.to_sql(ty, out),
            Value::Null => Ok(IsNull::Yes),
            Value::Now => Err("now() is rendered into the statement, never bound".into()),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <String as ToSql>::accepts(ty)
            || <i64 as ToSql>::accepts(ty)
            || <serde_json::Value as ToSql>::accepts(ty)
            || <Vec<u8> as ToSql>::accepts(ty)
    }

    postgres_types::to_sql_checked!();
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}

impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Self {
        Value::Json(v)
    }
}

/// Why a pipeline (or connecting) failed as a whole. The connection is
/// unusable afterwards.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The socket failed.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent something this client does not expect.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server refused the connection (authentication, unknown database, …).
    #[error("the server refused the connection: {0}")]
    Refused(ServerError),
    /// A parameter could not be encoded.
    #[error("cannot encode a parameter: {0}")]
    Encode(String),
    /// The connection URL is not usable.
    #[error("bad connection settings: {0}")]
    Config(String),
    /// The pool's circuit breaker is open: no connection was attempted.
    #[error(transparent)]
    CircuitOpen(#[from] crate::circuit::Open),
}

/// An error the server reported for one statement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{severity} {code}: {message}")]
pub struct ServerError {
    /// `ERROR`, `FATAL`, …
    pub severity: String,
    /// SQLSTATE.
    pub code: String,
    /// The primary message.
    pub message: String,
}

/// Why one statement of a pipeline produced no rows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    /// The server rejected it.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// An earlier statement of the pipeline failed, so the server skipped this one.
    #[error("skipped after an earlier statement of the pipeline failed")]
    Skipped,
}

/// The transaction status the server reported in its last ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    /// Not in a transaction block.
    Idle,
    /// In a transaction block.
    InTransaction,
    /// In a failed transaction block.
    Failed,
}

/// Where to connect and as whom.
#[derive(Clone)]
pub struct WireConfig {
    host: String,
    port: u16,
    user: String,
    password: Option<Vec<u8>>,
    database: String,
    parameters: Vec<(String, String)>,
}

impl std::fmt::Debug for WireConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl WireConfig {
    /// Host, port and database from a `postgres://` URL; user and password as given.
    pub fn from_url(url: &str, user: &str, password: &str) -> Result<Self, WireError> {
        let parsed: tokio_postgres::Config = url.parse().map_err(|e| WireError::Config(format!("{e}")))?;
        let host = match parsed.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => return Err(WireError::Config("a TCP host is required".into())),
        };
        Ok(Self {
            host,
            port: parsed.get_ports().first().copied().unwrap_or(5432),
            user: user.to_string(),
            password: Some(password.as_bytes().to_vec()),
            database: parsed.get_dbname().unwrap_or(user).to_string(),
            parameters: Vec::new(),
        })
    }

    /// Adds a run-time parameter sent in the startup packet (e.g. `statement_timeout`).
    pub fn parameter(mut self, name: &str, value: &str) -> Self {
        self.parameters.push((name.to_string(), value.to_string()));
        self
    }
}

/// A column of a result.
#[derive(Debug)]
struct Column {
    name: String,
    type_: Type,
}

/// One result row, decoded on access with `postgres-types`.
#[derive(Debug, Clone)]
pub struct Row {
    columns: Arc<[Column]>,
    values: Vec<Option<Bytes>>,
}

/// A column index: a position or a name.
pub trait RowIndex: std::fmt::Display {
    /// The position of the column, if present.
    fn index(&self, row: &Row) -> Option<usize>;
}

impl RowIndex for usize {
    fn index(&self, row: &Row) -> Option<usize> {
        (*self < row.columns.len()).then_some(*self)
    }
}

impl RowIndex for &str {
    fn index(&self, row: &Row) -> Option<usize> {
        row.columns.iter().position(|c| c.name == *self)
    }
}

impl Row {
    /// Decodes a column; an error names the column and the cause.
    pub fn try_get<'a, I: RowIndex, T: FromSql<'a>>(&'a self, index: I) -> Result<T, String> {
        let i = index.index(self).ok_or_else(|| format!("no column {index}"))?;
        let column = &self.columns[i];
        if !T::accepts(&column.type_) {
            return Err(format!("column {index} has type {}", column.type_));
        }
        T::from_sql_nullable(&column.type_, self.values[i].as_deref())
            .map_err(|e| format!("column {index}: {e}"))
    }

    /// Decodes a column. Panics on a missing column or a type mismatch,
    /// which are programming errors (the statements are ours).
    pub fn get<'a, I: RowIndex, T: FromSql<'a>>(&'a self, index: I) -> T {
        match self.try_get(index) {
            Ok(value) => value,
            Err(e) => panic!("{e}"),
        }
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// One statement of a pipeline.
#[derive(Debug, Clone, Copy)]
pub struct Statement<'a> {
    /// SQL with `$n` placeholders.
    pub sql: &'a str,
    /// The values for the placeholders.
    pub params: &'a [Value],
}

impl<'a> Statement<'a> {
    /// A statement without parameters.
    pub fn plain(sql: &'a str) -> Self {
        Self { sql, params: &[] }
    }
}

/// The result of one statement.
pub type StatementResult = Result<Vec<Row>, StatementError>;

/// An open connection.
pub struct Connection {
    stream: TcpStream,
    read: BytesMut,
    write: BytesMut,
    statements: HashMap<(String, Vec<u32>), String>,
    next_statement: u64,
    status: TxStatus,
    in_flight: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("status", &self.status)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

fn server_error(fields: postgres_protocol::message::backend::ErrorFields<'_>) -> ServerError {
    let mut error = ServerError {
        severity: String::new(),
        code: String::new(),
        message: String::new(),
    };
    let mut fields = fields;
    while let Ok(Some(field)) = fields.next() {
        let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
        match field.type_() {
            b'S' => error.severity = value,
            b'C' => error.code = value,
            b'M' => error.message = value,
            _ => {}
        }
    }
    error
}

impl Connection {
    /// Connects and authenticates.
    pub async fn connect(config: &WireConfig) -> Result<Self, WireError> {
        let stream = TcpStream::connect((config.host.as_str(), config.port)).await?;
        stream.set_nodelay(true)?;
        let mut conn = Self {
            stream,
            read: BytesMut::with_capacity(8192),
            write: BytesMut::with_capacity(4096),
            statements: HashMap::new(),
            next_statement: 0,
            status: TxStatus::Idle,
            in_flight: true,
        };
        let mut params: Vec<(&str, &str)> = vec![
            ("user", config.user.as_str()),
            ("database", config.database.as_str()),
            ("client_encoding", "UTF8"),
        ];
        params.extend(config.parameters.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        frontend::startup_message(params.iter().copied(), &mut conn.write)?;
        conn.flush().await?;
        let password = || {
            config.password.clone().ok_or_else(|| {
                WireError::Config("the server asks for a password and none is configured".into())
            })
        };
        let mut scram: Option<ScramSha256> = None;
        loop {
            match conn.next_message().await? {
                Message::AuthenticationOk => {}
                Message::AuthenticationCleartextPassword => {
                    frontend::password_message(&password()?, &mut conn.write)?;
                    conn.flush().await?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let hash = postgres_protocol::authentication::md5_hash(
                        config.user.as_bytes(),
                        &password()?,
                        body.salt(),
                    );
                    frontend::password_message(hash.as_bytes(), &mut conn.write)?;
                    conn.flush().await?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut mechanisms = body.mechanisms();
                    let mut scram_offered = false;
                    while let Some(mechanism) = mechanisms.next()? {
                        scram_offered |= mechanism == "SCRAM-SHA-256";
                    }
                    if !scram_offered {
                        return Err(WireError::Protocol("the server offers no SCRAM-SHA-256".into()));
                    }
                    let state = ScramSha256::new(&password()?, ChannelBinding::unsupported());
                    frontend::sasl_initial_response("SCRAM-SHA-256", state.message(), &mut conn.write)?;
                    conn.flush().await?;
                    scram = Some(state);
                }
                Message::AuthenticationSaslContinue(body) => {
                    let state = scram
                        .as_mut()
                        .ok_or_else(|| WireError::Protocol("SASL continue before SASL start".into()))?;
                    state.update(body.data())?;
                    frontend::sasl_response(state.message(), &mut conn.write)?;
                    conn.flush().await?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let state = scram
                        .as_mut()
                        .ok_or_else(|| WireError::Protocol("SASL final before SASL start".into()))?;
                    // Verifies the server's signature: a server that does not
                    // know the password cannot pretend to.
                    state.finish(body.data())?;
                }
                Message::ErrorResponse(body) => return Err(WireError::Refused(server_error(body.fields()))),
                Message::BackendKeyData(_) | Message::ParameterStatus(_) | Message::NoticeResponse(_) => {}
                Message::ReadyForQuery(_) => break,
                _ => return Err(WireError::Protocol("unexpected message during startup".into())),
            }
        }
        conn.in_flight = false;
        Ok(conn)
    }

    async fn flush(&mut self) -> Result<(), WireError> {
        let bytes = self.write.split();
        self.stream.write_all(&bytes).await?;
        Ok(())
    }

    async fn next_message(&mut self) -> Result<Message, WireError> {
        loop {
            if let Some(message) = Message::parse(&mut self.read)? {
                return Ok(message);
            }
            if self.stream.read_buf(&mut self.read).await? == 0 {
                return Err(WireError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// The transaction status after the last pipeline.
    pub fn status(&self) -> TxStatus {
        self.status
    }

    /// Whether the connection may serve another request: its last pipeline
    /// completed and it is not inside a transaction.
    pub fn is_reusable(&self) -> bool {
        !self.in_flight && self.status == TxStatus::Idle
    }

    /// Runs `statements` in order, sent together and followed by one Sync.
    /// Statements not already inside a transaction block form one implicit
    /// transaction. After a failed statement the server skips the rest.
    pub async fn pipeline(
        &mut self,
        statements: &[Statement<'_>],
    ) -> Result<Vec<StatementResult>, WireError> {
        // From the first byte written until ReadyForQuery the connection's
        // state is unknown; a dropped future leaves it marked in flight.
        self.in_flight = true;
        let mut fresh: Vec<Option<(String, Vec<u32>, String)>> = Vec::with_capacity(statements.len());
        for statement in statements {
            let oids: Vec<u32> = statement
                .params
                .iter()
                .map(|v| v.type_().map(|t| t.oid()).unwrap_or(0))
                .collect();
            let key = (statement.sql.to_string(), oids);
            let name = match self.statements.get(&key) {
                Some(name) => {
                    fresh.push(None);
                    name.clone()
                }
                None => {
                    self.next_statement += 1;
                    let name = format!("t{}", self.next_statement);
                    frontend::parse(&name, statement.sql, key.1.iter().copied(), &mut self.write)?;
                    fresh.push(Some((key.0, key.1, name.clone())));
                    name
                }
            };
            let types: Vec<Option<Type>> = statement.params.iter().map(Value::type_).collect();
            let bound = frontend::bind(
                "",
                &name,
                std::iter::once(1),
                statement.params.iter().zip(types),
                |(value, type_), buf| {
                    let encoded = match (value, type_) {
                        (Value::Null, _) => Ok(IsNull::Yes),
                        (value, Some(type_)) => value.to_sql(&type_, buf),
                        (Value::Now, None) => Err("now() is rendered into statements, never bound".into()),
                        (_, None) => Err("a parameter without a type".into()),
                    };
                    encoded.map(|is_null| match is_null {
                        IsNull::Yes => postgres_protocol::IsNull::Yes,
                        IsNull::No => postgres_protocol::IsNull::No,
                    })
                },
                std::iter::once(1),
                &mut self.write,
            );
            if let Err(e) = bound {
                self.write.clear();
                self.in_flight = false;
                return Err(WireError::Encode(match e {
                    frontend::BindError::Conversion(e) => e.to_string(),
                    frontend::BindError::Serialization(e) => e.to_string(),
                }));
            }
            frontend::describe(b'P', "", &mut self.write)?;
            frontend::execute("", 0, &mut self.write)?;
        }
        frontend::sync(&mut self.write);
        self.flush().await?;

        let mut results: Vec<StatementResult> = Vec::with_capacity(statements.len());
        let mut current: Vec<Row> = Vec::new();
        let mut columns: Arc<[Column]> = Arc::from(Vec::new());
        let mut failed = false;
        loop {
            match self.next_message().await? {
                Message::ParseComplete => {
                    if let Some(Some((sql, oids, name))) = fresh.get(results.len()) {
                        self.statements.insert((sql.clone(), oids.clone()), name.clone());
                    }
                }
                Message::BindComplete | Message::NoData | Message::PortalSuspended => {}
                Message::RowDescription(body) => {
                    let mut fields = body.fields();
                    let mut cols = Vec::new();
                    while let Some(field) = fields.next()? {
                        let type_ = Type::from_oid(field.type_oid()).ok_or_else(|| {
                            WireError::Protocol(format!("unsupported column type oid {}", field.type_oid()))
                        })?;
                        cols.push(Column {
                            name: field.name().to_string(),
                            type_,
                        });
                    }
                    columns = Arc::from(cols);
                }
                Message::DataRow(body) => {
                    let buffer = body.buffer_bytes().clone();
                    let mut ranges = body.ranges();
                    let mut values = Vec::with_capacity(columns.len());
                    while let Some(range) = ranges.next()? {
                        values.push(range.map(|r| buffer.slice(r)));
                    }
                    current.push(Row {
                        columns: Arc::clone(&columns),
                        values,
                    });
                }
                Message::CommandComplete(_) | Message::EmptyQueryResponse => {
                    results.push(Ok(std::mem::take(&mut current)));
                    columns = Arc::from(Vec::new());
                }
                Message::ErrorResponse(body) => {
                    if !failed {
                        failed = true;
                        current.clear();
                        results.push(Err(StatementError::Server(server_error(body.fields()))));
                    }
                }
                Message::ReadyForQuery(body) => {
                    self.status = match body.status() {
                        b'I' => TxStatus::Idle,
                        b'T' => TxStatus::InTransaction,
                        _ => TxStatus::Failed,
                    };
                    break;
                }
                Message::NoticeResponse(_)
                | Message::ParameterStatus(_)
                | Message::NotificationResponse(_) => {}
                _ => return Err(WireError::Protocol("unexpected message in a pipeline".into())),
            }
        }
        if results.len() > statements.len() {
            return Err(WireError::Protocol("more results than statements".into()));
        }
        while results.len() < statements.len() {
            results.push(Err(StatementError::Skipped));
        }
        self.in_flight = false;
        Ok(results)
    }

    /// Runs one statement on its own.
    pub async fn query(&mut self, sql: &str, params: &[Value]) -> Result<StatementResult, WireError> {
        let mut results = self.pipeline(&[Statement { sql, params }]).await?;
        Ok(results.pop().unwrap_or(Err(StatementError::Skipped)))
    }
}

/// A deadpool manager for [`Connection`]s. Every connection attempt goes
/// through its circuit breaker: while the server is down, attempts are
/// bounded and backed off instead of made once per request.
#[derive(Debug)]
pub struct Manager {
    config: WireConfig,
    breaker: std::sync::Arc<crate::circuit::Breaker>,
}

impl Manager {
    /// A manager connecting with `config`, its attempts gated by `breaker`.
    pub fn new(config: WireConfig, breaker: std::sync::Arc<crate::circuit::Breaker>) -> Self {
        Self { config, breaker }
    }

    /// The breaker in front of the connection attempts.
    pub fn breaker(&self) -> &std::sync::Arc<crate::circuit::Breaker> {
        &self.breaker
    }
}

impl deadpool::managed::Manager for Manager {
    type Type = Connection;
    type Error = WireError;

    async fn create(&self) -> Result<Connection, WireError> {
        let attempt = self.breaker.attempt()?;
        match Connection::connect(&self.config).await {
            Ok(conn) => {
                attempt.succeeded();
                Ok(conn)
            }
            Err(e) => {
                attempt.failed(&e);
                Err(e)
            }
        }
    }

    async fn recycle(
        &self,
        conn: &mut Connection,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<WireError> {
        if conn.is_reusable() {
            Ok(())
        } else {
            Err(deadpool::managed::RecycleError::message(
                "the connection's last pipeline did not finish or left a transaction open",
            ))
        }
    }
}

/// A pool of pipelining connections.
pub type Pool = deadpool::managed::Pool<Manager>;

/// A pooled connection.
pub type Object = deadpool::managed::Object<Manager>;
