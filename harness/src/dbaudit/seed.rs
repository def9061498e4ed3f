//! Seed rows for orgs A and B, built from the catalog, and their removal.

use std::collections::HashMap;

use super::catalog::Table;
use super::{describe, quote_ident, quote_literal, Conn, DbAuditError, Run};

/// The orgs and what was seeded for them.
#[derive(Debug, Clone)]
pub(crate) struct Seeded {
    pub a: String,
    pub b: String,
    /// Seeded tables (oids), in insertion (parent-first) order.
    pub tables: Vec<i64>,
    /// Why the other tables were left out.
    pub skipped: Vec<String>,
    /// How to build a row of each seeded table, for the write probes.
    pub plans: HashMap<i64, Plan>,
    /// Parent values per (org, table oid, column), for child rows.
    parents: HashMap<(String, i64, String), String>,
    counter: u64,
}

/// How to build one row of a table.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    columns: Vec<Column>,
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    sql_type: String,
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    /// A literal generated from the type (text made unique per row).
    Generated(GenKind),
    /// The parent row's value of this column (`table oid`, parent column).
    Parent(i64, String),
}

#[derive(Debug, Clone)]
enum GenKind {
    Text,
    Number,
    Literal(String),
    Uuid,
}

impl Seeded {
    pub fn new(a: String, b: String) -> Self {
        Self {
            a,
            b,
            tables: Vec::new(),
            skipped: Vec::new(),
            plans: HashMap::new(),
            parents: HashMap::new(),
            counter: 0,
        }
    }

    /// An `INSERT` of a fresh row of `table` carrying `org` in the tenant
    /// column, its references pointing at `org`'s seeded parents.
    pub fn insert_sql(&mut self, table: &Table, tenant_column: &str, org: &str) -> Option<String> {
        let plan = self.plans.get(&table.oid)?.clone();
        let mut names = vec![quote_ident(tenant_column)];
        let mut values = vec![format!("{}::{}", quote_literal(org), table.org_type)];
        for column in &plan.columns {
            self.counter += 1;
            let literal = match &column.source {
                Source::Generated(GenKind::Text) => {
                    format!("t{}{}", &hex(8)[..6], self.counter)
                }
                Source::Generated(GenKind::Number) => (1 + random_u64() % 30_000).to_string(),
                Source::Generated(GenKind::Uuid) => uuid(),
                Source::Generated(GenKind::Literal(l)) => l.clone(),
                Source::Parent(parent, col) => self
                    .parents
                    .get(&(org.to_string(), *parent, col.clone()))?
                    .clone(),
            };
            names.push(quote_ident(&column.name));
            values.push(format!("{}::{}", quote_literal(&literal), column.sql_type));
        }
        Some(format!(
            "INSERT INTO {} ({}) VALUES ({})",
            table.sql,
            names.join(", "),
            values.join(", ")
        ))
    }
}

pub(crate) fn random_u64() -> u64 {
    crate::audit::random_seed()
}

fn hex(n: usize) -> String {
    let mut out = String::new();
    while out.len() < n {
        out.push_str(&format!("{:016x}", random_u64()));
    }
    out.truncate(n);
    out
}

