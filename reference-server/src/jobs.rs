//! Export jobs, queued durably in Postgres.
//!
//! `POST /api/exports` records a pending export and its queue row
//! (`app.export_jobs`, a tenant table under RLS) in one transaction of the
//! org's. Workers lease jobs with `app.claim_export_job` (`FOR UPDATE SKIP
//! LOCKED`; all it hands back is the job's org, export id and attempt
//! number) and run each inside `TenantDb` for exactly that org, as
//! [`Tenant::for_job`]. The result and the queue row's deletion commit
//! together. A job whose worker died (a crash, a kill) or whose attempt
//! failed keeps its lease until `exports.lease_ms` runs out and is then
//! claimed again, up to `exports.max_attempts` times; after that the export
//! is marked failed. So an export queued when the process died completes
//! after a restart, on any instance.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::tenant::Tenant;
use crate::tenant_db::{
    ClaimedJob, Db, DbError, Direction, Query, TenantTx, Value, DOCUMENTS, EXPORTS, EXPORT_JOBS, PROJECTS,
};

/// How the workers run (from `[exports]`).
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// Concurrent workers.
    pub workers: usize,
    /// Pending exports per org before `POST /api/exports` answers 503.
    pub capacity: usize,
    /// How long a claimed job is a worker's before it may be claimed again.
    pub lease: Duration,
    /// Attempts before an export is marked failed.
    pub max_attempts: i64,
    /// How often an idle worker looks for jobs queued by other instances
    /// (jobs queued by this one wake it at once).
    pub poll_interval: Duration,
}

/// The handle requests use to queue exports.
#[derive(Debug, Clone)]
pub struct ExportQueue {
    wake: Arc<Notify>,
    capacity: usize,
}

/// Why an export could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The org has `exports.queue_capacity` exports pending already.
    #[error("the export queue is full")]
    Full,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl ExportQueue {
    /// Queues export `export_id` in `tx` (the transaction that created the
    /// export, so both commit or neither). Call [`ExportQueue::wake`] after
    /// the commit.
    pub async fn enqueue(&self, tx: &mut TenantTx, export_id: &str) -> Result<(), EnqueueError> {
        let pending = tx.query(&Query::count(&EXPORT_JOBS)).await?;
        let pending: i64 = pending.first().and_then(|row| row.try_get(0).ok()).unwrap_or(0);
        if pending >= self.capacity as i64 {
            return Err(EnqueueError::Full);
        }
        tx.execute(&Query::insert(
            &EXPORT_JOBS,
            vec![("export_id", export_id.into())],
        ))
        .await?;
        Ok(())
    }

    /// Wakes a worker for a job just committed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// The running workers; [`Workers::stop`] lets them finish the job in hand.
#[derive(Debug)]
pub struct Workers {
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
}

impl Workers {
    /// Stops taking jobs and waits (up to `limit`) for the ones in hand.
    /// A job still running then keeps its lease and is claimed again later.
    pub async fn stop(mut self, limit: Duration) {
        let _ = self.stop.send(true);
        let drained =
            tokio::time::timeout(limit, async { while self.tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                "export workers did not finish within {} s; their jobs will be claimed again",
                limit.as_secs()
            );
        }
    }
}

/// Most rows an export carries per table.
pub const EXPORT_ROW_LIMIT: i64 = 10_000;

/// Starts the workers.
pub fn start(db: Db, settings: WorkerSettings, service: Option<ServicePool>) -> (ExportQueue, Workers) {
    let wake = Arc::new(Notify::new());
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for _ in 0..settings.workers.max(1) {
        let db = db.clone();
        let service = service.clone();
        let wake = Arc::clone(&wake);
        let mut stopped = stopped.clone();
        tasks.spawn(async move {
            while !*stopped.borrow() {
                let idle = match db.claim_export_job(settings.lease.as_millis() as i64).await {
                    Ok(Some(job)) => {
                        run(&db, service.as_ref(), &job, settings.max_attempts).await;
                        continue;
                    }
                    Ok(None) => settings.poll_interval,
                    Err(DbError::CircuitOpen(open)) => open.retry_after.max(settings.poll_interval),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not claim an export job");
                        settings.poll_interval
                    }
                };
                tokio::select! {
                    () = wake.notified() => {}
                    () = tokio::time::sleep(idle) => {}
                    _ = stopped.changed() => {}
                }
            }
        });
    }
    (
        ExportQueue {
            wake,
            capacity: settings.capacity,
        },
        Workers { tasks, stop },
    )
}

/// A BYPASSRLS connection pool; exists only under the `job-without-org` flaw.
#[derive(Clone)]
pub struct ServicePool(#[allow(dead_code)] pub(crate) crate::wire::Pool);

impl std::fmt::Debug for ServicePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServicePool")
    }
}

