//! Approval votes on the way to the step that waits for them. A step paused on an approval
//! registers here; an approver's vote (from the API) is checked against the stored request and
//! then handed to that step, which is the only writer of its task's journal, so votes, the
//! timeout and the decision are serialized without locks over the journal.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use amas_types::{Approval, ApprovalStatus, JournalEvent, Principal, Verdict};

use crate::error::RuntimeError;

/// Votes queued per waiting approval before a voter waits.
const VOTE_BUFFER: usize = 16;

/// One approver's vote, with where to send the outcome.
pub(crate) struct Vote {
    pub approver: Principal,
    pub verdict: Verdict,
    pub reason: String,
    /// The approval after the vote was journaled, or why it was refused.
    pub reply: oneshot::Sender<Result<Approval, RuntimeError>>,
}

/// Approvals that a step in this process is waiting on, by id.
#[derive(Default)]
pub(crate) struct Waiting {
    steps: Mutex<HashMap<String, mpsc::Sender<Vote>>>,
}

impl Waiting {
    /// Registers a waiting step; it receives votes until the returned guard is dropped.
    pub(crate) fn register(&self, approval_id: &str) -> (mpsc::Receiver<Vote>, Registration<'_>) {
        let (tx, rx) = mpsc::channel(VOTE_BUFFER);
        self.lock().insert(approval_id.to_owned(), tx);
        (
            rx,
            Registration {
                waiting: self,
                id: approval_id.to_owned(),
            },
        )
    }

    /// The step waiting on `approval_id`, waiting up to `patience` for it to register (a task
    /// that is being resumed after a restart gets there shortly).
    pub(crate) async fn sender(
        &self,
        approval_id: &str,
        patience: Duration,
    ) -> Option<mpsc::Sender<Vote>> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            if let Some(tx) = self.lock().get(approval_id).cloned() {
                return Some(tx);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<Vote>>> {
        self.steps.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Unregisters a waiting step when it stops waiting, however it stops.
pub(crate) struct Registration<'a> {
    waiting: &'a Waiting,
    id: String,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.waiting.lock().remove(&self.id);
    }
}

/// Whether `principal` holds one of the configured approver roles.
pub(crate) fn is_approver(principal: &Principal, approver_roles: &[String]) -> bool {
    principal.roles.iter().any(|r| approver_roles.contains(r))
}

/// Why a vote is refused before it reaches the step, checked against the stored request: the
/// caller must be another person than the requester, hold an approver role, and not have voted.
pub(crate) fn refuse_vote(
    approval: &Approval,
    approver: &Principal,
    approver_roles: &[String],
) -> Option<RuntimeError> {
    if approval.status != amas_types::ApprovalStatus::Pending {
        return Some(RuntimeError::ApprovalSettled {
            id: approval.id.clone(),
            status: approval.status.as_str(),
        });
    }
    if approver.sub == approval.requested_by {
        return Some(RuntimeError::SelfApproval {
            id: approval.id.clone(),
        });
    }
    if !is_approver(approver, approver_roles) {
        return Some(RuntimeError::NotAnApprover {
            roles: approver_roles.join(", "),
        });
    }
    if approval.has_voted(&approver.sub) {
        return Some(RuntimeError::AlreadyVoted {
            id: approval.id.clone(),
        });
    }
    None
}

/// The journal event that settles `approval` with `status`.
pub(crate) fn resolved(
    step: &str,
    approval: &Approval,
    status: ApprovalStatus,
    reason: &str,
) -> JournalEvent {
    JournalEvent::ApprovalResolved {
        approval_id: approval.id.clone(),
        step: step.to_owned(),
        status,
        reason: reason.to_owned(),
    }
}

/// Who approved, for the resolution's reason.
pub(crate) fn votes_text(approval: &Approval) -> String {
    let approvers: Vec<&str> = approval
        .votes
        .iter()
        .filter(|v| v.decision == amas_types::Verdict::Approve)
        .map(|v| v.approver.as_str())
        .collect();
    format!("approved by {}", approvers.join(", "))
}
