//! `amas run`: run one task in this process with a progress bar on stderr and the result on
//! stdout. Unfinished tasks of the same data directory (an earlier interrupted run) resume too.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use amas_telemetry::Metrics;
use amas_types::{JournalEvent, Principal, Priority, TaskSpec, TaskStatus};

use crate::args::{Global, RunArgs};
use crate::bootstrap::{
    Loaded, UsageError, build_policy, build_runtime_on_store, data_protector, governance,
    init_telemetry, load, preflight_local_models,
};
use crate::{EXIT_FAILED, EXIT_USAGE};

/// How long other tasks (resumed from earlier runs) get to reach a pause at the end.
const DRAIN_PATIENCE: Duration = Duration::from_secs(10);

pub async fn run(global: &Global, args: RunArgs) -> anyhow::Result<u8> {
    let loaded = load(global)?;
    let config_hash = loaded.sha256();
    let Loaded {
        config,
        tools,
        dataprotect,
    } = loaded;
    let config = Arc::new(config);
    let _telemetry = init_telemetry(global, "warn")?;
    let Some(workflow) = config.workflows.get(&args.task_type) else {
        let known: Vec<&String> = config.workflows.keys().collect();
        eprintln!(
            "error: unknown task type `{}`; known: {known:?}",
            args.task_type
        );
        return Ok(EXIT_USAGE);
    };
    let total_steps = workflow.steps.len() as u64;
    preflight_local_models(&config)?;
    let spec = TaskSpec {
        task_type: args.task_type.clone(),
        title: args.title,
        description: args.description,
        parameters: parse_params(&args.params)?,
        priority: Priority::new(args.priority).map_err(|e| UsageError(e.to_string()))?,
    };
    let floor = match &args.classification {
        None => None,
        Some(level) => Some(
            amas_runtime::declared_floor(level, &args.tags).map_err(|e| {
                let flag = if e.field.ends_with("level") {
                    "--classification"
                } else {
                    "--tag"
                };
                UsageError(format!("{flag}: {}", e.message))
            })?,
        ),
    };
    let metrics = Metrics::new();
    let (policy, policy_watch) = build_policy(global)?;
    let protector = data_protector(dataprotect)?;
    let governance = governance(global, tools, protector, Arc::clone(&policy))?;
    let (runtime, store) =
        build_runtime_on_store(global, Arc::clone(&config), metrics, governance).await?;
    policy_watch.audit_to(&runtime, &config_hash).await;
    // On PostgreSQL, workers may share the database: run tasks only under leases, like a
    // worker, so this process never runs a task another is running (the fence refuses it).
    if let Some(queue) = store.queue() {
        runtime.scheduler().queue_in(queue);
    }
    if let Some(leases) = store.leases() {
        if let Some(commands) = store.commands() {
            runtime.scheduler().relay_commands(
                commands,
                Arc::clone(&leases),
                config.store.leases.ttl,
            );
        }
        runtime.scheduler().claim_from(
            leases,
            amas_runtime::LeaseSettings::from(&config.store.leases),
        );
    }
    // There, another worker may run the task: follow what every process commits.
    let follow = store.commit_listener();
    let following = follow.is_some();
    if let Some(listener) = follow {
        runtime.follow_commits(listener);
    }
    let mut live = runtime.reader().subscribe();
    runtime.scheduler().start().await;
    let resumed = runtime.scheduler().recover().await?;
    if resumed > 0 {
        eprintln!(
            "resuming {resumed} unfinished task(s) from {}",
            amas_store::location(&config.store, &global.data_dir)
        );
    }
    let submitted = runtime
        .admission()
        .submit_classified(
            spec,
            Principal::local_operator(),
            amas_telemetry::current_trace_id(),
            floor,
        )
        .await
        .context("submitting the task")?;
    let task = submitted.task_id;
    if following {
        // The task's own feed, whichever process runs it (its first read brings what the
        // task did before this subscription).
        live = runtime.reader().subscribe_task(task);
    }

    let bar = ProgressBar::new(total_steps);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:20} {pos}/{len} steps  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message(format!("task {task} queued"));
    // The task's state is also read from the store now and then: a lost announcement of
    // another process's commit must not leave the bar waiting.
    let mut poll = tokio::time::interval(Duration::from_secs(1));
    loop {
        let received = tokio::select! {
            r = live.recv() => r,
            _ = poll.tick() => {
                let state = runtime.reader().state(task).await?;
                if state.is_some_and(|s| s.status.is_terminal()) {
                    break;
                }
                continue;
            }
        };
        let record = match received {
            Ok(r) => r,
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => break,
        };
        if record.task_id != task {
            continue;
        }
        match &record.event {
            JournalEvent::StepStarted { step, .. } => bar.set_message(format!("{step}: thinking")),
            JournalEvent::ContractViolated { step, attempt, .. } => {
                bar.set_message(format!(
                    "{step}: answer {attempt} broke the contract, retrying"
                ));
            }
            JournalEvent::StepSucceeded { step, .. } => {
                bar.inc(1);
                bar.set_message(format!("{step}: done"));
            }
            JournalEvent::StepFailed { step, error } => {
                bar.set_message(format!("{step}: failed ({})", error.code));
            }
            _ => {}
        }
        if record
            .event
            .status_effect()
            .is_some_and(TaskStatus::is_terminal)
        {
            break;
        }
    }
    bar.finish_and_clear();
    // Resumed tasks of earlier runs stop at their next pause before the audit log closes.
    runtime.scheduler().drain(DRAIN_PATIENCE).await;
    runtime.access().close_audit().await;
    let state = runtime
        .reader()
        .state(task)
        .await?
        .context("the task vanished from the journal")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&state)?);
    } else if let Some(result) = &state.result {
        println!("{}", serde_json::to_string_pretty(result)?);
    }
    if let Some(class) = &state.classification {
        let tags = if class.tags.is_empty() {
            String::new()
        } else {
            format!(" [{}]", class.tags.join(", "))
        };
        eprintln!("classification: {}{tags}", class.classification);
    }
    match state.status {
        TaskStatus::Succeeded => {
            eprintln!(
                "task {task} succeeded: {} steps, {} tokens in, {} tokens out",
                state.steps.len(),
                state.usage().input_tokens,
                state.usage().output_tokens
            );
            Ok(0)
        }
        other => {
            let why = state
                .error
                .map(|e| format!("{}: {}", e.code, e.message))
                .unwrap_or_default();
            eprintln!("task {task} {}: {why}", other.as_str());
            Ok(EXIT_FAILED)
        }
    }
}

/// `key=value` pairs; the value is JSON when it parses as JSON, else a string.
fn parse_params(params: &[String]) -> anyhow::Result<serde_json::Map<String, Value>> {
    let mut map = serde_json::Map::new();
    for p in params {
        let Some((key, value)) = p.split_once('=') else {
            return Err(UsageError(format!("--param `{p}`: expected KEY=VALUE")).into());
        };
        if key.is_empty() {
            return Err(UsageError(format!("--param `{p}`: the key is empty")).into());
        }
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        map.insert(key.to_owned(), value);
    }
    Ok(map)
}
