//! Isolation checks shared by the clean-stack tests and the injected-flaw
//! tests: each returns `Err(what leaked)` on a violation, so the same check
//! must pass on the clean stack and fail with the flaw it is meant to catch.

use std::time::{Duration, Instant};

use serde_json::json;
use tenantry_reference::db::TENANT_TABLES;
use tenantry_reference::tenant::{OrgId, Role, Tenant};
use tenantry_reference::tenant_db::{Query, PROJECTS};

use super::{Actor, Reply, TestStack};

pub type Check = Result<(), String>;

/// One org's seeded data.
pub struct OrgData {
    pub org: String,
    pub admin: Actor,
    pub project: String,
    pub document: String,
    pub canary: String,
}

/// Two orgs, each with a project and a document carrying unique canaries.
pub struct World {
    pub a: OrgData,
    pub b: OrgData,
}

pub fn canary(tag: &str) -> String {
    format!(
        "cnry-{tag}-{}",
        &tenantry_reference::ids::new_id(tenantry_reference::ids::IdKind::Project)[4..16]
    )
}

pub async fn seed(stack: &TestStack) -> World {
    let mut orgs = Vec::new();
    for tag in ["a", "b"] {
        let org = format!("org_{tag}_{}", &canary(tag)[7..]);
        let admin = stack.as_user(&org, &format!("user_{tag}"), "org:admin");
        let canary = canary(tag);
        let project = admin
            .project(&format!("{canary} project"), &format!("about {canary}"))
            .await;
        let document = admin
            .document(&project, &format!("{canary} doc"), &format!("body {canary}"))
            .await;
        orgs.push(OrgData {
            org,
            admin,
            project,
            document,
            canary,
        });
    }
    let b = orgs.pop().unwrap();
    let a = orgs.pop().unwrap();
    World { a, b }
}

impl OrgData {
    /// Whether `text` carries anything of this org.
    pub fn found_in(&self, text: &str) -> bool {
        text.contains(&self.canary) || text.contains(&self.project) || text.contains(&self.document)
    }
}

fn collect(violations: Vec<String>) -> Check {
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations.join("\n"))
    }
}

/// RLS-001/002: role posture and catalog facts.
pub async fn catalog(stack: &TestStack) -> Check {
    let su = stack.superuser().await;
    let mut v = Vec::new();
    let role = su
        .query_one(
            "SELECT rolsuper, rolbypassrls, pg_has_role('tenantry_app', 'tenantry_owner', 'MEMBER')
             FROM pg_roles WHERE rolname = 'tenantry_app'",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    if role.get::<_, bool>(0) || role.get::<_, bool>(1) || role.get::<_, bool>(2) {
        v.push("tenantry_app is superuser, BYPASSRLS or a member of the owner".to_string());
    }
    let tables = su
        .query(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'organization_id' AND NOT a.attisdropped
             WHERE n.nspname = 'app' AND c.relkind = 'r' ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = tables.iter().map(|r| r.get(0)).collect();
    for table in TENANT_TABLES {
        if !names.iter().any(|n| n == table) {
            v.push(format!("tenant table {table} is missing"));
        }
    }
    for row in &tables {
        let table: String = row.get(0);
        if !row.get::<_, bool>(1) {
            v.push(format!("{table}: RLS not enabled"));
        }
        if !row.get::<_, bool>(2) {
            v.push(format!("{table}: RLS not forced"));
        }
        if row.get::<_, String>(3) == "tenantry_app" {
            v.push(format!("{table}: owned by the app role"));
        }
        let restrictive = su
            .query_one(
                "SELECT count(*) FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'app' AND c.relname = $1 AND NOT p.polpermissive AND p.polcmd = '*'
                   AND pg_get_expr(p.polqual, p.polrelid) LIKE '%app.org_id%'
                   AND pg_get_expr(p.polwithcheck, p.polrelid) LIKE '%app.org_id%'",
                &[&table],
            )
            .await
            .map_err(|e| e.to_string())?
            .get::<_, i64>(0);
        if restrictive != 1 {
            v.push(format!(
                "{table}: no restrictive org policy for all commands with USING and WITH CHECK"
            ));
        }
        let pk_leads = su
            .query_one(
                "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
                 WHERE n.nspname = 'app' AND c.relname = $1 AND i.indisprimary AND a.attname = 'organization_id'",
                &[&table],
            )
            .await
            .map_err(|e| e.to_string())?
            .get::<_, i64>(0);
        if pk_leads != 1 {
            v.push(format!("{table}: primary key does not lead with organization_id"));
        }
        let loose_fks = su
            .query_one(
                "SELECT count(*) FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'app' AND c.relname = $1 AND k.contype IN ('f', 'u')
                   AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                                   AND a.attname = 'organization_id' AND a.attnum = ANY (k.conkey))",
                &[&table],
            )
            .await
            .map_err(|e| e.to_string())?
            .get::<_, i64>(0);
        if loose_fks != 0 {
            v.push(format!(
                "{table}: a foreign or unique key without organization_id"
            ));
        }
        let truncate = su
            .query_one(
                "SELECT has_table_privilege('tenantry_app', format('app.%I', $1::text), 'TRUNCATE')",
                &[&table],
            )
            .await
            .map_err(|e| e.to_string())?
            .get::<_, bool>(0);
        if truncate {
            v.push(format!(
                "{table}: the app role may TRUNCATE it (TRUNCATE ignores row-level security)"
            ));
        }
    }
    // Views over tenant tables read them with the caller's rights
    // (security_invoker), or they bypass row-level security.
    let definer_views = su
        .query(
            "SELECT DISTINCT v.oid::regclass::text
             FROM pg_depend d
             JOIN pg_rewrite r ON r.oid = d.objid
             JOIN pg_class v ON v.oid = r.ev_class
             JOIN pg_class t ON t.oid = d.refobjid
             JOIN pg_namespace n ON n.oid = t.relnamespace
             WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
               AND n.nspname = 'app' AND t.relname = ANY($1) AND v.oid <> t.oid
               AND v.relkind IN ('v', 'm')
               AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(v.reloptions, '{}')) o
                               WHERE lower(o) IN ('security_invoker=true', 'security_invoker=on', 'security_invoker=1'))
             ORDER BY 1",
            &[&TENANT_TABLES],
        )
        .await
        .map_err(|e| e.to_string())?;
    for row in definer_views {
        v.push(format!(
            "view {} over a tenant table is not security_invoker",
            row.get::<_, String>(0)
        ));
    }
    collect(v)
}

