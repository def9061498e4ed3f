//! The data probes, raw SQL as the app role over the seeded rows: reads
//! with org A set (RLS-003), without or with an empty context (RLS-004),
//! pooled reuse of one connection (RLS-005), writes aimed at org B
//! (RLS-006), and `row_security = off` (RLS-009). Every write is rolled back.

use super::catalog::Table;
use super::seed::Seeded;
use super::{describe, quote_ident, quote_literal, sqlstate, Conn, DbAuditError, Ending, Run, APP_TIMEOUT};

pub(crate) async fn run(
    run: &mut Run<'_>,
    fresh: &Conn,
    conn: &Conn,
    tables: &[Table],
    seeded: &Seeded,
) -> Result<(), DbAuditError> {
    let seeded_tables: Vec<&Table> = seeded
        .tables
        .iter()
        .filter_map(|oid| tables.iter().find(|t| t.oid == *oid))
        .collect();
    if run.ran("RLS-004") {
        no_context(run, fresh, conn, &seeded_tables, seeded).await?;
    }
    if run.ran("RLS-003") {
        with_context(run, conn, &seeded_tables, seeded).await?;
    }
    if run.ran("RLS-005") {
        pooled_reuse(run, conn, &seeded_tables, seeded).await?;
        if run.config.app_pool.is_some() {
            app_pooled_reuse(run, &seeded_tables, seeded).await?;
        }
    }
    if run.ran("RLS-006") {
        writes_aimed_at_b(run, conn, &seeded_tables, seeded).await?;
    }
    if run.ran("RLS-009") {
        row_security_off(run, conn, &seeded_tables).await?;
    }
    Ok(())
}

fn sql_err(step: &str) -> impl FnOnce(tokio_postgres::Error) -> DbAuditError + '_ {
    move |e| DbAuditError::Sql {
        step: step.into(),
        detail: describe(&e),
    }
}

/// `column = 'org'::type` for `table`.
fn org_is(run: &Run<'_>, table: &Table, org: &str) -> String {
    format!(
        "{} = {}::{}",
        quote_ident(&run.config.tenant_column),
        quote_literal(org),
        table.org_type
    )
}

fn setting_sql(run: &Run<'_>) -> String {
    format!(
        "SELECT current_setting({}, true)",
        quote_literal(&run.config.tenant_setting)
    )
}

async fn current_setting(run: &mut Run<'_>, conn: &Conn) -> Result<Option<String>, DbAuditError> {
    let sql = setting_sql(run);
    let rows = run
        .rows(conn, &sql)
        .await
        .map_err(sql_err("read the tenant setting"))?;
    Ok(rows
        .first()
        .and_then(|r| r.get::<_, Option<String>>(0))
        .filter(|v| !v.is_empty()))
}

async fn count(run: &mut Run<'_>, conn: &Conn, sql: &str) -> Result<i64, tokio_postgres::Error> {
    let rows = run.rows(conn, sql).await?;
    Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)))
}

