//! Journal events: the append-only facts from which a task's state is folded.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::approval::{ApprovalStatus, Verdict};
use crate::ids::{AgentId, ApprovalId, CallId, ProviderId, StepId, TaskId};
use crate::lineage::LineageNode;
use crate::task::{Principal, TaskSpec, TaskStatus};

/// Tokens used by one model call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// A tool call the model asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestedTool {
    pub id: CallId,
    pub name: String,
    pub arguments: serde_json::Value,
}

/// The classification of the data a decision was about: its level and tags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataLabels {
    /// `public`, `internal`, `confidential` or `restricted`.
    pub classification: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The same data once redacted (when it had findings to redact): what policy may allow
    /// under the obligation `redact`. Absent in older journals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted: Option<Box<DataLabels>>,
}

/// A stable error code and a human message, as journaled and shown to users.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
}

/// One fact about a task. Variants are never removed or renamed: old journals must still fold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JournalEvent {
    TaskSubmitted {
        spec: TaskSpec,
        principal: Principal,
        /// The W3C trace id of the submitting request, so the whole task shares one trace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace_id: Option<String>,
        /// The submitting request's span id (16 hex digits): the parent of the task's span.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent_span_id: Option<String>,
    },
    TaskStarted,
    StepStarted {
        step: StepId,
        agent: AgentId,
        /// The step's input document, after mapping and contract validation.
        input: serde_json::Value,
    },
    /// A model answered. Journaled before anything uses the answer, so a restart never asks again.
    ModelResponded {
        step: StepId,
        /// The model turn within the step, from 1 (each answer or tool request is one turn).
        attempt: u32,
        provider: ProviderId,
        model: String,
        content: String,
        /// Tool calls the model asked for instead of answering.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<RequestedTool>,
        usage: Usage,
        latency_ms: u64,
    },
    /// Every provider of the step's chain asked to be called again later (rate limited with a
    /// `Retry-After`, or cooling down): nothing was answered, and the task parks until `until`,
    /// when the step asks the model again for the same turn. An audit trail only: the fold
    /// changes nothing for it.
    ModelCallDeferred {
        step: StepId,
        /// The model turn that was asked for (asked again when the task runs again).
        attempt: u32,
        until: DateTime<Utc>,
        /// The provider error that asked for the wait.
        error: ErrorInfo,
    },
    /// The answer of `attempt` broke the agent's output contract; the next attempt gets the errors.
    ContractViolated {
        step: StepId,
        attempt: u32,
        contract: String,
        errors: Vec<String>,
    },
    /// The governance pipeline's verdict on one action, with its reasons.
    ActionDecided {
        step: StepId,
        call_id: CallId,
        /// `tool_call` or `model_call`.
        action: String,
        /// The stage that decided: `policy`, `allowlist`, `contract`, `quota`, `approval`.
        stage: String,
        /// `allow`, `deny` or `require_approval`.
        outcome: String,
        reasons: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        /// The data the action would send, as classified when it was decided (a model call's
        /// prompt), so a replay asks policy the same question. Absent in older journals.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<DataLabels>,
        /// What the allow obliged AMAS to do (`redact`: only redacted data was sent).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        obligations: Vec<String>,
    },
    /// The tool is about to run. For a non-idempotent tool, a start without a result means the
    /// call may have happened: it is never silently re-run.
    ToolStarted {
        step: StepId,
        call_id: CallId,
        tool: String,
        idempotent: bool,
    },
    ToolCompleted {
        step: StepId,
        call_id: CallId,
        tool: String,
        output: serde_json::Value,
        duration_ms: u64,
    },
    /// The call did not produce a result (refused, denied, failed); the model sees the error.
    ToolFailed {
        step: StepId,
        call_id: CallId,
        tool: String,
        error: ErrorInfo,
    },
    /// A tool call needs a human decision first: the step pauses (durably) until it is resolved.
    ApprovalRequested {
        approval_id: ApprovalId,
        step: StepId,
        call_id: CallId,
        agent: AgentId,
        tool: String,
        risk: String,
        arguments: serde_json::Value,
        reasons: Vec<String>,
        required_approvals: u32,
        /// The submitter's `sub`: they may not approve their own request.
        requested_by: String,
        expires_at: DateTime<Utc>,
        /// The submitter's issuer: with `requested_by`, who the submitter is.
        #[serde(default)]
        requested_by_issuer: String,
    },
    /// One approver's vote on a pending approval.
    ApprovalVoted {
        approval_id: ApprovalId,
        step: StepId,
        approver: String,
        roles: Vec<String>,
        decision: Verdict,
        reason: String,
        /// The approver's issuer: with `approver`, who voted.
        #[serde(default)]
        approver_issuer: String,
    },
    /// The approval is settled (approved, denied or expired); the step goes on.
    ApprovalResolved {
        approval_id: ApprovalId,
        step: StepId,
        status: ApprovalStatus,
        reason: String,
    },
    StepSucceeded {
        step: StepId,
        output: serde_json::Value,
    },
    StepFailed {
        step: StepId,
        error: ErrorInfo,
    },
    TaskSucceeded {
        result: serde_json::Value,
    },
    TaskFailed {
        error: ErrorInfo,
    },
    TaskCancelled {
        reason: String,
    },
    /// The classification and provenance of one payload (task input, step output, tool result,
    /// final result). Recorded before anything downstream of the payload is journaled as done;
    /// absent in journals written before lineage existed.
    LineageRecorded {
        node: LineageNode,
    },
}

