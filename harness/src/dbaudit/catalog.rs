//! The catalog checks: role posture (RLS-001), table settings, policies and
//! indexes (RLS-002), key oracles (RLS-007), views and definer functions
//! (RLS-008), privileges that switch RLS off (RLS-009, catalog half) and
//! policy kinds (RLS-010). Read-only.

use super::{quote_ident, quote_literal, Conn, DbAuditError, Run};

/// A tenant table the app role can reach.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub oid: i64,
    /// `schema.table`, for messages.
    pub display: String,
    /// Quoted `"schema"."table"`, for SQL.
    pub sql: String,
    pub rls: bool,
    pub forced: bool,
    pub owner: String,
    /// The app role is (a member of) the owner.
    pub owned: bool,
    /// `format_type` of the tenant column.
    pub org_type: String,
    /// Some index leads with the tenant column.
    pub indexed: bool,
    /// The app role may TRUNCATE it.
    pub truncate: bool,
}

/// One policy on a tenant table.
#[derive(Debug, Clone)]
struct Policy {
    name: String,
    permissive: bool,
    /// `*`, `r` (SELECT), `a` (INSERT), `w` (UPDATE), `d` (DELETE).
    cmd: String,
    using: String,
    check: String,
    /// It applies to the app role (PUBLIC, or a role it is a member of).
    applies: bool,
}

impl Policy {
    fn covers(&self, cmd: &str) -> bool {
        self.cmd == "*" || self.cmd == cmd
    }

    fn describe(&self) -> String {
        let cmd = match self.cmd.as_str() {
            "r" => "SELECT",
            "a" => "INSERT",
            "w" => "UPDATE",
            "d" => "DELETE",
            _ => "ALL",
        };
        format!(
            "policy {} AS {} FOR {cmd} USING ({}) WITH CHECK ({})",
            self.name,
            if self.permissive {
                "PERMISSIVE"
            } else {
                "RESTRICTIVE"
            },
            if self.using.is_empty() { "-" } else { &self.using },
            if self.check.is_empty() { "-" } else { &self.check },
        )
    }
}

/// Tables with the tenant column that the connected role can reach.
pub(crate) async fn tenant_tables(run: &mut Run<'_>, conn: &Conn) -> Result<Vec<Table>, DbAuditError> {
    let sql = format!(
        "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relrowsecurity, c.relforcerowsecurity, \
                pg_get_userbyid(c.relowner)::text, pg_has_role(current_user, c.relowner, 'MEMBER'), \
                format_type(a.atttypid, a.atttypmod), \
                EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indkey[0] = a.attnum), \
                has_table_privilege(c.oid, 'TRUNCATE') \
         FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = {column} AND NOT a.attisdropped \
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' \
           AND (pg_has_role(current_user, c.relowner, 'MEMBER') \
                OR (has_schema_privilege(n.oid, 'USAGE') \
                    AND has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE'))) \
         ORDER BY 2, 3",
        column = quote_literal(&run.config.tenant_column)
    );
    let rows = run.must(conn, "list the tenant tables", &sql).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let schema: String = r.get(1);
            let name: String = r.get(2);
            Table {
                oid: r.get(0),
                display: format!("{schema}.{name}"),
                sql: format!("{}.{}", quote_ident(&schema), quote_ident(&name)),
                rls: r.get(3),
                forced: r.get(4),
                owner: r.get(5),
                owned: r.get(6),
                org_type: r.get(7),
                indexed: r.get(8),
                truncate: r.get(9),
            }
        })
        .collect())
}

async fn policies(run: &mut Run<'_>, conn: &Conn, table: &Table) -> Result<Vec<Policy>, DbAuditError> {
    let sql = format!(
        "SELECT p.polname::text, p.polpermissive, p.polcmd::text, \
                coalesce(pg_get_expr(p.polqual, p.polrelid), ''), \
                coalesce(pg_get_expr(p.polwithcheck, p.polrelid), ''), \
                (0::oid = ANY (p.polroles) OR EXISTS ( \
                    SELECT 1 FROM unnest(p.polroles) r WHERE pg_has_role(current_user, r, 'MEMBER'))) \
         FROM pg_policy p WHERE p.polrelid = {}::oid ORDER BY 1",
        table.oid
    );
    let rows = run
        .must(conn, &format!("read the policies of {}", table.display), &sql)
        .await?;
    Ok(rows
        .iter()
        .map(|r| Policy {
            name: r.get(0),
            permissive: r.get(1),
            cmd: r.get(2),
            using: r.get(3),
            check: r.get(4),
            applies: r.get(5),
        })
        .collect())
}