async fn no_context(
    run: &mut Run<'_>,
    fresh: &Conn,
    conn: &Conn,
    tables: &[&Table],
    seeded: &Seeded,
) -> Result<(), DbAuditError> {
    // A connection nothing has set anything on.
    if let Some(value) = current_setting(run, fresh).await? {
        run.finding(
            "RLS-004",
            format!(
                "a fresh connection of role {} already carries {} = `{value}` before the app sets anything (a role or database default: ALTER ROLE/DATABASE ... SET)",
                run.role, run.config.tenant_setting
            ),
            vec![format!("{} -> {value}", setting_sql(run))],
        );
    }
    let needles = [seeded.a.as_str(), seeded.b.as_str()];
    for table in tables {
        let sql = format!("SELECT count(*) FROM {}", table.sql);
        // Never set on this connection: the setting does not exist at all.
        match count(run, fresh, &sql).await {
            Ok(0) => {}
            Ok(n) => run.finding(
                "RLS-004",
                format!(
                    "with no {} set, SELECT on {} returns {n} rows",
                    run.config.tenant_setting, table.display
                ),
                vec![format!("(fresh connection, nothing set) {sql} -> {n}")],
            ),
            Err(e) => leaky_error(run, table, &sql, &e, &needles, "no context"),
        }
        // Set to the empty string: what a transaction-local setting reads
        // as once its transaction is over.
        run.exec(conn, "BEGIN").await.map_err(sql_err("begin"))?;
        let outcome = match run.set_context(conn, "").await {
            Ok(()) => count(run, conn, &sql).await,
            Err(e) => Err(e),
        };
        let _ = run.exec(conn, "ROLLBACK").await;
        match outcome {
            Ok(0) => {}
            Ok(n) => run.finding(
                "RLS-004",
                format!(
                    "with {} set to the empty string, SELECT on {} returns {n} rows",
                    run.config.tenant_setting, table.display
                ),
                vec![format!(
                    "BEGIN; {} with ''; {sql} -> {n}; ROLLBACK",
                    run.context_sql
                )],
            ),
            Err(e) => leaky_error(run, table, &sql, &e, &needles, "an empty context"),
        }
    }
    Ok(())
}

/// An error is a fine answer to a missing context, unless it names tenant data.
fn leaky_error(
    run: &mut Run<'_>,
    table: &Table,
    sql: &str,
    e: &tokio_postgres::Error,
    needles: &[&str],
    when: &str,
) {
    let text = match e.as_db_error() {
        Some(db) => format!(
            "{} {} {}",
            db.message(),
            db.detail().unwrap_or_default(),
            db.hint().unwrap_or_default()
        ),
        None => e.to_string(),
    };
    if let Some(needle) = needles.iter().find(|n| text.contains(**n)) {
        run.finding(
            "RLS-004",
            format!(
                "with {when}, the error from SELECT on {} names org {needle}",
                table.display
            ),
            vec![format!("{sql} -> error: {text}")],
        );
    }
}

async fn with_context(
    run: &mut Run<'_>,
    conn: &Conn,
    tables: &[&Table],
    seeded: &Seeded,
) -> Result<(), DbAuditError> {
    let column = quote_ident(&run.config.tenant_column);
    for table in tables {
        let sql = format!(
            "SELECT {column}::text, count(*) FROM {} GROUP BY 1 ORDER BY 1",
            table.sql
        );
        run.exec(conn, "BEGIN").await.map_err(sql_err("begin"))?;
        let outcome = async {
            run.set_context(conn, &seeded.a).await?;
            run.rows(conn, &sql).await
        }
        .await;
        let _ = run.exec(conn, "ROLLBACK").await;
        let rows = outcome.map_err(sql_err("read with org A set"))?;
        let counts: Vec<(Option<String>, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let own = counts
            .iter()
            .filter(|(org, _)| org.as_deref() == Some(seeded.a.as_str()))
            .map(|(_, n)| n)
            .sum::<i64>();
        if own == 0 {
            tracing::warn!(
                "db audit: with org A set, {} shows none of A's own rows; is the tenant setting `{}` the one the policies read?",
                table.display,
                run.config.tenant_setting
            );
        }
        let of_b: i64 = counts
            .iter()
            .filter(|(org, _)| org.as_deref() == Some(seeded.b.as_str()))
            .map(|(_, n)| n)
            .sum();
        let others: Vec<i64> = counts
            .iter()
            .filter(|(org, _)| {
                org.as_deref() != Some(seeded.a.as_str()) && org.as_deref() != Some(seeded.b.as_str())
            })
            .map(|(_, n)| *n)
            .collect();
        if of_b > 0 || !others.is_empty() {
            let mut parts = Vec::new();
            if of_b > 0 {
                parts.push(format!("{of_b} rows of org B ({})", seeded.b));
            }
            if !others.is_empty() {
                parts.push(format!(
                    "{} rows of {} other orgs",
                    others.iter().sum::<i64>(),
                    others.len()
                ));
            }
            run.finding(
                "RLS-003",
                format!(
                    "with org A ({}) set, SELECT on {} returns {}",
                    seeded.a,
                    table.display,
                    parts.join(" and ")
                ),
                // Other orgs' ids stay out of the report; only counts.
                vec![format!(
                    "BEGIN; {} with '{}'; {sql} -> A: {own}, B: {of_b}, other orgs: {}; ROLLBACK",
                    run.context_sql,
                    seeded.a,
                    others.len()
                )],
            );
        }
    }
    Ok(())
}

/// How the previous transaction on the connection ended, in the SQL probe.
#[derive(Clone, Copy)]
enum Boundary {
    Commit,
    Rollback,
    Savepoint,
}

impl Boundary {
    fn name(self) -> &'static str {
        match self {
            Boundary::Commit => "a commit",
            Boundary::Rollback => "a rollback",
            Boundary::Savepoint => "a savepoint rollback",
        }
    }
}