impl JournalEvent {
    /// The task status this event moves the task to, if it changes it.
    #[must_use]
    pub fn status_effect(&self) -> Option<TaskStatus> {
        match self {
            Self::TaskSubmitted { .. } => Some(TaskStatus::Queued),
            Self::TaskStarted => Some(TaskStatus::Running),
            Self::TaskSucceeded { .. } => Some(TaskStatus::Succeeded),
            Self::TaskFailed { .. } => Some(TaskStatus::Failed),
            Self::TaskCancelled { .. } => Some(TaskStatus::Cancelled),
            // With several approvals pending at once, the folds correct this by the number
            // still pending (`TaskStatus::with_pending_approvals`).
            Self::ApprovalRequested { .. } => Some(TaskStatus::WaitingApproval),
            Self::ApprovalResolved { .. } => Some(TaskStatus::Running),
            Self::ApprovalVoted { .. }
            | Self::StepStarted { .. }
            | Self::ActionDecided { .. }
            | Self::ToolStarted { .. }
            | Self::ToolCompleted { .. }
            | Self::ToolFailed { .. }
            | Self::ModelResponded { .. }
            | Self::ModelCallDeferred { .. }
            | Self::ContractViolated { .. }
            | Self::StepSucceeded { .. }
            | Self::StepFailed { .. }
            | Self::LineageRecorded { .. } => None,
        }
    }

    /// The `snake_case` name of the variant, as in the `type` field (bounded: safe as a label).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TaskSubmitted { .. } => "task_submitted",
            Self::TaskStarted => "task_started",
            Self::StepStarted { .. } => "step_started",
            Self::ModelResponded { .. } => "model_responded",
            Self::ModelCallDeferred { .. } => "model_call_deferred",
            Self::ContractViolated { .. } => "contract_violated",
            Self::ActionDecided { .. } => "action_decided",
            Self::ToolStarted { .. } => "tool_started",
            Self::ToolCompleted { .. } => "tool_completed",
            Self::ToolFailed { .. } => "tool_failed",
            Self::ApprovalRequested { .. } => "approval_requested",
            Self::ApprovalVoted { .. } => "approval_voted",
            Self::ApprovalResolved { .. } => "approval_resolved",
            Self::StepSucceeded { .. } => "step_succeeded",
            Self::StepFailed { .. } => "step_failed",
            Self::TaskSucceeded { .. } => "task_succeeded",
            Self::TaskFailed { .. } => "task_failed",
            Self::TaskCancelled { .. } => "task_cancelled",
            Self::LineageRecorded { .. } => "lineage_recorded",
        }
    }
}

/// An event as stored: its task, its position, and when it was recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalRecord {
    pub task_id: TaskId,
    /// 1 for the first event of a task, then consecutive.
    pub seq: u64,
    pub recorded_at: DateTime<Utc>,
    pub event: JournalEvent,
}
