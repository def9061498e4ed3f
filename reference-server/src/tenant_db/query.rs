//! The query builder: every statement on a tenant table is a [`Query`],
//! and [`Query::build`] always puts the org in — `organization_id = $1`
//! (bound, never interpolated) in reads, updates and deletes, the org value
//! in inserts. Callers name columns from the table's allow-list and can
//! never name `organization_id`.

use crate::tenant::OrgId;
pub use crate::wire::Value;

/// A tenant table: its name and the columns statements may name.
#[derive(Debug, PartialEq, Eq)]
pub struct Table {
    /// Table name in schema `app`.
    pub name: &'static str,
    /// Columns a statement may filter, sort, set or insert (never `organization_id`).
    pub columns: &'static [&'static str],
    /// The select list rows come back with.
    pub select_list: &'static str,
}

/// `app.projects`
pub static PROJECTS: Table = Table {
    name: "projects",
    columns: &[
        "id",
        "name",
        "description",
        "created_by",
        "created_at",
        "updated_at",
    ],
    select_list: "id, name, description, created_by, \
                  to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS created_at, \
                  to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS updated_at",
};

/// `app.documents`
pub static DOCUMENTS: Table = Table {
    name: "documents",
    columns: &[
        "id",
        "project_id",
        "title",
        "body",
        "created_by",
        "created_at",
        "updated_at",
    ],
    select_list: "id, project_id, title, body, created_by, \
                  to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS created_at, \
                  to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS updated_at",
};

/// `app.exports`
pub static EXPORTS: Table = Table {
    name: "exports",
    columns: &[
        "id",
        "status",
        "requested_by",
        "result",
        "error",
        "created_at",
        "finished_at",
    ],
    select_list:
        "id, status, requested_by, result, error, \
                  to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS created_at, \
                  to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS finished_at",
};

/// `app.export_jobs`: the durable export queue (one row per export still to run).
pub static EXPORT_JOBS: Table = Table {
    name: "export_jobs",
    columns: &["export_id", "attempts", "lease_until", "last_error", "created_at"],
    select_list: "export_id, attempts, last_error",
};