async fn pooled_reuse(
    run: &mut Run<'_>,
    conn: &Conn,
    tables: &[&Table],
    seeded: &Seeded,
) -> Result<(), DbAuditError> {
    let Some(first) = tables.first() else {
        return Ok(());
    };
    let probe = format!("SELECT count(*) FROM {}", first.sql);
    for boundary in [Boundary::Commit, Boundary::Rollback, Boundary::Savepoint] {
        let mut transcript = vec!["BEGIN".to_string()];
        run.exec(conn, "BEGIN").await.map_err(sql_err("begin"))?;
        let outcome = async {
            if matches!(boundary, Boundary::Savepoint) {
                transcript.push("SAVEPOINT tenantry_probe".into());
                run.exec(conn, "SAVEPOINT tenantry_probe").await?;
            }
            transcript.push(format!("{} with '{}'", run.context_sql, seeded.a));
            run.set_context(conn, &seeded.a).await?;
            transcript.push(probe.clone());
            count(run, conn, &probe).await?;
            let end = match boundary {
                Boundary::Commit => "COMMIT",
                Boundary::Rollback => "ROLLBACK",
                Boundary::Savepoint => "ROLLBACK TO SAVEPOINT tenantry_probe",
            };
            transcript.push(end.into());
            run.exec(conn, end).await?;
            Ok::<_, tokio_postgres::Error>(())
        }
        .await;
        if let Err(e) = outcome {
            let _ = run.exec(conn, "ROLLBACK").await;
            return Err(DbAuditError::Sql {
                step: format!("set org A before {}", boundary.name()),
                detail: describe(&e),
            });
        }
        if matches!(boundary, Boundary::Savepoint) {
            // Still inside the transaction whose savepoint was rolled back.
            let inside = next_request(
                run,
                conn,
                tables,
                seeded,
                boundary,
                &transcript,
                " (same transaction)",
            )
            .await;
            transcript.push("COMMIT".into());
            let _ = run.exec(conn, "COMMIT").await;
            inside?;
        }
        next_request(run, conn, tables, seeded, boundary, &transcript, "").await?;
    }
    Ok(())
}

