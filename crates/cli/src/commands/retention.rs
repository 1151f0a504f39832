//! `amas retention run`: purges expired task payloads of the data directory's store now (the
//! same job `amas serve` runs every `retention.purge_interval`), or lists them (`--dry-run`).

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};

use amas_runtime::{PurgeReport, RetentionRun};
use amas_telemetry::Metrics;

use crate::args::{Global, RetentionArgs, RetentionCommand, RetentionFormat};
use crate::bootstrap::{
    Loaded, StoreNeed, UsageError, build_policy, build_runtime, data_protector, governance,
    init_telemetry, load, open_store,
};
use crate::commands::print_stdout;

pub async fn run(global: &Global, args: RetentionArgs) -> anyhow::Result<u8> {
    let RetentionCommand::Run {
        dry_run,
        format,
        now,
    } = args.command;
    let now = match now.as_deref() {
        None => Utc::now(),
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| UsageError(format!("--now {text:?} is not an RFC 3339 time: {e}")))?,
    };
    let Loaded {
        config,
        tools,
        dataprotect,
    } = load(global)?;
    // Purging must not create an empty database.
    open_store(global, &config, StoreNeed::Existing)
        .await?
        .close()
        .await;
    let config = Arc::new(config);
    let _telemetry = init_telemetry(global, "warn")?;
    let metrics = Metrics::new();
    let (policy, _watch) = build_policy(global)?;
    let protector = data_protector(dataprotect)?;
    let governance = governance(global, tools, protector, Arc::clone(&policy))?;
    // The runtime is not started: no task runs here, it only purges.
    let runtime = build_runtime(global, config, metrics, governance).await?;
    let report = runtime
        .retention()
        .purge_expired(RetentionRun { now, dry_run })
        .await
        .context("purging expired payloads");
    // Every purge record is written (and a checkpoint signed) before the process ends.
    runtime.access().close_audit().await;
    let report = report?;
    match format {
        RetentionFormat::Json => print_stdout(&serde_json::to_string_pretty(&report)?),
        RetentionFormat::Text => print_stdout(&text(&report)),
    }
    Ok(0)
}

fn text(report: &PurgeReport) -> String {
    let verb = if report.dry_run {
        "would purge"
    } else {
        "purged"
    };
    let mut out = format!(
        "{verb} {} payloads and {} workspaces of {} tasks ({} ended tasks examined, as of {})",
        report.payloads,
        report.workspaces,
        report.tasks.len(),
        report.tasks_examined,
        report.now.to_rfc3339()
    );
    for task in &report.tasks {
        out.push_str(&format!(
            "\ntask {} (tenant {}, ended {}):",
            task.task_id,
            task.tenant,
            task.ended_at.to_rfc3339()
        ));
        for p in &task.payloads {
            out.push_str(&format!(
                "\n  seq {:>4} {:<18} {:<13} expired {}",
                p.seq,
                p.kind,
                p.level,
                p.expired_at.to_rfc3339()
            ));
        }
        if task.workspace_deleted {
            out.push_str("\n  workspace deleted");
        }
        if !report.dry_run {
            out.push_str(&format!(
                "\n  audit details erased: {}",
                task.audit_details_erased
            ));
        }
    }
    out
}
