//! Runtime errors: what a caller (the API, the CLI) can be told, each with a stable code.

use amas_store::StoreError;
use amas_types::TaskId;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No workflow is configured for the task type.
    #[error("unknown task type `{task_type}`; known types: {known}")]
    UnknownTaskType { task_type: String, known: String },
    /// The admission queue is full (backpressure).
    #[error("the task queue is full ({capacity} tasks waiting); retry after {retry_after_secs}s")]
    QueueFull {
        capacity: usize,
        retry_after_secs: u64,
    },
    #[error("task {0} not found")]
    NotFound(TaskId),
    /// The runtime is shutting down and admits no more work.
    #[error("the runtime is shutting down")]
    ShuttingDown,
    /// An agent's provider chain could not be built at start.
    #[error("agent {agent}: {reason}")]
    Setup { agent: String, reason: String },
    /// Policy does not let this principal submit this task type.
    #[error("not allowed to submit `{task_type}` tasks: {reasons}")]
    Denied { task_type: String, reasons: String },
    /// Policy does not let this principal perform this API operation.
    #[error("not allowed to perform `{operation}`: {reasons}")]
    Forbidden { operation: String, reasons: String },
    /// No approval with this id is visible to the caller.
    #[error("approval {0} not found")]
    ApprovalNotFound(String),
    /// The approval was already approved, denied or expired.
    #[error("approval {id} is already {status}")]
    ApprovalSettled { id: String, status: &'static str },
    /// The requester may not approve their own request.
    #[error("approval {id} was requested by you; another approver must decide")]
    SelfApproval { id: String },
    /// The caller holds no approver role.
    #[error("only holders of the roles [{roles}] may decide approvals")]
    NotAnApprover { roles: String },
    #[error("you already voted on approval {id}")]
    AlreadyVoted { id: String },
    /// The step waiting on the approval is not running in this process (yet).
    #[error("the task waiting on approval {id} is not running here; retry shortly")]
    ApprovalUnavailable { id: String },
    /// The submitted content is in a content-safety category whose action is `block`.
    #[error("the task input was refused by the content-safety filter (categories: {categories})")]
    ContentBlocked { categories: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RuntimeError {
    /// The stable public code (see `docs/errors/`).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownTaskType { .. } => "AMAS-TASK-0001",
            Self::QueueFull { .. } => "AMAS-TASK-0003",
            Self::NotFound(_) => "AMAS-TASK-0004",
            Self::ShuttingDown => "AMAS-TASK-0005",
            Self::Setup { .. } => "AMAS-TASK-0006",
            Self::Denied { .. } | Self::Forbidden { .. } => "AMAS-GOV-0001",
            Self::ApprovalNotFound(_) => "AMAS-APPR-0001",
            Self::ApprovalSettled { .. } => "AMAS-APPR-0002",
            Self::SelfApproval { .. } => "AMAS-GOV-0008",
            Self::NotAnApprover { .. } => "AMAS-GOV-0011",
            Self::AlreadyVoted { .. } => "AMAS-APPR-0003",
            Self::ApprovalUnavailable { .. } => "AMAS-APPR-0004",
            Self::ContentBlocked { .. } => "AMAS-SAFE-0001",
            Self::Store(e) => e.code(),
        }
    }
}

/// Stable codes journaled when a step or task fails (the `code` of `ErrorInfo`).
pub mod codes {
    /// The step's input broke the agent's input contract.
    pub const INPUT_CONTRACT: &str = "AMAS-STEP-0001";
    /// Every attempt's output broke the agent's output contract.
    pub const OUTPUT_CONTRACT: &str = "AMAS-STEP-0002";
    /// The step used more tokens than the agent's budget.
    pub const TOKEN_BUDGET: &str = "AMAS-STEP-0003";
    /// The task's workflow is no longer configured.
    pub const WORKFLOW_GONE: &str = "AMAS-STEP-0004";
    /// An upstream step failed, so the task cannot finish.
    pub const UPSTREAM_FAILED: &str = "AMAS-STEP-0005";
    /// The model call did not finish within the agent's timeout.
    pub const STEP_TIMEOUT: &str = "AMAS-STEP-0006";
    /// The agent used its task-wide token quota (`quotas.tokens_per_task`).
    pub const TOKEN_QUOTA: &str = "AMAS-GOV-0005";
    /// Policy allowed none of the agent's providers for the prompt's data.
    pub const MODEL_CALL_DENIED: &str = "AMAS-STEP-0008";
    /// A model's output is in a content-safety category whose action is `block`.
    pub const OUTPUT_UNSAFE: &str = "AMAS-SAFE-0002";
}