async fn run(db: &Db, service: Option<&ServicePool>, job: &ClaimedJob, max_attempts: i64) {
    // The requester is part of the export's own row: read it as the org.
    let reader = Tenant::for_job(job.org.clone(), "export-worker");
    let row = db
        .for_tenant(&reader)
        .read_opt(&Query::select(&EXPORTS).eq("id", job.export_id.as_str()))
        .await;
    let requested_by = match row {
        Ok(Some(row)) => match row.try_get::<_, String>("status").as_deref() {
            Ok("done") | Ok("failed") => return finish(db, &reader, job, None).await,
            _ => row.try_get::<_, String>("requested_by").unwrap_or_default(),
        },
        // The export is gone (deleted with its org): so is its job (cascade).
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(export = %job.export_id, error = %e, "could not read a claimed export; it will be retried");
            return;
        }
    };
    let tenant = Tenant::for_job(job.org.clone(), requested_by);
    if job.attempt > max_attempts {
        tracing::warn!(export = %job.export_id, attempts = job.attempt - 1, "export failed too often; giving up");
        let failed = Query::update(
            &EXPORTS,
            vec![
                ("status", "failed".into()),
                ("error", "the export could not be completed".into()),
                ("finished_at", Value::Now),
            ],
        );
        return finish(db, &tenant, job, Some(failed)).await;
    }
    let _ = mark_running(db, &tenant, &job.export_id).await;
    match export(db, service, &tenant).await {
        Ok(result) => {
            let done = Query::update(
                &EXPORTS,
                vec![
                    ("status", "done".into()),
                    ("result", Value::Json(result)),
                    ("finished_at", Value::Now),
                ],
            );
            finish(db, &tenant, job, Some(done)).await
        }
        Err(e) => {
            // The lease stays: the job is claimed again once it runs out.
            tracing::warn!(export = %job.export_id, attempt = job.attempt, error = %e, "export attempt failed; it will be retried");
            let noted = async {
                let mut tx = db.for_tenant(&tenant).begin().await?;
                tx.execute(
                    &Query::update(&EXPORT_JOBS, vec![("last_error", e.to_string().into())])
                        .eq("export_id", job.export_id.as_str()),
                )
                .await?;
                tx.commit().await
            }
            .await;
            if let Err(e) = noted {
                tracing::debug!(error = %e, "could not record the failed attempt");
            }
        }
    }
}

async fn mark_running(db: &Db, tenant: &Tenant, export_id: &str) -> Result<(), DbError> {
    let mut tx = db.for_tenant(tenant).begin().await?;
    tx.execute(&Query::update(&EXPORTS, vec![("status", "running".into())]).eq("id", export_id))
        .await?;
    tx.commit().await
}

/// Stores the export's final state (if any) and removes its queue row, in
/// one transaction of the org's: either both happen or the job runs again.
async fn finish(db: &Db, tenant: &Tenant, job: &ClaimedJob, update: Option<Query>) {
    let stored = async {
        let mut tx = db.for_tenant(tenant).begin().await?;
        if let Some(update) = update {
            let touched = tx.execute(&update.eq("id", job.export_id.as_str())).await?;
            if touched != 1 {
                tracing::error!(export = %job.export_id, rows = touched, "the export row to update was not found");
            }
        }
        tx.execute(&Query::delete(&EXPORT_JOBS).eq("export_id", job.export_id.as_str()))
            .await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = stored {
        tracing::warn!(export = %job.export_id, error = %e, "could not store the export result; it will be retried");
    }
}

async fn export(
    db: &Db,
    service: Option<&ServicePool>,
    tenant: &Tenant,
) -> Result<serde_json::Value, DbError> {
    #[cfg(feature = "inject")]
    if let Some(service) = service {
        return export_as_service(service).await;
    }
    let _ = service;
    let tdb = db.for_tenant(tenant);
    let mut tx = tdb.begin().await?;
    let projects = tx
        .query(
            &Query::select(&PROJECTS)
                .order_by("id", Direction::Asc)
                .limit(EXPORT_ROW_LIMIT),
        )
        .await?;
    let documents = tx
        .query(
            &Query::select(&DOCUMENTS)
                .order_by("id", Direction::Asc)
                .limit(EXPORT_ROW_LIMIT),
        )
        .await?;
    tx.commit().await?;
    Ok(json!({
        "projects": projects.iter().map(|r| json!({
            "id": r.get::<_, String>("id"),
            "name": r.get::<_, String>("name"),
            "description": r.get::<_, String>("description"),
        })).collect::<Vec<_>>(),
        "documents": documents.iter().map(|r| json!({
            "id": r.get::<_, String>("id"),
            "project_id": r.get::<_, String>("project_id"),
            "title": r.get::<_, String>("title"),
            "body": r.get::<_, String>("body"),
        })).collect::<Vec<_>>(),
    }))
}

/// The `job-without-org` flaw: a "system" export through a BYPASSRLS role
/// with no org predicate.
#[cfg(feature = "inject")]
async fn export_as_service(service: &ServicePool) -> Result<serde_json::Value, DbError> {
    let mut conn = service.0.get().await?;
    let projects = conn
        .query("SELECT id, name, description FROM app.projects ORDER BY id", &[])
        .await??;
    let documents = conn
        .query(
            "SELECT id, project_id, title, body FROM app.documents ORDER BY id",
            &[],
        )
        .await??;
    let text = |r: &crate::wire::Row, i: usize| -> String { r.get(i) };
    let projects: Vec<serde_json::Value> = projects
        .iter()
        .map(|r| json!({ "id": text(r, 0), "name": text(r, 1), "description": text(r, 2) }))
        .collect();
    let documents: Vec<serde_json::Value> = documents
        .iter()
        .map(|r| json!({ "id": text(r, 0), "project_id": text(r, 1), "title": text(r, 2), "body": text(r, 3) }))
        .collect();
    Ok(json!({ "projects": projects, "documents": documents }))
}
