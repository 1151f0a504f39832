//! The step-execution service: runs one task handed over by the scheduler. It folds the task's
//! journal, then runs the workflow's steps as their dependencies succeed, independent steps in
//! parallel, until the task ends. Each step (`step.rs`) runs model turns and the tool calls they
//! ask for (`tools.rs`), every one through the governance pipeline and journaled through the
//! task's one writer. Re-running a task on the same journal continues where it stopped
//! (recovery) without repeating journaled work.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{Instrument, info, info_span, warn};

use amas_config::AmasConfig;
use amas_dataprotect::{ContentSafety, DataProtector};
use amas_governance::pipeline::Pipeline;
use amas_providers::ProviderChain;
use amas_store::{AuditWriter, StoreError};
use amas_telemetry::Metrics;
use amas_telemetry::metrics::TaskLabels;
use amas_types::{ErrorInfo, JournalEvent, StepId, StepStatus, TaskId, TaskState, TaskStatus};

use crate::approvals::Inbox;
use crate::error::codes;
use crate::inputs::build_input;
use crate::journal::Journal;
use crate::lineage;
use crate::safety::OutputScreen;
use crate::step::{StepOutcome, StepRun};
use crate::tools::{Parked, ToolRunner};
use crate::usage::usage_from_journal;
use crate::writer::TaskWriter;

/// What running a task's steps needs: the workflows and agents, their provider chains, the
/// pipeline every governed action goes through, and where votes reach a step that waits.
pub(crate) struct Executor {
    pub(crate) config: Arc<AmasConfig>,
    pub(crate) journal: Arc<Journal>,
    /// Every agent's provider chain, resolved at start.
    pub(crate) chains: BTreeMap<String, ProviderChain>,
    pub(crate) metrics: Metrics,
    pub(crate) pipeline: Arc<Pipeline>,
    /// The directory under which each task gets its workspace.
    pub(crate) workspaces: PathBuf,
    pub(crate) protector: Arc<DataProtector>,
    /// Screens model outputs: the pipeline's engine.
    pub(crate) content_safety: Arc<ContentSafety>,
    /// The store's one writer, for the audit records of the task's governed actions.
    pub(crate) audit: Arc<AuditWriter>,
    /// Votes for steps waiting on an approval (posted by the scheduler).
    pub(crate) inbox: Arc<Inbox>,
}

/// How one run of a task ended.
#[derive(Debug)]
pub(crate) enum RunEnd {
    /// The task has ended (now, or before the run).
    Ended,
    /// The run stopped without an end: cancelled, shutting down, another writer took over.
    /// Whoever runs the task next resumes it from its journal.
    Stopped,
    /// Every step that could go on waits for approval or for its providers (a deferred model
    /// call): the task holds no slot until a vote for one of `approvals` or the earliest
    /// deadline, `until`, wakes it.
    Parked {
        until: chrono::DateTime<chrono::Utc>,
        approvals: Vec<amas_types::ApprovalId>,
    },
}

impl Executor {
    /// Runs `task` to its end, or until it is cancelled, taken over by another writer, or
    /// parked on approvals.
    pub(crate) async fn execute(
        &self,
        task: TaskId,
        writer: Arc<TaskWriter>,
        cancel: watch::Receiver<bool>,
    ) -> Result<RunEnd, StoreError> {
        // A task queued by this process is in the read model as submitted: nothing else to read.
        // Anything further along (resumed after a restart) is folded from its whole journal.
        let (state, records) = match self.journal.cached(task) {
            Some(state) if state.status == TaskStatus::Queued && state.steps.is_empty() => {
                (Some(state), Vec::new())
            }
            _ => {
                let records = self.journal.store().read(task, 0).await?;
                (TaskState::fold(&records), records)
            }
        };
        let Some(state) = state else {
            warn!(task.id = %task, "Task has no valid journal; skipping.");
            return Ok(RunEnd::Stopped);
        };
        if state.status.is_terminal() {
            return Ok(RunEnd::Ended);
        }
        // Nothing of this run is appended yet: from here on the read model follows every append.
        self.journal.track(&state);
        writer.seed(&state).await;
        let span = info_span!(
            "amas.task",
            task.id = %task,
            task.r#type = %state.spec.task_type,
            tenant.id = %state.principal.tenant.0,
            otel.name = "amas.task"
        );
        if let Some(trace) = &state.trace_id {
            amas_telemetry::propagation::continue_trace(
                &span,
                trace,
                state.parent_span_id.as_deref(),
            );
        }
        let task_type = state.spec.task_type.clone();
        let started = Instant::now();
        let runner = ToolRunner {
            pipeline: Arc::clone(&self.pipeline),
            principal: state.principal.clone(),
            task_id: task.to_string(),
            task_type: task_type.clone(),
            workspace: self.workspaces.join(task.to_string()),
            usage: Arc::new(std::sync::Mutex::new({
                let mut usage = usage_from_journal(&records, self.pipeline.tools());
                usage
                    .started_at
                    .get_or_insert_with(std::time::SystemTime::now);
                usage
            })),
            metrics: self.metrics.clone(),
            inbox: Arc::clone(&self.inbox),
            approval_timeout: self.config.approvals.timeout,
            provider_trust: self.config.provider_trust.clone(),
            audit: Arc::clone(&self.audit),
            task,
            trace_id: state.trace_id.clone(),
        };
        // Owner-only: the files tools write there are task data (deleted with its retention).
        if let Err(e) = amas_store::private::create_private_dir(&runner.workspace) {
            warn!(task.id = %task, error = %e, "Cannot create the task workspace; file tools will fail.");
        }
        let finish = run_workflow(self, state, &writer, cancel, Arc::new(runner))
            .instrument(span)
            .await?;
        let status = match finish {
            Finish::Ended(status) => status,
            Finish::Stopped => return Ok(RunEnd::Stopped),
            Finish::Parked(parked) => {
                let until = parked
                    .iter()
                    .map(|p| p.until)
                    .min()
                    .unwrap_or_else(Utc::now);
                return Ok(RunEnd::Parked {
                    until,
                    approvals: parked.into_iter().filter_map(|p| p.approval).collect(),
                });
            }
        };
        let labels = TaskLabels {
            task_type,
            status: status.as_str().to_owned(),
        };
        self.metrics.tasks.get_or_create(&labels).inc();
        self.metrics
            .task_duration
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        Ok(RunEnd::Ended)
    }
}