/// Runs the selected catalog checks.
pub(crate) async fn run(run: &mut Run<'_>, conn: &Conn, tables: &[Table]) -> Result<(), DbAuditError> {
    if run.ran("RLS-001") {
        role_posture(run, conn, tables).await?;
    }
    if run.selected("RLS-002") || run.selected("RLS-010") {
        for table in tables {
            let policies = policies(run, conn, table).await?;
            if run.ran("RLS-002") {
                table_settings(run, table, &policies);
            }
            if run.ran("RLS-010") {
                restrictive(run, table, &policies);
            }
        }
    }
    if run.ran("RLS-007") {
        key_oracles(run, conn, tables).await?;
    }
    if run.ran("RLS-008") {
        views_and_definers(run, conn, tables).await?;
    }
    if run.ran("RLS-009") {
        for table in tables {
            if table.truncate {
                run.finding(
                    "RLS-009",
                    format!(
                        "role {} may TRUNCATE {}: TRUNCATE ignores row-level security and empties every org",
                        run.role, table.display
                    ),
                    vec![format!(
                        "SELECT has_table_privilege('{}', 'TRUNCATE') -> true",
                        table.display
                    )],
                );
            }
            if table.owned {
                run.finding(
                    "RLS-009",
                    format!(
                        "role {} owns {} (through {}), so it may ALTER or DROP its policies and DISABLE row level security",
                        run.role, table.display, table.owner
                    ),
                    vec![format!(
                        "SELECT pg_has_role(current_user, '{}', 'MEMBER') -> true",
                        table.owner
                    )],
                );
            }
        }
    }
    Ok(())
}

async fn role_posture(run: &mut Run<'_>, conn: &Conn, tables: &[Table]) -> Result<(), DbAuditError> {
    let rows = run
        .must(
            conn,
            "read the role's attributes",
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
        )
        .await?;
    let (superuser, bypass) = rows
        .first()
        .map_or((false, false), |r| (r.get::<_, bool>(0), r.get::<_, bool>(1)));
    let role = run.role.clone();
    let evidence = vec![format!(
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user -> {superuser}, {bypass} (role {role})"
    )];
    if superuser {
        run.finding(
            "RLS-001",
            format!("the app role {role} is a superuser: row-level security never applies to it"),
            evidence.clone(),
        );
    }
    if bypass {
        run.finding(
            "RLS-001",
            format!("the app role {role} has BYPASSRLS: row-level security never applies to it"),
            evidence,
        );
    }
    for table in tables.iter().filter(|t| t.owned) {
        let how = if table.owner == role {
            "owns".to_string()
        } else {
            format!("is a member of {}, which owns", table.owner)
        };
        run.finding(
            "RLS-001",
            format!(
                "the app role {role} {how} {}: an owner escapes RLS unless it is FORCEd, and may switch it off",
                table.display
            ),
            vec![format!(
                "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = '{}'::regclass -> {}; pg_has_role(current_user, owner, 'MEMBER') -> true",
                table.display, table.owner
            )],
        );
    }
    Ok(())
}

/// Whether an expression mentions the tenant column (as a whole word).
fn mentions(expr: &str, column: &str) -> bool {
    let bytes = expr.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    expr.match_indices(column).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + column.len()).copied();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

