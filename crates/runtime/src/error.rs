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
    /// The submitter's tenant has its `max_queued` tasks waiting (per-tenant backpressure);
    /// other tenants are still admitted.
    #[error(
        "your tenant has {limit} tasks waiting to start (scheduling max_queued); retry after \
         {retry_after_secs}s"
    )]
    TenantQueueFull { limit: u64, retry_after_secs: u64 },
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
    /// The vote arrived after the approval's deadline (it expires, whatever the vote says).
    #[error("approval {id} expired at {expires_at}; votes after the deadline are refused")]
    VoteTooLate {
        id: String,
        expires_at: chrono::DateTime<chrono::Utc>,
    },
    /// The step waiting on the approval is not running in this process (yet).
    #[error("the task waiting on approval {id} is not running here; retry shortly")]
    ApprovalUnavailable { id: String },
    /// A cancel reached an API process while a worker held the task, and was not applied in
    /// time; it stays recorded and is applied by whoever runs the task next.
    #[error(
        "the cancel of task {task} is recorded but not applied yet (its worker is busy or unreachable); retry shortly"
    )]
    CancelPending { task: TaskId },
    /// The submitted content is in a content-safety category whose action is `block`.
    #[error("the task input was refused by the content-safety filter (categories: {categories})")]
    ContentBlocked { categories: String },
    /// A live stream was asked to resume after an event its task's journal does not have.
    #[error("task {task} has no event {seq}: its journal ends at seq {last_seq}")]
    EventBeyondJournal {
        task: TaskId,
        seq: u64,
        last_seq: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RuntimeError {
    /// The stable public code (see `docs/errors/`).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownTaskType { .. } => amas_types::codes::TASK_UNKNOWN_TYPE,
            Self::QueueFull { .. } => amas_types::codes::TASK_QUEUE_FULL,
            Self::TenantQueueFull { .. } => amas_types::codes::TASK_TENANT_QUEUE_FULL,
            Self::NotFound(_) => amas_types::codes::TASK_NOT_FOUND,
            Self::ShuttingDown => amas_types::codes::TASK_SHUTTING_DOWN,
            Self::Setup { .. } => amas_types::codes::TASK_AGENT_SETUP,
            Self::Denied { .. } | Self::Forbidden { .. } => amas_types::codes::GOV_POLICY_DENIED,
            Self::ApprovalNotFound(_) => amas_types::codes::APPR_NOT_FOUND,
            Self::ApprovalSettled { .. } => amas_types::codes::APPR_ALREADY_SETTLED,
            Self::SelfApproval { .. } => amas_types::codes::GOV_SELF_APPROVAL,
            Self::NotAnApprover { .. } => amas_types::codes::GOV_NOT_AN_APPROVER,
            Self::AlreadyVoted { .. } => amas_types::codes::APPR_ALREADY_VOTED,
            Self::VoteTooLate { .. } => amas_types::codes::APPR_VOTE_TOO_LATE,
            Self::ApprovalUnavailable { .. } => amas_types::codes::APPR_UNAVAILABLE,
            Self::CancelPending { .. } => amas_types::codes::TASK_CANCEL_PENDING,
            Self::ContentBlocked { .. } => amas_types::codes::SAFE_SUBMISSION_BLOCKED,
            Self::EventBeyondJournal { .. } => amas_types::codes::API_BAD_LAST_EVENT_ID,
            Self::Store(e) => e.code(),
        }
    }
}

/// The codes journaled when a step or task fails (the `code` of `ErrorInfo`), by their short
/// names; the codes and their summaries are defined once, in the registry
/// [`amas_types::codes`].
pub mod codes {
    pub use amas_types::codes::{
        GOV_QUOTA as TOKEN_QUOTA, SAFE_OUTPUT_BLOCKED as OUTPUT_UNSAFE,
        STEP_INPUT_CONTRACT as INPUT_CONTRACT, STEP_MODEL_CALL_DENIED as MODEL_CALL_DENIED,
        STEP_OUTPUT_CONTRACT as OUTPUT_CONTRACT, STEP_TIMEOUT, STEP_TOKEN_BUDGET as TOKEN_BUDGET,
        STEP_UPSTREAM_FAILED as UPSTREAM_FAILED, STEP_WORKFLOW_GONE as WORKFLOW_GONE,
    };
}