/// How [`run_workflow`] stopped.
enum Finish {
    /// The task reached this terminal status.
    Ended(TaskStatus),
    /// The run was abandoned (cancelled, shutting down).
    Stopped,
    /// Nothing can go on until these approvals are decided.
    Parked(Vec<Parked>),
}

/// Runs the steps that can run; returns the terminal status reached, or why the run stopped
/// without one.
async fn run_workflow(
    executor: &Executor,
    state: TaskState,
    writer: &Arc<TaskWriter>,
    cancel: watch::Receiver<bool>,
    runner: Arc<ToolRunner>,
) -> Result<Finish, StoreError> {
    if state.status == TaskStatus::Queued {
        // Committed with the first step's start: one fsync fewer per task.
        writer.defer(JournalEvent::TaskStarted).await;
    }
    info!(task.id = %state.id, "Task running.");
    let Some(workflow) = executor
        .config
        .workflows
        .get(&state.spec.task_type)
        .cloned()
    else {
        let error = ErrorInfo {
            code: codes::WORKFLOW_GONE.to_owned(),
            message: format!(
                "no workflow is configured for task type `{}` any more",
                state.spec.task_type
            ),
        };
        writer.append(JournalEvent::TaskFailed { error }).await?;
        return Ok(Finish::Ended(TaskStatus::Failed));
    };

    let mut outputs: BTreeMap<StepId, Value> = BTreeMap::new();
    let mut failed: Option<ErrorInfo> = None;
    for (name, step) in &state.steps {
        match step.status {
            StepStatus::Succeeded => {
                outputs.insert(name.clone(), step.output.clone().unwrap_or(Value::Null));
            }
            StepStatus::Failed => failed = failed.or_else(|| step.error.clone()),
            StepStatus::Pending | StepStatus::Running => {}
        }
    }

    let screen = Arc::new(OutputScreen {
        safety: Arc::clone(&executor.content_safety),
        metrics: executor.metrics.clone(),
        audit: Arc::clone(&executor.audit),
        principal: state.principal.clone(),
        task: state.id,
        trace_id: state.trace_id.clone(),
    });
    let mut running: BTreeSet<StepId> = BTreeSet::new();
    // Steps stopped on an approval: not started again in this run.
    let mut parked: BTreeMap<StepId, Parked> = BTreeMap::new();
    let mut set: JoinSet<(StepId, Result<StepOutcome, StoreError>)> = JoinSet::new();
    loop {
        if failed.is_none() && !*cancel.borrow() {
            for step in &workflow.steps {
                let ready = !outputs.contains_key(&step.name)
                    && !running.contains(&step.name)
                    && !parked.contains_key(&step.name)
                    && step
                        .depends_on
                        .iter()
                        .all(|d| outputs.contains_key(d.as_str()));
                if !ready {
                    continue;
                }
                let (Some(agent), Some(chain)) = (
                    executor.config.agents.get(step.agent.as_str()).cloned(),
                    executor.chains.get(step.agent.as_str()).cloned(),
                ) else {
                    // Validation makes this unreachable; fail closed rather than skip a step.
                    failed = Some(ErrorInfo {
                        code: codes::WORKFLOW_GONE.to_owned(),
                        message: format!("agent `{}` is not configured", step.agent),
                    });
                    break;
                };
                let prior = state.steps.get(&step.name).cloned();
                let approvals = state
                    .approvals
                    .values()
                    .filter(|a| a.step == step.name)
                    .map(|a| (a.call_id.clone(), a.clone()))
                    .collect();
                let input = match prior.as_ref().and_then(|p| p.input.clone()) {
                    Some(journaled) => journaled,
                    None => build_input(step, &state.spec, &outputs),
                };
                let run_writer = Arc::clone(writer);
                let metrics = executor.metrics.clone();
                let config = Arc::clone(&executor.config);
                let tenant = state.principal.tenant.0.clone();
                let step = step.clone();
                let cancel = cancel.clone();
                let runner = Arc::clone(&runner);
                let screen = Arc::clone(&screen);
                running.insert(step.name.clone());
                set.spawn(
                    async move {
                        let outcome = StepRun {
                            step: &step,
                            agent: &agent,
                            chain: &chain,
                            writer: &run_writer,
                            metrics: &metrics,
                            prior,
                            input,
                            cancel,
                            tools: &runner,
                            approvals,
                            tenant: &tenant,
                            prices: &config.provider_prices,
                            screen: &screen,
                        }
                        .run()
                        .await;
                        (step.name.clone(), outcome)
                    }
                    .in_current_span(),
                );
            }
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        let (name, outcome) = match joined {
            Ok(v) => v,
            Err(e) => {
                // A panicking step is a bug; fail the task rather than hang it.
                warn!(error = %e, "Step task ended abnormally.");
                failed.get_or_insert(ErrorInfo {
                    code: codes::UPSTREAM_FAILED.to_owned(),
                    message: "a step ended abnormally".to_owned(),
                });
                continue;
            }
        };
        running.remove(&name);
        match outcome? {
            StepOutcome::Succeeded(output) => {
                outputs.insert(name, output);
                record_lineage(executor, &workflow, writer, None).await?;
            }
            StepOutcome::Failed(error) => {
                failed.get_or_insert(ErrorInfo {
                    code: error.code,
                    message: format!("step `{name}` failed: {}", error.message),
                });
            }
            StepOutcome::Abandoned => {}
            StepOutcome::Parked(p) => {
                parked.insert(name, p);
            }
        }
    }

    if *cancel.borrow() {
        return Ok(Finish::Stopped);
    }
    if let Some(error) = failed {
        info!(task.id = %state.id, code = %error.code, "Task failed.");
        // The calls still waiting for approval will never run: their requests are settled
        // with the failure, so no approver is offered them any more.
        let mut events: Vec<JournalEvent> = parked
            .into_values()
            .filter_map(|p| Some((p.approval?, p.step)))
            .map(|(approval_id, step)| JournalEvent::ApprovalResolved {
                approval_id,
                step,
                status: amas_types::ApprovalStatus::Denied,
                reason: format!("the task failed: {}", error.code),
            })
            .collect();
        events.push(JournalEvent::TaskFailed { error });
        writer.append_all(&events).await?;
        return Ok(Finish::Ended(TaskStatus::Failed));
    }
    if !parked.is_empty() {
        // Inside the task's span: the line carries its trace.
        let approvals = parked.values().filter(|p| p.approval.is_some()).count();
        info!(task.id = %state.id, approvals, deferred = parked.len() - approvals, "Task parked until a vote or its deadline.");
        return Ok(Finish::Parked(parked.into_values().collect()));
    }
    let result = outputs
        .get(workflow.result_step.as_str())
        .cloned()
        .unwrap_or(Value::Null);
    record_lineage(
        executor,
        &workflow,
        writer,
        Some(JournalEvent::TaskSucceeded { result }),
    )
    .await?;
    info!(task.id = %state.id, "Task succeeded.");
    Ok(Finish::Ended(TaskStatus::Succeeded))
}

/// Journals the lineage nodes the task is missing (succeeded steps and their tool results; the
/// result when `done` is the task's success, which is appended in the same batch, after them).
/// Computed on the writer's view of the task (every event it queued, committed or not), so a
/// step recovered after a restart gets its node too and no upstream is ever missed. Without
/// `done` the nodes ride along with the next write: nothing waits on them, and a restart
/// recomputes any that never made it.
async fn record_lineage(
    executor: &Executor,
    workflow: &amas_config::WorkflowConfig,
    writer: &Arc<TaskWriter>,
    done: Option<JournalEvent>,
) -> Result<(), StoreError> {
    let result = match &done {
        Some(JournalEvent::TaskSucceeded { result }) => Some(result.clone()),
        _ => None,
    };
    let protector = Arc::clone(&executor.protector);
    writer
        .lineage(
            |view| lineage::missing_nodes(&protector, workflow, view, result.as_ref()),
            done,
        )
        .await
}
