//! Journal events: the append-only facts from which a task's state is folded.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::TaskId;
use crate::task::{Principal, TaskSpec, TaskStatus};

/// Tokens used by one model call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
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
    },
    TaskStarted,
    StepStarted {
        step: String,
        agent: String,
        /// The step's input document, after mapping and contract validation.
        input: serde_json::Value,
    },
    /// A model answered. Journaled before anything uses the answer, so a restart never asks again.
    ModelResponded {
        step: String,
        attempt: u32,
        provider: String,
        model: String,
        content: String,
        usage: Usage,
        latency_ms: u64,
    },
    /// The answer of `attempt` broke the agent's output contract; the next attempt gets the errors.
    ContractViolated {
        step: String,
        attempt: u32,
        contract: String,
        errors: Vec<String>,
    },
    StepSucceeded {
        step: String,
        output: serde_json::Value,
    },
    StepFailed {
        step: String,
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
            Self::StepStarted { .. }
            | Self::ModelResponded { .. }
            | Self::ContractViolated { .. }
            | Self::StepSucceeded { .. }
            | Self::StepFailed { .. } => None,
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
            Self::ContractViolated { .. } => "contract_violated",
            Self::StepSucceeded { .. } => "step_succeeded",
            Self::StepFailed { .. } => "step_failed",
            Self::TaskSucceeded { .. } => "task_succeeded",
            Self::TaskFailed { .. } => "task_failed",
            Self::TaskCancelled { .. } => "task_cancelled",
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
