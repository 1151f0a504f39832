//! Content safety on what models answer, for one task: the pipeline's model-output stage
//! (`amas_governance::pipeline::model_output`) with this task's identity, its verdict's audit
//! record written here. Submissions are screened by the pipeline's submission entry point.

use std::sync::Arc;

use amas_dataprotect::ContentSafety;
use amas_governance::pipeline::{ActionContext, entry};
use amas_store::AuditWriter;
use amas_telemetry::Metrics;
use amas_types::{AgentId, ErrorInfo, JournalEvent, JournaledAnswer, Principal, StepId, TaskId};
use tracing::warn;

/// Screens the model outputs of one task: every answer's text and the string arguments of the
/// tool calls it asks for, before the answer is journaled as used.
pub(crate) struct OutputScreen {
    pub safety: Arc<ContentSafety>,
    pub metrics: Metrics,
    pub audit: Arc<AuditWriter>,
    pub principal: Principal,
    pub task: TaskId,
    pub trace_id: Option<String>,
}

/// A verdict worth journaling (anything but a plain allow), and the step's error when it blocks.
pub(crate) struct Screened {
    pub event: JournalEvent,
    pub blocked: Option<ErrorInfo>,
}

impl OutputScreen {
    /// Screens `answer` (turn `turn` of `step`, from `provider`). `None` when the classifier
    /// allowed it: nothing to journal. Otherwise the `ActionDecided` to journal with the
    /// answer, after its audit record is written.
    pub(crate) async fn model_output(
        &self,
        step: &StepId,
        agent: &AgentId,
        turn: u32,
        provider: &str,
        answer: &JournaledAnswer,
    ) -> Option<Screened> {
        let ctx = ActionContext {
            principal: &self.principal,
            task: Some(self.task),
            step: Some(step),
            agent: Some(agent),
            trace_id: self.trace_id.clone(),
        };
        let verdict =
            entry::model_output(&self.metrics, &self.safety, &ctx, turn, provider, answer).await?;
        if let Err(e) = self.audit.record(verdict.audit).await {
            warn!(error = %e, "An audit record was refused.");
        }
        Some(Screened {
            event: verdict.event,
            blocked: verdict.blocked,
        })
    }
}