/// `app.integrations`
pub static INTEGRATIONS: Table = Table {
    name: "integrations",
    columns: &[
        "id",
        "provider",
        "external_account",
        "access_token_enc",
        "refresh_token_enc",
        "scopes",
        "connected_by",
        "created_at",
    ],
    select_list: "id, provider, external_account, scopes, connected_by, \
                  to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS created_at",
};

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Select {
        order: Option<(&'static str, Direction)>,
        limit: Option<i64>,
    },
    Count,
    Insert(Vec<(&'static str, Value)>),
    Update(Vec<(&'static str, Value)>),
    Delete,
}

#[derive(Debug, Clone, PartialEq)]
enum Filter {
    Eq(&'static str, Value),
    Gt(&'static str, Value),
    Search(Vec<&'static str>, String),
}

/// A statement on one tenant table. The org predicate is not something a
/// caller adds: [`Query::build`] always does.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    table: &'static Table,
    kind: Kind,
    filters: Vec<Filter>,
    /// An injected flaw dropped the org predicate from this one statement.
    #[cfg(feature = "inject")]
    unscoped: bool,
}

/// A statement that names a column its table does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("table `{table}` has no column `{column}` that statements may use")]
pub struct UnknownColumn {
    /// The table.
    pub table: &'static str,
    /// The column.
    pub column: String,
}

impl Query {
    /// `SELECT <select list> FROM table`.
    pub fn select(table: &'static Table) -> Self {
        Self {
            table,
            kind: Kind::Select {
                order: None,
                limit: None,
            },
            filters: Vec::new(),
            #[cfg(feature = "inject")]
            unscoped: false,
        }
    }

    /// `SELECT count(*) FROM table`.
    pub fn count(table: &'static Table) -> Self {
        Self {
            table,
            kind: Kind::Count,
            filters: Vec::new(),
            #[cfg(feature = "inject")]
            unscoped: false,
        }
    }

    /// `INSERT INTO table (organization_id, …) VALUES ($org, …) RETURNING …`.
    pub fn insert(table: &'static Table, values: Vec<(&'static str, Value)>) -> Self {
        Self {
            table,
            kind: Kind::Insert(values),
            filters: Vec::new(),
            #[cfg(feature = "inject")]
            unscoped: false,
        }
    }

    /// `UPDATE table SET … , updated_at = now() WHERE organization_id = $org … RETURNING …`.
    pub fn update(table: &'static Table, values: Vec<(&'static str, Value)>) -> Self {
        Self {
            table,
            kind: Kind::Update(values),
            filters: Vec::new(),
            #[cfg(feature = "inject")]
            unscoped: false,
        }
    }

    /// `DELETE FROM table WHERE organization_id = $org …`.
    pub fn delete(table: &'static Table) -> Self {
        Self {
            table,
            kind: Kind::Delete,
            filters: Vec::new(),
            #[cfg(feature = "inject")]
            unscoped: false,
        }
    }

    /// `AND column = value`.
    pub fn eq(mut self, column: &'static str, value: impl Into<Value>) -> Self {
        self.filters.push(Filter::Eq(column, value.into()));
        self
    }

    /// `AND column > value` (keyset pagination).
    pub fn gt(mut self, column: &'static str, value: impl Into<Value>) -> Self {
        self.filters.push(Filter::Gt(column, value.into()));
        self
    }

    /// `AND (c1 ILIKE %text% OR c2 ILIKE %text%)`, with `%`, `_` and `\` in
    /// `text` matched literally.
    pub fn search(mut self, columns: &[&'static str], text: &str) -> Self {
        self.filters
            .push(Filter::Search(columns.to_vec(), text.to_string()));
        self
    }

    /// Drops the org predicate from this statement (injected flaws that
    /// forget it at one call site).
    #[cfg(feature = "inject")]
    pub fn without_org_filter(mut self) -> Self {
        self.unscoped = true;
        self
    }

    /// `ORDER BY column direction` (selects only).
    pub fn order_by(mut self, column: &'static str, direction: Direction) -> Self {
        if let Kind::Select { order, .. } = &mut self.kind {
            *order = Some((column, direction));
        }
        self
    }

    /// `LIMIT n` (selects only), clamped to 0..=10 000.
    pub fn limit(mut self, n: i64) -> Self {
        if let Kind::Select { limit, .. } = &mut self.kind {
            *limit = Some(n.clamp(0, 10_000));
        }
        self
    }

    fn column(&self, column: &str) -> Result<&'static str, UnknownColumn> {
        self.table
            .columns
            .iter()
            .copied()
            .find(|c| *c == column)
            .ok_or_else(|| UnknownColumn {
                table: self.table.name,
                column: column.to_string(),
            })
    }

    /// The SQL and its parameters for `org`. `$1` is always the org.
    /// `org_filter` is false in the `rls-only` isolation mode (row-level
    /// security alone keeps orgs apart) and under the injected
    /// `no-app-filter` flaw; inserts write the org either way.
    pub fn build(&self, org: &OrgId, org_filter: bool) -> Result<(String, Vec<Value>), UnknownColumn> {
        #[cfg(feature = "inject")]
        let org_filter = org_filter && !self.unscoped;
        let mut params = vec![Value::Text(org.as_str().to_string())];
        let mut bind = |value: Value| {
            params.push(value);
            format!("${}", params.len())
        };
        let table = self.table.name;
        let mut conditions: Vec<String> = Vec::new();
        let needs_org = !matches!(self.kind, Kind::Insert(_));
        if needs_org && org_filter {
            conditions.push("organization_id = $1".into());
        }
        for filter in &self.filters {
            match filter {
                Filter::Eq(column, value) => {
                    let column = self.column(column)?;
                    conditions.push(format!("{column} = {}", bind(value.clone())));
                }
                Filter::Gt(column, value) => {
                    let column = self.column(column)?;
                    conditions.push(format!("{column} > {}", bind(value.clone())));
                }
                Filter::Search(columns, text) => {
                    let pattern = format!("%{}%", escape_like(text));
                    let placeholder = bind(Value::Text(pattern));
                    let mut any = Vec::new();
                    for column in columns {
                        let column = self.column(column)?;
                        any.push(format!("{column} ILIKE {placeholder}"));
                    }
                    if any.is_empty() {
                        conditions.push("false".into());
                    } else {
                        conditions.push(format!("({})", any.join(" OR ")));
                    }
                }
            }
        }
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let select_list = self.table.select_list;
        let sql = match &self.kind {
            Kind::Select { order, limit } => {
                let mut sql = format!("SELECT {select_list} FROM app.{table}{where_clause}");
                if let Some((column, direction)) = order {
                    let column = self.column(column)?;
                    let dir = match direction {
                        Direction::Asc => "ASC",
                        Direction::Desc => "DESC",
                    };
                    sql.push_str(&format!(" ORDER BY {column} {dir}"));
                }
                if let Some(n) = limit {
                    sql.push_str(&format!(" LIMIT {}", bind(Value::Int(*n))));
                }
                sql
            }
            Kind::Count => format!("SELECT count(*) FROM app.{table}{where_clause}"),
            Kind::Insert(values) => {
                let mut columns = vec!["organization_id"];
                let mut placeholders = vec!["$1".to_string()];
                for (column, value) in values {
                    columns.push(self.column(column)?);
                    placeholders.push(match value {
                        Value::Now => "now()".to_string(),
                        other => bind(other.clone()),
                    });
                }
                format!(
                    "INSERT INTO app.{table} ({}) VALUES ({}) RETURNING {select_list}",
                    columns.join(", "),
                    placeholders.join(", ")
                )
            }
            Kind::Update(values) => {
                let mut sets = Vec::new();
                for (column, value) in values {
                    let column = self.column(column)?;
                    let placeholder = match value {
                        Value::Now => "now()".to_string(),
                        other => bind(other.clone()),
                    };
                    sets.push(format!("{column} = {placeholder}"));
                }
                if self.table.columns.contains(&"updated_at")
                    && !values.iter().any(|(c, _)| *c == "updated_at")
                {
                    sets.push("updated_at = now()".into());
                }
                format!(
                    "UPDATE app.{table} SET {}{where_clause} RETURNING {select_list}",
                    sets.join(", ")
                )
            }
            Kind::Delete => {
                let returning = if self.table.columns.contains(&"id") {
                    "id"
                } else {
                    "1"
                };
                format!("DELETE FROM app.{table}{where_clause} RETURNING {returning}")
            }
        };
        if !org_filter && needs_org {
            // Without the org predicate $1 would be unreferenced and untyped;
            // shift the placeholders down instead.
            return Ok((renumber_without_first(&sql, params.len()), params.split_off(1)));
        }
        Ok((sql, params))
    }
}

/// Structure-aware input for the `tenant_query` fuzz target: a statement
/// shape whose every caller-supplied string carries the marker byte `\u{1}`.
#[derive(Debug, Clone)]
pub struct FuzzInput {
    /// The tenant's org.
    pub org: String,
    /// 0 select, 1 count, 2 insert, 3 update, 4 delete.
    pub kind: u8,
    /// (column index, value) filters.
    pub filters: Vec<(u8, String)>,
    /// Search text.
    pub search: Option<String>,
    /// Sort column index and direction.
    pub order: Option<(u8, bool)>,
    /// Limit.
    pub limit: Option<i64>,
}

impl FuzzInput {
    /// The statement this input describes, on `app.projects`.
    pub fn query(&self) -> Query {
        let table = &PROJECTS;
        let column = |i: u8| table.columns[usize::from(i) % table.columns.len()];
        let marked = |s: &str| Value::Text(format!("\u{1}{s}"));
        let values: Vec<(&'static str, Value)> = self
            .filters
            .iter()
            .map(|(c, v)| (column(*c), marked(v)))
            .collect();
        let mut query = match self.kind % 5 {
            0 => Query::select(table),
            1 => Query::count(table),
            2 => return Query::insert(table, values),
            3 => Query::update(table, values.clone()),
            _ => Query::delete(table),
        };
        for (c, v) in &self.filters {
            query = query.eq(column(*c), marked(v));
        }
        if let Some(text) = &self.search {
            query = query.search(&["name", "description"], &format!("\u{1}{text}"));
        }
        if let Some((c, asc)) = self.order {
            query = query.order_by(column(c), if asc { Direction::Asc } else { Direction::Desc });
        }
        if let Some(n) = self.limit {
            query = query.limit(n);
        }
        query
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for FuzzInput {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Self {
            org: u.arbitrary()?,
            kind: u.arbitrary()?,
            filters: u.arbitrary()?,
            search: u.arbitrary()?,
            order: u.arbitrary()?,
            limit: u.arbitrary()?,
        })
    }
}

fn renumber_without_first(sql: &str, _count: usize) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' || !chars.peek().is_some_and(char::is_ascii_digit) {
            out.push(c);
            continue;
        }
        let mut digits = String::new();
        while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
            digits.push(d);
            chars.next();
        }
        let n: usize = digits.parse().unwrap_or(1);
        out.push_str(&format!("${}", n.saturating_sub(1).max(1)));
    }
    out
}

/// Escapes LIKE metacharacters so user text matches literally.
pub fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> OrgId {
        OrgId::new("org_a").unwrap()
    }

    #[test]
    fn select_always_carries_the_bound_org_predicate() {
        let q = Query::select(&PROJECTS)
            .eq("id", "prj_1")
            .order_by("id", Direction::Asc)
            .limit(10);
        let (sql, params) = q.build(&org(), true).unwrap();
        assert!(sql.contains("WHERE organization_id = $1 AND id = $2"), "{sql}");
        assert!(sql.ends_with("ORDER BY id ASC LIMIT $3"), "{sql}");
        assert_eq!(params[0], Value::Text("org_a".into()));
        assert_eq!(params.len(), 3);
    }

    #[test]
    fn insert_sets_the_org_and_callers_cannot() {
        let (sql, params) = Query::insert(&PROJECTS, vec![("id", "prj_1".into()), ("name", "n".into())])
            .build(&org(), true)
            .unwrap();
        assert!(
            sql.starts_with("INSERT INTO app.projects (organization_id, id, name) VALUES ($1, $2, $3)"),
            "{sql}"
        );
        assert_eq!(params[0], Value::Text("org_a".into()));
        let err = Query::insert(&PROJECTS, vec![("organization_id", "org_b".into())])
            .build(&org(), true)
            .unwrap_err();
        assert_eq!(err.column, "organization_id");
    }

    #[test]
    fn update_and_delete_are_org_scoped() {
        let (sql, _) = Query::update(&PROJECTS, vec![("name", "x".into())])
            .eq("id", "prj_1")
            .build(&org(), true)
            .unwrap();
        assert!(
            sql.contains("SET name = $3, updated_at = now() WHERE organization_id = $1 AND id = $2"),
            "{sql}"
        );
        let (sql, _) = Query::delete(&DOCUMENTS)
            .eq("id", "doc_1")
            .build(&org(), true)
            .unwrap();
        assert_eq!(
            sql,
            "DELETE FROM app.documents WHERE organization_id = $1 AND id = $2 RETURNING id"
        );
    }

    #[test]
    fn search_text_is_bound_and_escaped() {
        let (sql, params) = Query::select(&PROJECTS)
            .search(&["name", "description"], "50%_off\\'; drop")
            .build(&org(), true)
            .unwrap();
        assert!(sql.contains("(name ILIKE $2 OR description ILIKE $2)"), "{sql}");
        assert!(!sql.contains("drop"));
        assert_eq!(params[1], Value::Text("%50\\%\\_off\\\\'; drop%".into()));
    }

    #[test]
    fn caller_text_is_never_interpolated() {
        let input = FuzzInput {
            org: "org_x".into(),
            kind: 3,
            filters: vec![(1, "'; DROP TABLE app.projects; --".into()), (0, "$1".into())],
            search: Some("%_\\".into()),
            order: Some((2, false)),
            limit: Some(-5),
        };
        for kind in 0..5 {
            let input = FuzzInput {
                kind,
                ..input.clone()
            };
            let (sql, params) = input.query().build(&org_x(), true).unwrap();
            assert!(!sql.contains('\u{1}'), "{sql}");
            assert_eq!(params[0], Value::Text("org_x".into()));
            assert!(
                sql.contains("organization_id = $1") || sql.contains("(organization_id,"),
                "{sql}"
            );
        }
    }

    fn org_x() -> OrgId {
        OrgId::new("org_x").unwrap()
    }

    #[cfg(feature = "inject")]
    #[test]
    fn an_unscoped_statement_drops_only_its_own_org_predicate() {
        let q = Query::update(&DOCUMENTS, vec![("body", "x".into())]).eq("id", "doc_1");
        let (sql, params) = q.clone().without_org_filter().build(&org(), true).unwrap();
        assert!(
            sql.contains("SET body = $2, updated_at = now() WHERE id = $1"),
            "{sql}"
        );
        assert_eq!(params.len(), 2);
        let (sql, _) = q.build(&org(), true).unwrap();
        assert!(sql.contains("WHERE organization_id = $1 AND id = $2"), "{sql}");
    }

    #[test]
    fn without_the_org_filter_placeholders_are_renumbered() {
        let (sql, params) = Query::select(&PROJECTS)
            .eq("id", "prj_1")
            .limit(5)
            .build(&org(), false)
            .unwrap();
        assert!(sql.contains("WHERE id = $1"), "{sql}");
        assert!(sql.ends_with("LIMIT $2"), "{sql}");
        assert_eq!(params.len(), 2);
    }
}
