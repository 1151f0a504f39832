//! The approvals service: approval requests as the journal projects them (listing, reading)
//! and the votes on them. A step paused on an approval registers in [`Waiting`]; an
//! approver's vote is checked against the stored request and then handed to that step, which
//! is the only writer of its task's journal, so votes, the timeout and the decision are
//! serialized without locks over the journal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use amas_config::AmasConfig;
use amas_store::{ApprovalFilter, ApprovalPage, TaskJournal};
use amas_types::{Approval, ApprovalStatus, JournalEvent, Principal, Verdict};

use crate::access::Access;
use crate::error::RuntimeError;

/// How long a vote waits for the step it is meant for to be waiting (a task resumed after a
/// restart needs a moment to get back to its approval).
const APPROVAL_PATIENCE: Duration = Duration::from_secs(10);

/// Approval requests, and the votes that decide them.
pub struct Approvals {
    pub(crate) config: Arc<AmasConfig>,
    pub(crate) store: Arc<dyn TaskJournal>,
    pub(crate) access: Arc<Access>,
    /// Steps paused on an approval in this process (shared with step execution).
    pub(crate) waiting: Arc<Waiting>,
}

impl Approvals {
    /// Records an approver's vote on a pending approval and returns the approval as it then
    /// stands (approved, denied, or still pending when more approvers are needed). Only what the
    /// approver's tenant owns is visible; the requester cannot vote on their own request.
    ///
    /// # Errors
    /// [`RuntimeError::ApprovalNotFound`], [`RuntimeError::ApprovalSettled`],
    /// [`RuntimeError::SelfApproval`], [`RuntimeError::NotAnApprover`],
    /// [`RuntimeError::AlreadyVoted`], [`RuntimeError::ApprovalUnavailable`] when the waiting
    /// task is not running here, or a store error.
    pub async fn decide(
        &self,
        approval_id: &str,
        approver: Principal,
        verdict: Verdict,
        reason: String,
    ) -> Result<Approval, RuntimeError> {
        let approval = self
            .get(approval_id, &approver, "approval.decide")
            .await?
            .ok_or_else(|| RuntimeError::ApprovalNotFound(approval_id.to_owned()))?;
        if let Some(refused) =
            refuse_vote(&approval, &approver, &self.config.approvals.approver_roles)
        {
            return Err(refused);
        }
        let unavailable = || RuntimeError::ApprovalUnavailable {
            id: approval_id.to_owned(),
        };
        let step = self.step_waiting_on(approval_id).await?;
        let (reply, answer) = oneshot::channel();
        step.send(Vote {
            approver,
            verdict,
            reason,
            reply,
        })
        .await
        .map_err(|_| unavailable())?;
        answer.await.map_err(|_| unavailable())?
    }

    /// The step waiting on `approval_id`, waiting up to [`APPROVAL_PATIENCE`] for it to
    /// register (a task resumed after a restart gets there shortly). While it waits, a request
    /// settled meanwhile (its task was cancelled) is answered as settled at once.
    async fn step_waiting_on(&self, approval_id: &str) -> Result<mpsc::Sender<Vote>, RuntimeError> {
        let deadline = tokio::time::Instant::now() + APPROVAL_PATIENCE;
        loop {
            if let Some(tx) = self.waiting.sender(approval_id) {
                return Ok(tx);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RuntimeError::ApprovalUnavailable {
                    id: approval_id.to_owned(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Some(a) = self.store.approval(approval_id).await?
                && a.status != ApprovalStatus::Pending
            {
                return Err(RuntimeError::ApprovalSettled {
                    id: a.id,
                    status: a.status.as_str(),
                });
            }
        }
    }

    /// One approval, if it belongs to `viewer`'s tenant. Another tenant's approval is not
    /// found, and the attempt (`operation` on it) is audited.
    ///
    /// # Errors
    /// A store error.
    pub async fn get(
        &self,
        approval_id: &str,
        viewer: &Principal,
        operation: &str,
    ) -> Result<Option<Approval>, RuntimeError> {
        match self.store.approval(approval_id).await? {
            Some(a) if a.tenant == viewer.tenant => Ok(Some(a)),
            Some(_) => {
                self.access
                    .cross_tenant_attempt(viewer, operation, &format!("approval:{approval_id}"))
                    .await;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Approvals of `viewer`'s tenant matching `filter` (its tenant is overridden), for holders
    /// of an approver role.
    ///
    /// # Errors
    /// [`RuntimeError::NotAnApprover`], or a store error.
    pub async fn list(
        &self,
        viewer: &Principal,
        mut filter: ApprovalFilter,
    ) -> Result<ApprovalPage, RuntimeError> {
        let roles = &self.config.approvals.approver_roles;
        if !is_approver(viewer, roles) {
            return Err(RuntimeError::NotAnApprover {
                roles: roles.join(", "),
            });
        }
        filter.tenant = Some(viewer.tenant.clone());
        Ok(self.store.approvals(&filter).await?)
    }
}

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

    /// The step waiting on `approval_id`, if one is.
    pub(crate) fn sender(&self, approval_id: &str) -> Option<mpsc::Sender<Vote>> {
        self.lock().get(approval_id).cloned()
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