fn uuid() -> String {
    let h = hex(32);
    // Version 4, variant 10xx.
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Two fresh org ids that fit every tenant column's type.
pub(crate) fn fresh_orgs(tables: &[Table], seed: u64) -> (String, String) {
    let types: Vec<&str> = tables.iter().map(|t| t.org_type.as_str()).collect();
    if types
        .iter()
        .any(|t| matches!(*t, "smallint" | "integer" | "bigint") || t.starts_with("numeric"))
    {
        // Far from hand-made ids, and within smallint's range is impossible
        // to make collision-free, so prefer int4's upper range.
        let base = 2_000_000_000 + (seed % 100_000_000) as i64;
        return (base.to_string(), (base + 1).to_string());
    }
    if types.contains(&"uuid") {
        return (uuid(), uuid());
    }
    let tag = format!("{seed:016x}");
    (
        format!("org_dbaudit_a_{}", &tag[..12]),
        format!("org_dbaudit_b_{}", &tag[..12]),
    )
}

struct Fk {
    child: i64,
    parent: i64,
    child_columns: Vec<String>,
    parent_columns: Vec<String>,
}

/// Builds a plan per table and seeds one row per org in each, parents first.
pub(crate) async fn insert(
    run: &mut Run<'_>,
    conn: &Conn,
    tables: &[Table],
    seeded: &mut Seeded,
) -> Result<(), DbAuditError> {
    let column = run.config.tenant_column.clone();
    let oids: Vec<i64> = tables.iter().map(|t| t.oid).collect();
    let fk_rows = run
        .rows_with(
            conn,
            "SELECT c.conrelid::int8, c.confrelid::int8, \
                    ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i) \
                          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i), \
                    ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i) \
                          JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i) \
             FROM pg_constraint c WHERE c.contype = 'f' AND c.conrelid::int8 = ANY ($1)",
            &[&oids],
        )
        .await
        .map_err(|e| DbAuditError::Sql {
            step: "read the foreign keys".into(),
            detail: describe(&e),
        })?;
    let fks: Vec<Fk> = fk_rows
        .iter()
        .map(|r| Fk {
            child: r.get(0),
            parent: r.get(1),
            child_columns: r.get(2),
            parent_columns: r.get(3),
        })
        .collect();

    // Parents first; a table whose parents cannot be seeded is skipped.
    let mut pending: Vec<&Table> = tables.iter().collect();
    while !pending.is_empty() {
        let ready = pending.iter().position(|t| {
            fks.iter()
                .filter(|f| f.child == t.oid && f.parent != t.oid)
                .all(|f| !pending.iter().any(|p| p.oid == f.parent))
        });
        let table = match ready {
            Some(i) => pending.remove(i),
            // A reference cycle: take the first and let its references decide.
            None => pending.remove(0),
        };
        match plan(run, conn, table, &fks, seeded).await? {
            Ok(plan) => {
                seeded.plans.insert(table.oid, plan);
            }
            Err(reason) => {
                seeded.skipped.push(format!("{}: {reason}", table.display));
                continue;
            }
        }
        let mut failure = None;
        for org in [seeded.a.clone(), seeded.b.clone()] {
            if let Err(reason) = seed_one(run, conn, table, &column, &org, seeded).await {
                failure = Some(reason);
                break;
            }
        }
        match failure {
            None => seeded.tables.push(table.oid),
            Some(reason) => {
                seeded.plans.remove(&table.oid);
                seeded.skipped.push(format!("{}: {reason}", table.display));
                // Whatever landed for org A goes now.
                remove_table(run, conn, table, &column, seeded).await;
            }
        }
    }
    for reason in &seeded.skipped {
        tracing::warn!("db audit: not seeding {reason}; the data probes leave that table out");
    }
    Ok(())
}

/// The plan of `table`, or why none can be made.
async fn plan(
    run: &mut Run<'_>,
    conn: &Conn,
    table: &Table,
    fks: &[Fk],
    seeded: &Seeded,
) -> Result<Result<Plan, String>, DbAuditError> {
    let sql = format!(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typcategory::text, \
                coalesce(b.typname, t.typname)::text, \
                (SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = a.atttypid \
                 ORDER BY e.enumsortorder LIMIT 1) \
         FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_type b ON t.typtype = 'd' AND b.oid = t.typbasetype \
         WHERE a.attrelid = {}::oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull \
           AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = '' AND a.attname <> {} \
         ORDER BY a.attnum",
        table.oid,
        quote_literal(&run.config.tenant_column)
    );
    let rows = run
        .must(conn, &format!("read the columns of {}", table.display), &sql)
        .await?;
    let mut columns = Vec::new();
    for row in rows {
        let (name, sql_type, category, base): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let label: Option<String> = row.get(4);
        let reference = fks.iter().filter(|f| f.child == table.oid).find_map(|f| {
            f.child_columns
                .iter()
                .position(|c| *c == name)
                .map(|i| (f.parent, f.parent_columns[i].clone()))
        });
        let source = if let Some((parent, parent_column)) = reference {
            if !seeded.tables.contains(&parent) {
                return Ok(Err(format!(
                    "required column `{name}` references a table the audit could not seed"
                )));
            }
            Source::Parent(parent, parent_column)
        } else {
            let kind = match (category.as_str(), base.as_str()) {
                (_, "uuid") => GenKind::Uuid,
                (_, "bytea") => GenKind::Literal("\\x00".into()),
                (_, "json" | "jsonb") => GenKind::Literal("{}".into()),
                ("S", _) => GenKind::Text,
                ("N", _) => GenKind::Number,
                ("B", _) => GenKind::Literal("false".into()),
                ("D", _) => GenKind::Literal("now".into()),
                ("T", _) => GenKind::Literal("1 second".into()),
                ("I", _) => GenKind::Literal("127.0.0.1".into()),
                ("A", _) => GenKind::Literal("{}".into()),
                ("E", _) => match label {
                    Some(l) => GenKind::Literal(l),
                    None => return Ok(Err(format!("enum column `{name}` has no labels"))),
                },
                _ => {
                    return Ok(Err(format!(
                        "required column `{name}` has type {sql_type}, for which the audit makes no values"
                    )))
                }
            };
            Source::Generated(kind)
        };
        columns.push(Column {
            name,
            sql_type,
            source,
        });
    }
    Ok(Ok(Plan { columns }))
}

/// `sql` in a transaction with `org`'s context set, committed; rolled back
/// on any error.
async fn as_org(run: &mut Run<'_>, conn: &Conn, org: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
    let outcome = async {
        run.exec(conn, "BEGIN").await?;
        run.set_context(conn, org).await?;
        run.exec(conn, sql).await?;
        run.exec(conn, "COMMIT").await
    }
    .await;
    if outcome.is_err() {
        let _ = run.exec(conn, "ROLLBACK").await;
    }
    outcome.map(drop)
}

async fn seed_one(
    run: &mut Run<'_>,
    conn: &Conn,
    table: &Table,
    column: &str,
    org: &str,
    seeded: &mut Seeded,
) -> Result<(), String> {
    let Some(insert) = seeded.insert_sql(table, column, org) else {
        return Err("a parent row is missing".into());
    };
    if let Err(e) = as_org(run, conn, org, &insert).await {
        return Err(format!("{insert} failed: {}", describe(&e)));
    }
    // Values children will reference, read back with the context set
    // (their plans are not built yet, so every column, as text).
    let read = format!(
        "SELECT to_jsonb(t)::text FROM {} t WHERE {} = {}::{} LIMIT 1",
        table.sql,
        quote_ident(column),
        quote_literal(org),
        table.org_type
    );
    let outcome = async {
        run.exec(conn, "BEGIN").await?;
        run.set_context(conn, org).await?;
        let rows = run.rows(conn, &read).await?;
        run.exec(conn, "COMMIT").await?;
        Ok::<_, tokio_postgres::Error>(rows)
    }
    .await;
    match outcome {
        Ok(rows) => {
            if let Some(row) = rows.first() {
                let text: String = row.get(0);
                if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&text) {
                    for (k, v) in map {
                        let v = match v {
                            serde_json::Value::String(s) => s,
                            serde_json::Value::Null => continue,
                            other => other.to_string(),
                        };
                        seeded.parents.insert((org.to_string(), table.oid, k), v);
                    }
                }
            }
            Ok(())
        }
        Err(e) => {
            let _ = run.exec(conn, "ROLLBACK").await;
            Err(format!("reading the seeded row back failed: {}", describe(&e)))
        }
    }
}

async fn remove_table(run: &mut Run<'_>, conn: &Conn, table: &Table, column: &str, seeded: &Seeded) {
    for org in [&seeded.a, &seeded.b] {
        let delete = format!(
            "DELETE FROM {} WHERE {} = {}::{}",
            table.sql,
            quote_ident(column),
            quote_literal(org),
            table.org_type
        );
        if let Err(e) = as_org(run, conn, org, &delete).await {
            tracing::warn!(
                "db audit: could not delete the seed rows of org {org} from {}: {}; delete them by hand",
                table.display,
                describe(&e)
            );
        }
    }
}

/// Deletes every seed row, children first.
pub(crate) async fn remove(run: &mut Run<'_>, conn: &Conn, tables: &[Table], seeded: &Seeded) {
    let column = run.config.tenant_column.clone();
    for oid in seeded.tables.iter().rev() {
        if let Some(table) = tables.iter().find(|t| t.oid == *oid) {
            remove_table(run, conn, table, &column, seeded).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_well_formed() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(u.as_bytes()[14], b'4');
        assert_eq!(u.matches('-').count(), 4);
        assert_ne!(uuid(), uuid());
    }
}