/// What the next request on the connection sees before and after it sets B.
async fn next_request(
    run: &mut Run<'_>,
    conn: &Conn,
    tables: &[&Table],
    seeded: &Seeded,
    boundary: Boundary,
    transcript: &[String],
    place: &str,
) -> Result<(), DbAuditError> {
    let before = transcript.join("; ");
    if let Some(value) = current_setting(run, conn).await? {
        run.finding(
            "RLS-005",
            format!(
                "after {}{place}, the connection still carries {} = `{value}`: the context outlives its transaction (set session-scoped?)",
                boundary.name(),
                run.config.tenant_setting
            ),
            vec![format!("{before}; then {} -> {value}", setting_sql(run))],
        );
    }
    for table in tables {
        let sql = format!(
            "SELECT count(*) FROM {} WHERE {}",
            table.sql,
            org_is(run, table, &seeded.a)
        );
        let unset = count(run, conn, &sql).await.unwrap_or(0);
        let in_tx = place.is_empty();
        let as_b = if in_tx {
            run.exec(conn, "BEGIN").await.map_err(sql_err("begin"))?;
            let n = async {
                run.set_context(conn, &seeded.b).await?;
                count(run, conn, &sql).await
            }
            .await
            .unwrap_or(0);
            let _ = run.exec(conn, "ROLLBACK").await;
            n
        } else {
            0
        };
        if unset > 0 || as_b > 0 {
            run.finding(
                "RLS-005",
                format!(
                    "after {}{place}, the next request on the same connection sees {} of org A's rows in {} ({} before setting its org, {as_b} as org B)",
                    boundary.name(),
                    unset.max(as_b),
                    table.display,
                    unset
                ),
                vec![format!(
                    "{before}; then {sql} -> {unset}; BEGIN; {} with '{}'; {sql} -> {as_b}; ROLLBACK",
                    run.context_sql, seeded.b
                )],
            );
        }
    }
    Ok(())
}

/// RLS-005 on the app's own pool and code path.
async fn app_pooled_reuse(run: &mut Run<'_>, tables: &[&Table], seeded: &Seeded) -> Result<(), DbAuditError> {
    let Some(app) = run.config.app_pool.clone() else {
        return Ok(());
    };
    let timed =
        |what: &'static str| move |_| DbAuditError::App(format!("{what} took longer than {APP_TIMEOUT:?}"));
    for ending in [Ending::Commit, Ending::Rollback] {
        tokio::time::timeout(APP_TIMEOUT, app.serve(&seeded.a, ending))
            .await
            .map_err(timed("serving a request"))?
            .map_err(DbAuditError::App)?;
        let sql = setting_sql(run);
        let rows = tokio::time::timeout(APP_TIMEOUT, app.next_connection(&sql))
            .await
            .map_err(timed("inspecting the next connection"))?
            .map_err(DbAuditError::App)?;
        let value = rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .filter(|v| !v.is_empty());
        if let Some(value) = &value {
            run.finding(
                "RLS-005",
                format!(
                    "after the app served org A and ended with {ending}, the connection its pool hands out next still carries {} = `{value}`: the app sets the context session-scoped",
                    run.config.tenant_setting
                ),
                vec![format!(
                    "app request as org A ({}), {ending}; next pooled connection: {sql} -> {value}",
                    seeded.a
                )],
            );
        }
        for table in tables {
            let sql = format!(
                "SELECT count(*)::text FROM {} WHERE {}",
                table.sql,
                org_is(run, table, &seeded.a)
            );
            let rows = tokio::time::timeout(APP_TIMEOUT, app.next_connection(&sql))
                .await
                .map_err(timed("inspecting the next connection"))?
                .map_err(DbAuditError::App)?;
            let n: i64 = rows
                .first()
                .and_then(|r| r.first().cloned().flatten())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if n > 0 {
                run.finding(
                    "RLS-005",
                    format!(
                        "after the app served org A and ended with {ending}, the next request on its pooled connection sees {n} of org A's rows in {} without setting any org",
                        table.display
                    ),
                    vec![format!("next pooled connection, nothing set: {sql} -> {n}")],
                );
            }
        }
    }
    Ok(())
}

/// The outcome of one write probe.
fn touched(result: &Result<u64, tokio_postgres::Error>) -> String {
    match result {
        Ok(n) => format!("{n} rows"),
        Err(e) => format!("error {}", describe(e)),
    }
}

