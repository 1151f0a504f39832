//! The vocabulary of AMAS: ids, tasks, steps, principals and the journal events that are the
//! source of truth for execution state. No I/O lives here.

mod approval;
pub mod codes;
mod event;
pub mod governance;
mod ids;
mod lineage;
mod state;
mod task;

pub use approval::{Approval, ApprovalStatus, ApprovalVote, Verdict};
pub use event::{DataLabels, ErrorInfo, JournalEvent, JournalRecord, RequestedTool, Usage};
pub use governance::{ActionKind, Decision, Outcome, Stage};
pub use ids::{AgentId, ApprovalId, CallId, ProviderId, StepId, TaskId, TenantId};
pub use lineage::{LineageNode, NodeKind};
pub use state::{JournaledAnswer, StepState, TaskState, ToolOutcome};
pub use task::{Identity, Principal, Priority, PriorityError, StepStatus, TaskSpec, TaskStatus};
