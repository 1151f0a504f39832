//! The admission service: whether a task may enter. It checks the submission (a known task
//! type, the runtime still admitting), asks the governance pipeline's submission entry point
//! (content safety on the input, then the task policy), reserves a place in the scheduler's
//! queue, journals `TaskSubmitted` with the input's lineage node (the task's first append),
//! and only then queues the task and writes the submission's audit records.

use std::sync::Arc;

use amas_config::AmasConfig;
use amas_dataprotect::{Classification, DataProtector};
use amas_governance::pipeline::{self, ActionContext, Pipeline};
use amas_store::StoreError;
use amas_telemetry::Metrics;
use amas_types::{JournalEvent, JournalRecord, Principal, TaskId, TaskSpec};

use crate::RuntimeError;
use crate::access::Access;
use crate::journal::Journal;
use crate::lineage;
use crate::scheduler::Scheduler;

/// Admits tasks into the scheduler's queue.
pub struct Admission {
    pub(crate) config: Arc<AmasConfig>,
    pub(crate) journal: Arc<Journal>,
    pub(crate) pipeline: Arc<Pipeline>,
    pub(crate) metrics: Metrics,
    pub(crate) protector: Arc<DataProtector>,
    pub(crate) access: Arc<Access>,
    pub(crate) scheduler: Arc<Scheduler>,
}

impl Admission {
    /// `task.submit` for a principal of the API: API policy first, then as
    /// [`Admission::submit_classified`].
    ///
    /// # Errors
    /// [`RuntimeError::Forbidden`], or as [`Admission::submit`].
    pub async fn submit_as(
        &self,
        principal: Principal,
        spec: TaskSpec,
        floor: Option<Classification>,
        trace_id: Option<String>,
    ) -> Result<JournalRecord, RuntimeError> {
        self.access
            .authorize_api(&principal, "task.submit", None)
            .await?;
        self.submit_classified(spec, principal, trace_id, floor)
            .await
    }

    /// Admits a task: journals `TaskSubmitted` and queues it.
    ///
    /// # Errors
    /// Unknown task type, a full queue (backpressure), shutdown, or a store error.
    pub async fn submit(
        &self,
        spec: TaskSpec,
        principal: Principal,
        trace_id: Option<String>,
    ) -> Result<JournalRecord, RuntimeError> {
        self.submit_classified(spec, principal, trace_id, None)
            .await
    }

    /// As [`Admission::submit`], with a classification floor the submitter declares for the
    /// input (see [`crate::declared_floor`]); the input's lineage node is journaled with the
    /// submission.
    ///
    /// # Errors
    /// As [`Admission::submit`].
    pub async fn submit_classified(
        &self,
        spec: TaskSpec,
        principal: Principal,
        trace_id: Option<String>,
        floor: Option<Classification>,
    ) -> Result<JournalRecord, RuntimeError> {
        if !self.scheduler.admitting() {
            return Err(RuntimeError::ShuttingDown);
        }
        self.check_task_type(&spec)?;
        let submission_audit = self.govern(&spec, &principal, trace_id.as_ref()).await?;
        // Reserve a queue slot before writing anything, so a refused task leaves no trace.
        let reservation = self.scheduler.reserve(&principal.tenant).await?;
        let priority = spec.priority;
        let task = TaskId::new();
        // The submitting span is the parent of the task's span, when it is in the same trace.
        let parent_span_id = trace_id
            .as_ref()
            .filter(|t| amas_telemetry::current_trace_id().as_ref() == Some(*t))
            .and_then(|_| amas_telemetry::propagation::current_span_id());
        let input = lineage::input_node(&self.protector, &spec, floor);
        let event = JournalEvent::TaskSubmitted {
            spec,
            principal,
            trace_id,
            parent_span_id,
        };
        let batch = [event, JournalEvent::LineageRecorded { node: input }];
        let record = self
            .journal
            .append(task, 0, &batch)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::InvalidAppend("no record returned".to_owned()))?;
        reservation.enqueue(task, priority);
        for audit in submission_audit {
            self.access.audit(audit.with_task(task)).await;
        }
        Ok(record)
    }

    fn check_task_type(&self, spec: &TaskSpec) -> Result<(), RuntimeError> {
        if self.config.workflows.contains_key(&spec.task_type) {
            return Ok(());
        }
        Err(RuntimeError::UnknownTaskType {
            task_type: spec.task_type.clone(),
            known: self
                .config
                .workflows
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// The pipeline's submission entry point: content safety on the input, then policy. The
    /// audit records to write once the submission is journaled, or the refusal (its records
    /// written now).
    async fn govern(
        &self,
        spec: &TaskSpec,
        principal: &Principal,
        trace_id: Option<&String>,
    ) -> Result<Vec<amas_store::AuditRecord>, RuntimeError> {
        let ctx = ActionContext {
            principal,
            task: None,
            step: None,
            agent: None,
            trace_id: trace_id.cloned(),
        };
        let governed = pipeline::entry::submission(
            self.pipeline.as_ref(),
            &self.metrics,
            self.pipeline.content_safety(),
            &ctx,
            spec,
        )
        .await;
        match governed {
            Ok(governed) => Ok(governed.audit),
            Err(refused) => {
                for record in refused.audit {
                    self.access.audit(record).await;
                }
                Err(
                    if refused.decision.stage == pipeline::Stage::ContentSafety {
                        RuntimeError::ContentBlocked {
                            categories: refused.message,
                        }
                    } else {
                        RuntimeError::Denied {
                            task_type: spec.task_type.clone(),
                            reasons: refused.message,
                        }
                    },
                )
            }
        }
    }
}