async fn writes_aimed_at_b(
    run: &mut Run<'_>,
    conn: &Conn,
    tables: &[&Table],
    seeded: &Seeded,
) -> Result<(), DbAuditError> {
    let column = quote_ident(&run.config.tenant_column);
    // Inserts need fresh values; a copy keeps the seed bookkeeping intact.
    let mut scratch = seeded.clone();
    for table in tables {
        let a = org_is(run, table, &seeded.a);
        let b = org_is(run, table, &seeded.b);
        let b_literal = format!("{}::{}", quote_literal(&seeded.b), table.org_type);
        let mut probes: Vec<(&str, String)> = Vec::new();
        if let Some(insert) = scratch.insert_sql(table, &run.config.tenant_column, &seeded.b) {
            probes.push(("insert", insert));
        }
        probes.push((
            "update-to-b",
            format!("UPDATE {} SET {column} = {b_literal} WHERE {a}", table.sql),
        ));
        probes.push((
            "update",
            format!("UPDATE {} SET {column} = {column} WHERE {b}", table.sql),
        ));
        probes.push(("delete", format!("DELETE FROM {} WHERE {b}", table.sql)));

        run.exec(conn, "BEGIN").await.map_err(sql_err("begin"))?;
        let set = run.set_context(conn, &seeded.a).await;
        if let Err(e) = set {
            let _ = run.exec(conn, "ROLLBACK").await;
            return Err(sql_err("set org A")(e));
        }
        for (kind, sql) in probes {
            let _ = run.exec(conn, "SAVEPOINT tenantry_write").await;
            let result = run.exec(conn, &sql).await;
            let _ = run.exec(conn, "ROLLBACK TO SAVEPOINT tenantry_write").await;
            let evidence = vec![format!(
                "BEGIN; {} with '{}'; {sql} -> {}; ROLLBACK",
                run.context_sql,
                seeded.a,
                touched(&result)
            )];
            let breach = match (&result, kind) {
                (Ok(n), "insert") => (*n > 0).then(|| {
                    format!(
                        "with org A set, an INSERT of a row of org B into {} succeeded (WITH CHECK should refuse it)",
                        table.display
                    )
                }),
                (Ok(n), "update-to-b") => (*n > 0).then(|| {
                    format!(
                        "with org A set, an UPDATE moving {n} of A's rows of {} to org B succeeded (WITH CHECK should refuse it)",
                        table.display
                    )
                }),
                (Ok(n), "update") => (*n > 0).then(|| {
                    format!("with org A set, an UPDATE of org B's rows of {} touched {n} rows", table.display)
                }),
                (Ok(n), _) => (*n > 0).then(|| {
                    format!("with org A set, a DELETE of org B's rows of {} touched {n} rows", table.display)
                }),
                // Refused: by WITH CHECK (42501) or by a key constraint,
                // either way nothing crossed.
                (Err(e), _) => {
                    if sqlstate(e) != Some("42501") {
                        tracing::debug!(
                            "db audit: {kind} probe on {} refused by {} rather than row-level security",
                            table.display,
                            describe(e)
                        );
                    }
                    None
                }
            };
            if let Some(message) = breach {
                run.finding("RLS-006", message, evidence);
            }
        }
        let _ = run.exec(conn, "ROLLBACK").await;
    }
    Ok(())
}

async fn row_security_off(run: &mut Run<'_>, conn: &Conn, tables: &[&Table]) -> Result<(), DbAuditError> {
    for table in tables {
        let sql = format!("SELECT count(*) FROM {}", table.sql);
        run.exec(conn, "BEGIN").await.map_err(sql_err("begin"))?;
        let outcome = async {
            run.exec(conn, "SET LOCAL row_security = off").await?;
            count(run, conn, &sql).await
        }
        .await;
        let _ = run.exec(conn, "ROLLBACK").await;
        if let Ok(n) = outcome {
            if n > 0 {
                run.finding(
                    "RLS-009",
                    format!(
                        "with SET row_security = off, role {} reads all {n} rows of {} (with RLS in force the query must fail)",
                        run.role, table.display
                    ),
                    vec![format!("BEGIN; SET LOCAL row_security = off; {sql} -> {n}; ROLLBACK")],
                );
            }
        }
    }
    Ok(())
}
