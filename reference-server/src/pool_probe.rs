//! The app's own connection pool and tenant-context code path, opened for
//! the database audit's pooled-reuse check (RLS-005): serve one tenant read
//! the way a request would, then look at the connection the pool hands out
//! next. A context that outlives its transaction shows up there, whatever
//! the SQL probes alone can see.

use std::time::Duration;

use crate::db::{self, DbSetupError, PoolSettings};
use crate::server::StackOptions;
use crate::tenant::{OrgId, Role, Tenant};
use crate::tenant_db::{Db, Query, PROJECTS};
use crate::wire::Pool;

/// A one-connection pool built the way the server builds its own (same
/// role, same flaws), so the connection inspected is the one just used.
pub struct PoolProbe {
    pool: Pool,
    db: Db,
}

impl PoolProbe {
    /// The probe for a stack prepared with `options` on `admin_url`, the app
    /// connecting with `app_password`.
    pub fn new(admin_url: &str, app_password: &str, options: &StackOptions) -> Result<Self, DbSetupError> {
        #[cfg(feature = "inject")]
        let role = db::serving_role(&options.flaws);
        #[cfg(not(feature = "inject"))]
        let role = {
            let _ = options;
            db::serving_role()
        };
        let settings = PoolSettings {
            size: 1,
            statement_timeout: Duration::from_secs(5),
        };
        let pool = db::pool_as(admin_url, role, app_password, &settings)?;
        let db = Db::new(pool.clone());
        #[cfg(feature = "inject")]
        let db = db.with_flaws(options.flaws.clone());
        Ok(Self { pool, db })
    }

    /// The role the app connects as.
    pub fn role(options: &StackOptions) -> &'static str {
        #[cfg(feature = "inject")]
        return db::serving_role(&options.flaws);
        #[cfg(not(feature = "inject"))]
        {
            let _ = options;
            db::serving_role()
        }
    }

    /// One tenant-scoped read as `org`, committed (or rolled back), through
    /// the app's own `TenantDb`; the connection goes back to the pool.
    pub async fn serve(&self, org: &str, rollback: bool) -> Result<(), String> {
        let org = OrgId::new(org).ok_or("not an org id")?;
        let tenant = Tenant::new(org, "user_dbaudit", Role::Admin, vec![]);
        let tenant_db = self.db.for_tenant(&tenant);
        if rollback {
            let mut tx = tenant_db.begin().await.map_err(|e| e.to_string())?;
            tx.query(&Query::select(&PROJECTS))
                .await
                .map_err(|e| e.to_string())?;
            tx.rollback().await.map_err(|e| e.to_string())?;
        } else {
            tenant_db
                .read(&Query::select(&PROJECTS))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Runs `sql` (no context set) on the connection the pool hands out
    /// next; every value as text (`None`: NULL).
    pub async fn next_connection(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
        let rows = conn
            .query(sql, &[])
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| row.try_get::<_, Option<String>>(i))
                    .collect()
            })
            .collect()
    }
}
