//! Export jobs. `POST /api/exports` records a pending export in the org's
//! data and queues (org, export id, requester); a worker runs the export
//! inside `TenantDb` for exactly that org and stores the result.

use std::sync::Arc;

use serde_json::json;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;

use crate::tenant::{OrgId, Tenant};
use crate::tenant_db::{Db, DbError, Direction, Query, Value, DOCUMENTS, EXPORTS, PROJECTS};

/// One queued export.
#[derive(Debug, Clone)]
pub struct ExportJob {
    /// The org the export belongs to.
    pub org: OrgId,
    /// The export id.
    pub export_id: String,
    /// Who asked for it.
    pub requested_by: String,
}

/// The sending side of the export queue.
#[derive(Debug, Clone)]
pub struct ExportQueue {
    sender: mpsc::Sender<ExportJob>,
}

/// The queue was full.
#[derive(Debug, thiserror::Error)]
#[error("the export queue is full")]
pub struct QueueFull;

impl ExportQueue {
    /// Queues a job without waiting; a full queue is refused.
    pub fn enqueue(&self, job: ExportJob) -> Result<(), QueueFull> {
        self.sender.try_send(job).map_err(|_| QueueFull)
    }
}

/// Most rows an export carries per table.
pub const EXPORT_ROW_LIMIT: i64 = 10_000;

/// Starts `workers` export workers; they stop once every queue handle is
/// dropped and the queue is drained.
pub fn start(
    db: Db,
    workers: usize,
    capacity: usize,
    service: Option<ServicePool>,
) -> (ExportQueue, JoinSet<()>) {
    let (sender, receiver) = mpsc::channel(capacity);
    let receiver = Arc::new(Mutex::new(receiver));
    let mut set = JoinSet::new();
    for _ in 0..workers.max(1) {
        let receiver = Arc::clone(&receiver);
        let db = db.clone();
        let service = service.clone();
        set.spawn(async move {
            loop {
                let job = receiver.lock().await.recv().await;
                let Some(job) = job else { break };
                run(&db, service.as_ref(), &job).await;
            }
        });
    }
    (ExportQueue { sender }, set)
}

/// A BYPASSRLS connection pool; exists only under the `job-without-org` flaw.
#[derive(Clone)]
pub struct ServicePool(#[allow(dead_code)] pub(crate) crate::wire::Pool);

impl std::fmt::Debug for ServicePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServicePool")
    }
}

async fn run(db: &Db, service: Option<&ServicePool>, job: &ExportJob) {
    let tenant = Tenant::for_job(job.org.clone(), job.requested_by.clone());
    let outcome = export(db, service, &tenant).await;
    let update = match outcome {
        Ok(result) => Query::update(
            &EXPORTS,
            vec![
                ("status", "done".into()),
                ("result", Value::Json(result)),
                ("finished_at", Value::Now),
            ],
        ),
        Err(e) => {
            tracing::warn!(export = %job.export_id, error = %e, "export failed");
            Query::update(
                &EXPORTS,
                vec![
                    ("status", "failed".into()),
                    ("error", "the export could not be completed".into()),
                    ("finished_at", Value::Now),
                ],
            )
        }
    }
    .eq("id", job.export_id.as_str());
    let stored = async {
        let mut tx = db.for_tenant(&tenant).begin().await?;
        let touched = tx.execute(&update).await?;
        tx.commit().await?;
        Ok::<u64, DbError>(touched)
    }
    .await;
    match stored {
        Ok(1) => {}
        Ok(n) => tracing::error!(export = %job.export_id, rows = n, "the export row to update was not found"),
        Err(e) => tracing::error!(export = %job.export_id, error = %e, "could not store the export result"),
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