fn table_settings(run: &mut Run<'_>, table: &Table, policies: &[Policy]) {
    let column = run.config.tenant_column.clone();
    let listing: Vec<String> = policies.iter().map(Policy::describe).collect();
    let state = format!(
        "{}: relrowsecurity = {}, relforcerowsecurity = {}, owner {}",
        table.display, table.rls, table.forced, table.owner
    );
    if !table.rls {
        run.finding(
            "RLS-002",
            format!("{} does not enable row level security", table.display),
            vec![state.clone()],
        );
    } else if !table.forced {
        run.finding(
            "RLS-002",
            format!(
                "{} enables but does not FORCE row level security: its owner ({}) and anyone acting as it see every org",
                table.display, table.owner
            ),
            vec![state.clone()],
        );
    }
    // Each command must be confined to the org by a policy that applies to
    // the app role: USING for reads, updates and deletes, WITH CHECK (or
    // USING, which stands in for it) for inserts and updates.
    let mut unconfined = Vec::new();
    for (cmd, name) in [("r", "SELECT"), ("a", "INSERT"), ("w", "UPDATE"), ("d", "DELETE")] {
        let confined = policies
            .iter()
            .filter(|p| p.applies && p.covers(cmd))
            .any(|p| match cmd {
                "a" => mentions(&p.check, &column),
                "w" => mentions(&p.using, &column) && (mentions(&p.check, &column) || p.check.is_empty()),
                _ => mentions(&p.using, &column),
            });
        if !confined {
            unconfined.push(name);
        }
    }
    if table.rls && !unconfined.is_empty() {
        let mut evidence = vec![state];
        evidence.extend(listing.clone());
        if listing.is_empty() {
            evidence.push("(no policies)".into());
        }
        run.finding(
            "RLS-002",
            format!(
                "no policy on {} confines {} to `{column}`",
                table.display,
                unconfined.join(", ")
            ),
            evidence,
        );
    }
    if !table.indexed {
        run.finding(
            "RLS-002",
            format!(
                "no index on {} leads with `{column}`: every policy check scans the table",
                table.display
            ),
            vec![format!(
                "SELECT 1 FROM pg_index WHERE indrelid = '{}'::regclass AND indkey[0] = <attnum of {column}> -> no rows",
                table.display
            )],
        );
    }
}

fn restrictive(run: &mut Run<'_>, table: &Table, policies: &[Policy]) {
    let column = run.config.tenant_column.clone();
    // Restrictive policies are ANDed with the permissive ones: an org
    // predicate there holds whatever permissive policy is added later.
    let mut missing = Vec::new();
    for (cmd, name) in [("r", "SELECT"), ("a", "INSERT"), ("w", "UPDATE"), ("d", "DELETE")] {
        let held = policies
            .iter()
            .filter(|p| p.applies && !p.permissive && p.covers(cmd))
            .any(|p| mentions(&p.using, &column) || (cmd == "a" && mentions(&p.check, &column)));
        if !held {
            missing.push(name);
        }
    }
    if missing.is_empty() {
        return;
    }
    let permissive_org = policies
        .iter()
        .any(|p| p.permissive && (mentions(&p.using, &column) || mentions(&p.check, &column)));
    let mut evidence: Vec<String> = policies.iter().map(Policy::describe).collect();
    if evidence.is_empty() {
        evidence.push(format!("{}: no policies", table.display));
    }
    run.finding(
        "RLS-010",
        format!(
            "no RESTRICTIVE policy on {} confines {} to `{column}`{}: any extra PERMISSIVE policy (they are ORed) widens access across orgs",
            table.display,
            missing.join(", "),
            if permissive_org {
                "; the org predicate lives in a PERMISSIVE policy"
            } else {
                ""
            }
        ),
        evidence,
    );
}

async fn key_oracles(run: &mut Run<'_>, conn: &Conn, tables: &[Table]) -> Result<(), DbAuditError> {
    let oids = oid_list(tables);
    let column = quote_literal(&run.config.tenant_column);
    let unique = format!(
        "SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) \
         FROM pg_index i \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attname = {column} \
         WHERE i.indisunique AND i.indrelid IN ({oids}) AND NOT (a.attnum = ANY (i.indkey::int2[])) \
         ORDER BY 1, 2"
    );
    for row in run.must(conn, "read the unique indexes", &unique).await? {
        let (table, index, def): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        run.finding(
            "RLS-007",
            format!(
                "unique index {index} on {table} does not include `{}`: a duplicate-key error tells one org that a value exists in another",
                run.config.tenant_column
            ),
            vec![def],
        );
    }
    let foreign = format!(
        "SELECT c.conname::text, c.conrelid::regclass::text, c.confrelid::regclass::text, pg_get_constraintdef(c.oid) \
         FROM pg_constraint c \
         JOIN pg_attribute s ON s.attrelid = c.conrelid AND s.attname = {column} \
         JOIN pg_attribute d ON d.attrelid = c.confrelid AND d.attname = {column} \
         WHERE c.contype = 'f' AND c.conrelid IN ({oids}) \
           AND NOT EXISTS (SELECT 1 FROM unnest(c.conkey, c.confkey) AS k(src, dst) \
                           WHERE k.src = s.attnum AND k.dst = d.attnum) \
         ORDER BY 2, 1"
    );
    for row in run.must(conn, "read the foreign keys", &foreign).await? {
        let (name, from, to, def): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        run.finding(
            "RLS-007",
            format!(
                "foreign key {name} from {from} to {to} does not pair `{col}` with `{col}`: a row can point at another org's row, and the key check (which ignores RLS) reveals which ids exist there",
                col = run.config.tenant_column
            ),
            vec![def],
        );
    }
    Ok(())
}