/// A raw transaction as the serving role with `org` set transaction-locally.
async fn in_org<'c>(
    app: &'c mut tokio_postgres::Client,
    org: &str,
) -> Result<tokio_postgres::Transaction<'c>, String> {
    let tx = app.transaction().await.map_err(|e| e.to_string())?;
    tx.execute("SELECT set_config('app.org_id', $1, true)", &[&org])
        .await
        .map_err(|e| e.to_string())?;
    Ok(tx)
}

/// RLS-003: as the serving role with org A set, a query without WHERE
/// returns only A rows (RLS alone, no application filter).
pub async fn rls_alone(stack: &TestStack, world: &World) -> Check {
    let mut app = stack.app_client().await;
    let tx = in_org(&mut app, &world.a.org).await?;
    let mut v = Vec::new();
    for table in ["projects", "documents"] {
        let rows = tx
            .query(&format!("SELECT organization_id FROM app.{table}"), &[])
            .await
            .map_err(|e| e.to_string())?;
        if rows.is_empty() {
            v.push(format!("{table}: org A sees none of its own rows"));
        }
        for row in rows {
            let org: String = row.get(0);
            if org != world.a.org {
                v.push(format!("{table}: with org A set, a row of {org} is visible"));
            }
        }
    }
    tx.rollback().await.map_err(|e| e.to_string())?;
    collect(v)
}

/// RLS-004: no context, or an empty one, returns no rows.
pub async fn no_context(stack: &TestStack) -> Check {
    let app = stack.app_client().await;
    let mut v = Vec::new();
    for setup in ["", "SELECT set_config('app.org_id', '', false)"] {
        if !setup.is_empty() {
            app.batch_execute(setup).await.map_err(|e| e.to_string())?;
        }
        for table in TENANT_TABLES {
            let n: i64 = app
                .query_one(&format!("SELECT count(*) FROM app.{table}"), &[])
                .await
                .map_err(|e| e.to_string())?
                .get(0);
            if n != 0 {
                v.push(format!(
                    "{table}: {n} rows visible without an org context ({setup:?})"
                ));
            }
        }
    }
    collect(v)
}

