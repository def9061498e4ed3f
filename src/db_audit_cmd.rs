//! `tenantry db-audit`: the database audit (RLS-001..010) as the app role.

use tenantry_harness::checks::Selection;
use tenantry_harness::dbaudit::{self, DbAuditConfig, DbAuditError};

#[derive(Debug, clap::Args)]
pub struct DbAuditArgs {
    /// PostgreSQL URL with the credentials the application connects with (the app
    /// role, not an admin): postgres://USER:PASSWORD@HOST:PORT/DATABASE.
    #[arg(long, value_name = "URL")]
    database_url: String,
    /// The setting the application carries the org in, set per transaction with
    /// `set_config(NAME, org, true)`.
    #[arg(long, value_name = "NAME", default_value = dbaudit::DEFAULT_TENANT_SETTING)]
    tenant_setting: String,
    /// Only these checks: RLS ids or globs, comma-separated (e.g. `RLS-001,RLS-00*`).
    #[arg(long, value_name = "SELECTORS")]
    checks: Option<String>,
    /// Write the JSON report here (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
}

/// The exit code: 0 clean, 1 findings.
pub async fn run(args: DbAuditArgs) -> anyhow::Result<u8> {
    let selection = Selection::parse(args.checks.as_deref().unwrap_or(""), None)?
        .and(Selection::parse(&dbaudit::CHECK_IDS.join(","), None)?);
    if !tenantry_harness::checks::CHECKS
        .iter()
        .any(|c| selection.includes(c))
    {
        anyhow::bail!(
            "--checks selects none of the database checks ({})",
            dbaudit::CHECK_IDS.join(", ")
        );
    }
    // Refuse a malformed URL before anything else, naming the option.
    if let Err(e) = args.database_url.parse::<tokio_postgres::Config>() {
        anyhow::bail!(
            "--database-url is not a valid PostgreSQL URL ({e}); expected postgres://USER:PASSWORD@HOST:PORT/DATABASE"
        );
    }
    let mut config = DbAuditConfig::new(&args.database_url);
    config.tenant_setting = args.tenant_setting.clone();
    eprintln!(
        "auditing the database at {} as its app role (tenant setting {}) ...",
        dbaudit::redact_url(&args.database_url),
        config.tenant_setting
    );
    let report = dbaudit::audit(&config, &selection).await.map_err(|e| match e {
        DbAuditError::BadUrl { .. } | DbAuditError::Connect { .. } => {
            anyhow::anyhow!("--database-url: {e}")
        }
        DbAuditError::BadSetting(_) => anyhow::anyhow!("--tenant-setting: {e}"),
        other => anyhow::Error::new(other).context("the database audit could not run"),
    })?;
    let tail = format!("target {}", report.target);
    crate::audit_cmd::emit(&report, args.json.as_deref(), "statements", &tail)?;
    Ok(u8::from(!report.findings.is_empty()))
}
