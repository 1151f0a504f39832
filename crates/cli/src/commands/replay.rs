//! `amas replay TASK_ID`: re-drives a task from the data directory's journal with no model or
//! tool calls and asks governance again every decision it records, under the embedded policies
//! or `--policy-dir DIR`: the way to try a policy change on real history before deploying it.

use std::sync::Arc;

use anyhow::Context;

use amas_policy::{PolicyEngine, RegoPolicyEngine};
use amas_runtime::ReplayReport;
use amas_types::TaskId;

use crate::args::{Global, ReplayArgs, ReplayFormat};
use crate::bootstrap::{
    Loaded, StoreNeed, UsageError, data_protector, governance, load, open_store,
};
use crate::commands::print_stdout;

/// Exit code when some decision would now come out differently.
const EXIT_DIFFERENT: u8 = 3;

pub async fn run(global: &Global, args: ReplayArgs) -> anyhow::Result<u8> {
    let task: TaskId = args
        .task_id
        .parse()
        .map_err(|_| UsageError(format!("`{}` is not a task id (UUID)", args.task_id)))?;
    let Loaded {
        config,
        tools,
        dataprotect,
    } = load(global)?;
    let config = Arc::new(config);
    let policy = replay_policy(global)?;
    let store = open_store(global, &config, StoreNeed::Existing).await?;
    let location = amas_store::location(&config.store, &global.data_dir);
    let records = store
        .as_dyn()
        .read(task, 0)
        .await
        .context("reading the journal");
    store.close().await;
    // The production composition's governance, asked from a pipeline of the replay's own.
    let governance = governance(global, tools, data_protector(dataprotect)?, policy)?;
    let replayer = amas_runtime::compose::replayer(config, governance)?;
    let report = replayer.replay(&records?).ok_or_else(|| {
        UsageError(format!(
            "no task {task} in {location} (set --data-dir, or AMAS_DATABASE_URL)"
        ))
    })?;
    match args.format {
        ReplayFormat::Json => print_stdout(&serde_json::to_string_pretty(&report)?),
        ReplayFormat::Text => print_stdout(&text(&report)),
    }
    Ok(if report.identical { 0 } else { EXIT_DIFFERENT })
}

/// The bundle to replay under: `--policy-dir`, read once (no hot reload), else the embedded one.
fn replay_policy(global: &Global) -> anyhow::Result<Arc<dyn PolicyEngine>> {
    let engine = match &global.policy_dir {
        Some(dir) => RegoPolicyEngine::from_dir(dir)
            .map_err(|e| UsageError(format!("policies in {}: {e}", dir.display())))?,
        None => RegoPolicyEngine::embedded()
            .map_err(|e| UsageError(format!("embedded policies: {e}")))?,
    };
    Ok(Arc::new(engine))
}

/// One summary line, then one line per decision that differs.
fn text(report: &ReplayReport) -> String {
    let head = format!(
        "task {} ({}): {} decisions replayed",
        report.task_id,
        report.task_status.as_str(),
        report.decisions
    );
    if report.identical {
        return format!("{head}: identical");
    }
    let mut out = format!("{head}: {} would now differ", report.differences.len());
    for d in &report.differences {
        let place = match (&d.step, &d.call_id) {
            (Some(step), Some(call)) => format!(" step {step} call {call}"),
            (Some(step), None) => format!(" step {step}"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "\n  seq {}{place}: {} {}: {} ({}) -> {} ({})",
            d.seq,
            d.action,
            d.resource,
            d.before.outcome,
            d.before.stage,
            d.after.outcome,
            d.after.stage,
        ));
        if !d.after.reasons.is_empty() {
            out.push_str(&format!(": {}", d.after.reasons.join("; ")));
        }
    }
    out
}