async fn leftover(conn: &mut tenantry_reference::wire::Connection, after: &str) -> Option<String> {
    let rows = conn
        .query(
            "SELECT coalesce(current_setting('app.org_id', true), ''), (SELECT count(*) FROM app.projects)",
            &[],
        )
        .await
        .ok()?
        .ok()?;
    let row = rows.first()?;
    let setting: String = row.get(0);
    let visible: i64 = row.get(1);
    (!setting.is_empty() || visible != 0).then(|| {
        format!("after {after}: the pooled connection carries org `{setting}` and sees {visible} projects")
    })
}

/// RLS-005: a pooled connection reused after commit, rollback and savepoint
/// rollback carries no org.
pub async fn pooled_reuse(stack: &TestStack, world: &World) -> Check {
    let (pool, db) = stack.app_pool(1);
    let tenant = Tenant::new(
        OrgId::new(world.a.org.clone()).unwrap(),
        "user_a",
        Role::Admin,
        vec![],
    );
    let mut v = Vec::new();

    let rows = db
        .for_tenant(&tenant)
        .read(&Query::select(&PROJECTS))
        .await
        .map_err(|e| e.to_string())?;
    if rows.is_empty() {
        v.push("TenantDb read of org A returned nothing".into());
    }
    {
        let mut conn = pool.get().await.map_err(|e| e.to_string())?;
        v.extend(leftover(&mut conn, "a committed read").await);
    }

    let mut tx = db.for_tenant(&tenant).begin().await.map_err(|e| e.to_string())?;
    tx.query(&Query::select(&PROJECTS))
        .await
        .map_err(|e| e.to_string())?;
    tx.rollback().await.map_err(|e| e.to_string())?;
    {
        let mut conn = pool.get().await.map_err(|e| e.to_string())?;
        v.extend(leftover(&mut conn, "a rollback").await);
    }

    let mut tx = db.for_tenant(&tenant).begin().await.map_err(|e| e.to_string())?;
    tx.query(&Query::select(&PROJECTS))
        .await
        .map_err(|e| e.to_string())?;
    drop(tx); // abandoned mid-transaction, as a cancelled request would
    {
        use tenantry_reference::wire::{Statement, Value};
        let mut conn = pool.get().await.map_err(|e| e.to_string())?;
        v.extend(leftover(&mut conn, "an abandoned transaction").await);
        let org = [Value::Text(world.a.org.clone())];
        let results = conn
            .pipeline(&[
                Statement::plain("BEGIN"),
                Statement::plain("SAVEPOINT s"),
                Statement {
                    sql: "SELECT set_config('app.org_id', $1, true)",
                    params: &org,
                },
                Statement::plain("ROLLBACK TO SAVEPOINT s"),
            ])
            .await
            .map_err(|e| e.to_string())?;
        if results.iter().any(Result::is_err) {
            v.push(format!("savepoint setup failed: {results:?}"));
        }
        v.extend(leftover(&mut conn, "a savepoint rollback").await);
        conn.query("COMMIT", &[])
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    collect(v)
}

/// RLS-006: inserts and updates aimed at another org fail; updates and
/// deletes of its ids touch nothing.
pub async fn cross_org_writes(stack: &TestStack, world: &World) -> Check {
    let mut app = stack.app_client().await;
    let tx = in_org(&mut app, &world.a.org).await?;
    let mut v = Vec::new();
    let attempts: [(&str, &str, bool); 4] = [
        (
            "insert a row into org B",
            "INSERT INTO app.projects (organization_id, id, name, created_by) VALUES ($1, 'prj_x', 'x', 'u') RETURNING id",
            true,
        ),
        (
            "move org A's project to org B",
            "UPDATE app.projects SET organization_id = $1 WHERE id = $2 RETURNING id",
            true,
        ),
        ("update org B's project", "UPDATE app.projects SET name = 'pwned' WHERE organization_id = $1 AND id = $2 RETURNING id", false),
        ("delete org B's project", "DELETE FROM app.projects WHERE organization_id = $1 AND id = $2 RETURNING id", false),
    ];
    for (what, sql, must_error) in attempts {
        tx.batch_execute("SAVEPOINT attempt")
            .await
            .map_err(|e| e.to_string())?;
        let result = if sql.starts_with("INSERT") {
            tx.query(sql, &[&world.b.org]).await
        } else if what.starts_with("move") {
            tx.query(sql, &[&world.b.org, &world.a.project]).await
        } else {
            tx.query(sql, &[&world.b.org, &world.b.project]).await
        };
        match result {
            Ok(rows) if !rows.is_empty() => v.push(format!("{what}: succeeded on {} rows", rows.len())),
            Ok(_) if must_error => v.push(format!("{what}: no error (expected a WITH CHECK violation)")),
            Ok(_) => {}
            Err(e) if must_error => {
                let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
                if code != "42501" {
                    v.push(format!(
                        "{what}: failed with {code}, expected 42501 (row-level security)"
                    ));
                }
            }
            Err(e) => v.push(format!("{what}: unexpected error {e}")),
        }
        tx.batch_execute("ROLLBACK TO SAVEPOINT attempt")
            .await
            .map_err(|e| e.to_string())?;
    }
    tx.rollback().await.map_err(|e| e.to_string())?;
    collect(v)
}

fn leak(v: &mut Vec<String>, what: &str, reply: &Reply, owner: &OrgData) {
    if owner.found_in(&reply.text) {
        v.push(format!("{what}: response carries org A data: {}", reply.text));
    }
}

/// ISO-001..007, ISO-010, ORG path: org B's admin against org A's data over HTTP.
pub async fn http_isolation(world: &World) -> Check {
    let (a, b) = (&world.a, &world.b);
    let mut v = Vec::new();
    let missing_project = "prj_0000000000000000000000000z";
    let missing = b.admin.get(&format!("/api/projects/{missing_project}")).await;

    let read = b.admin.get(&format!("/api/projects/{}", a.project)).await;
    leak(&mut v, "read A's project", &read, a);
    if (read.status, &read.body) != (missing.status, &missing.body) {
        v.push(format!(
            "A's project id answers unlike a missing id: {} {} vs {} {}",
            read.status, read.text, missing.status, missing.text
        ));
    }
    let doc = b.admin.get(&format!("/api/documents/{}", a.document)).await;
    leak(&mut v, "read A's document", &doc, a);
    if doc.status != 404 {
        v.push(format!("read A's document: status {}", doc.status));
    }
    let patch = b
        .admin
        .send(
            "PATCH",
            &format!("/api/projects/{}", a.project),
            Some(json!({ "name": "pwned" })),
        )
        .await;
    leak(&mut v, "patch A's project", &patch, a);
    if patch.status != 404 {
        v.push(format!("patch A's project: status {}", patch.status));
    }
    let patch_doc = b
        .admin
        .send(
            "PATCH",
            &format!("/api/documents/{}", a.document),
            Some(json!({ "body": "pwned" })),
        )
        .await;
    if patch_doc.status != 404 {
        v.push(format!("patch A's document: status {}", patch_doc.status));
    }
    let delete_doc = b
        .admin
        .send("DELETE", &format!("/api/documents/{}", a.document), None)
        .await;
    if delete_doc.status != 404 {
        v.push(format!("delete A's document: status {}", delete_doc.status));
    }
    let delete = b
        .admin
        .send("DELETE", &format!("/api/projects/{}", a.project), None)
        .await;
    if delete.status != 404 {
        v.push(format!("delete A's project: status {}", delete.status));
    }
    let after = a.admin.get(&format!("/api/projects/{}", a.project)).await;
    if after.status != 200 || after.text.contains("pwned") {
        v.push(format!(
            "A's project changed by B: {} {}",
            after.status, after.text
        ));
    }
    let after_doc = a.admin.get(&format!("/api/documents/{}", a.document)).await;
    if after_doc.status != 200 || after_doc.text.contains("pwned") {
        v.push(format!(
            "A's document changed by B: {} {}",
            after_doc.status, after_doc.text
        ));
    }
    let list = b.admin.get("/api/projects?limit=100").await;
    leak(&mut v, "list projects", &list, a);
    if !b.found_in(&list.text) {
        v.push(format!("B's own list lacks B's project: {}", list.text));
    }
    let search = b.admin.get(&format!("/api/search?q={}", a.canary)).await;
    leak(&mut v, "search for A's canary", &search, a);
    let search_all = b.admin.get("/api/search?q=cnry").await;
    leak(&mut v, "search for the canary prefix", &search_all, a);
    let children = b
        .admin
        .get(&format!("/api/projects/{}/documents", a.project))
        .await;
    leak(&mut v, "list documents under A's project", &children, a);
    if children.status != 404 {
        v.push(format!(
            "list documents under A's project: status {}",
            children.status
        ));
    }
    let child = b
        .admin
        .post(
            &format!("/api/projects/{}/documents", a.project),
            json!({ "title": "x" }),
        )
        .await;
    if child.status != 404 {
        v.push(format!(
            "create a document under A's project: status {} {}",
            child.status, child.text
        ));
    }
    let in_org = b.admin.get(&format!("/api/orgs/{}/projects", a.org)).await;
    leak(&mut v, "list A's projects by org path", &in_org, a);
    if in_org.status != 403 || in_org.body["code"] != "org_mismatch" {
        v.push(format!("org path of A as B: {} {}", in_org.status, in_org.text));
    }
    collect(v)
}

/// ISO-007: after deletion, reads and updates answer 404.
pub async fn use_after_delete(world: &World) -> Check {
    let b = &world.b;
    let mut v = Vec::new();
    let project = b.admin.project("doomed", "").await;
    let document = b.admin.document(&project, "doomed doc", "").await;
    let deleted = b
        .admin
        .send("DELETE", &format!("/api/projects/{project}"), None)
        .await;
    if deleted.status != 204 {
        v.push(format!("delete own project: {}", deleted.status));
    }
    for path in [
        format!("/api/projects/{project}"),
        format!("/api/documents/{document}"),
    ] {
        let reply = b.admin.get(&path).await;
        if reply.status != 404 {
            v.push(format!("{path} after delete: {}", reply.status));
        }
    }
    collect(v)
}

/// ISO-009: the cached stats endpoint, read alternately by A and B.
pub async fn stats_isolation(world: &World) -> Check {
    let mut v = Vec::new();
    for _ in 0..2 {
        for (me, other) in [(&world.a, &world.b), (&world.b, &world.a)] {
            let stats = me.admin.get("/api/stats").await;
            leak(&mut v, "stats", &stats, other);
            if stats.body["latest_project"]["id"] != me.project.as_str() {
                v.push(format!("stats of {} show {}", me.org, stats.text));
            }
        }
    }
    collect(v)
}

/// ISO-008: an export started by B never contains A's data, and its id is
/// not readable by A.
pub async fn export_isolation(world: &World) -> Check {
    let (a, b) = (&world.a, &world.b);
    let mut v = Vec::new();
    let started = b.admin.post("/api/exports", json!({})).await;
    if started.status != 202 {
        return Err(format!("start export: {} {}", started.status, started.text));
    }
    let id = started.body["id"].as_str().unwrap_or_default().to_string();
    let deadline = Instant::now() + Duration::from_secs(15);
    let done = loop {
        let reply = b.admin.get(&format!("/api/exports/{id}")).await;
        if reply.body["status"] == "done" || reply.body["status"] == "failed" || Instant::now() > deadline {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    if done.body["status"] != "done" {
        v.push(format!("export did not finish: {}", done.text));
    }
    leak(&mut v, "B's export", &done, a);
    if !b.found_in(&done.text) {
        v.push(format!("B's export lacks B's data: {}", done.text));
    }
    let foreign = a.admin.get(&format!("/api/exports/{id}")).await;
    if foreign.status != 404 {
        v.push(format!("A reads B's export: {}", foreign.status));
    }
    collect(v)
}

/// RLS-011 (layer ablation): with RLS disabled on every tenant table, the
/// application filter alone still isolates reads and updates.
pub async fn wrapper_alone(stack: &TestStack, world: &World) -> Check {
    let su = stack.superuser().await;
    for table in TENANT_TABLES {
        su.batch_execute(&format!("ALTER TABLE app.{table} DISABLE ROW LEVEL SECURITY"))
            .await
            .map_err(|e| e.to_string())?;
    }
    let (a, b) = (&world.a, &world.b);
    let mut v = Vec::new();
    for path in [
        format!("/api/projects/{}", a.project),
        format!("/api/documents/{}", a.document),
        "/api/projects?limit=100".to_string(),
        format!("/api/search?q={}", a.canary),
        format!("/api/projects/{}/documents", a.project),
    ] {
        let reply = b.admin.get(&path).await;
        leak(&mut v, &format!("GET {path} without RLS"), &reply, a);
    }
    let patch = b
        .admin
        .send(
            "PATCH",
            &format!("/api/documents/{}", a.document),
            Some(json!({ "body": "pwned" })),
        )
        .await;
    leak(&mut v, "PATCH A's document without RLS", &patch, a);
    if patch.status != 404 {
        v.push(format!(
            "PATCH A's document without RLS: status {} (org A data: {})",
            patch.status, patch.text
        ));
    }
    collect(v)
}