async fn views_and_definers(run: &mut Run<'_>, conn: &Conn, tables: &[Table]) -> Result<(), DbAuditError> {
    let oids = oid_list(tables);
    let views = format!(
        "SELECT DISTINCT v.oid::regclass::text, v.relkind::text, coalesce(array_to_string(v.reloptions, ','), ''), \
                t.oid::regclass::text \
         FROM pg_depend d \
         JOIN pg_rewrite r ON r.oid = d.objid \
         JOIN pg_class v ON v.oid = r.ev_class \
         JOIN pg_class t ON t.oid = d.refobjid \
         WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass \
           AND d.refobjid IN ({oids}) AND v.oid <> d.refobjid AND v.relkind IN ('v', 'm') \
         ORDER BY 1, 4"
    );
    for row in run
        .must(conn, "read the views over tenant tables", &views)
        .await?
    {
        let (view, kind, options, table): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        if kind == "m" {
            run.finding(
                "RLS-008",
                format!(
                    "materialized view {view} copies tenant table {table}: it has no row-level security, so whoever can read it reads every org"
                ),
                vec![format!("pg_class.relkind = 'm' for {view}, depends on {table}")],
            );
        } else if !invoker(&options) {
            run.finding(
                "RLS-008",
                format!(
                    "view {view} over tenant table {table} is not security_invoker: it reads {table} with its owner's rights, bypassing the caller's row-level security"
                ),
                vec![format!(
                    "{view} reloptions: {}",
                    if options.is_empty() { "(none)" } else { &options }
                )],
            );
        }
    }
    let definers = "SELECT p.oid::regprocedure::text, pg_get_userbyid(p.proowner)::text \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
           AND n.nspname NOT LIKE 'pg\\_%' \
           AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass \
                           AND e.objid = p.oid AND e.deptype = 'e') \
           AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(p.proconfig, '{}')) s WHERE s LIKE 'search\\_path=%') \
         ORDER BY 1";
    for row in run
        .must(conn, "read the SECURITY DEFINER functions", definers)
        .await?
    {
        let (function, owner): (String, String) = (row.get(0), row.get(1));
        run.finding(
            "RLS-008",
            format!(
                "SECURITY DEFINER function {function} (runs as {owner}) does not pin search_path: a caller's objects can be resolved inside it with {owner}'s rights"
            ),
            vec![format!("pg_proc.proconfig of {function} has no search_path=")],
        );
    }
    Ok(())
}

fn invoker(options: &str) -> bool {
    options.split(',').any(|o| {
        o.split_once('=').is_some_and(|(k, v)| {
            k.trim() == "security_invoker"
                && matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "true" | "on" | "1" | "yes"
                )
        })
    })
}

fn oid_list(tables: &[Table]) -> String {
    tables
        .iter()
        .map(|t| format!("{}::oid", t.oid))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_mentions_are_whole_words() {
        let c = "organization_id";
        assert!(mentions(
            "(organization_id = NULLIF(current_setting('app.org_id'::text, true), ''::text))",
            c
        ));
        assert!(!mentions("(my_organization_id = 'x')", c));
        assert!(!mentions("(organization_ids @> ARRAY['x'])", c));
        assert!(!mentions("true", c));
    }

    #[test]
    fn security_invoker_options() {
        assert!(invoker("security_barrier=true,security_invoker=on"));
        assert!(invoker("security_invoker=true"));
        assert!(!invoker("security_invoker=false"));
        assert!(!invoker(""));
    }
}
