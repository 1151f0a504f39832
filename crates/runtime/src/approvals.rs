//! The approvals service: approval requests as the journal projects them (listing, reading)
//! and the votes on them. A step paused on an approval registers in [`Waiting`]; an
//! approver's vote is checked against the stored request and then handed to that step, which
//! is the only writer of its task's journal, so votes, the timeout and the decision are
//! serialized without locks over the journal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};

use amas_config::AmasConfig;
use amas_store::{ApprovalFilter, ApprovalPage, TaskJournal};
use amas_types::{Approval, ApprovalId, ApprovalStatus, JournalEvent, Principal, StepId, Verdict};

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
        approval_id: &ApprovalId,
        approver: Principal,
        verdict: Verdict,
        reason: String,
    ) -> Result<Approval, RuntimeError> {
        let approval = self
            .get(approval_id, &approver, "approval.decide")
            .await?
            .ok_or_else(|| RuntimeError::ApprovalNotFound(approval_id.to_string()))?;
        if let Some(refused) = refuse_vote(
            &approval,
            &approver,
            &self.config.approvals.approver_roles,
            Utc::now(),
        ) {
            return Err(refused);
        }
        let unavailable = || RuntimeError::ApprovalUnavailable {
            id: approval_id.to_string(),
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
    async fn step_waiting_on(
        &self,
        approval_id: &ApprovalId,
    ) -> Result<mpsc::Sender<Vote>, RuntimeError> {
        let deadline = tokio::time::Instant::now() + APPROVAL_PATIENCE;
        loop {
            if let Some(tx) = self.waiting.sender(approval_id) {
                return Ok(tx);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RuntimeError::ApprovalUnavailable {
                    id: approval_id.to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Some(a) = self.store.approval(approval_id).await?
                && a.status != ApprovalStatus::Pending
            {
                return Err(RuntimeError::ApprovalSettled {
                    id: a.id.into(),
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
        approval_id: &ApprovalId,
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
    steps: Mutex<HashMap<ApprovalId, mpsc::Sender<Vote>>>,
}

impl Waiting {
    /// Registers a waiting step; it receives votes until the returned guard is dropped.
    pub(crate) fn register(
        &self,
        approval_id: &ApprovalId,
    ) -> (mpsc::Receiver<Vote>, Registration<'_>) {
        let (tx, rx) = mpsc::channel(VOTE_BUFFER);
        self.lock().insert(approval_id.clone(), tx);
        (
            rx,
            Registration {
                waiting: self,
                id: approval_id.clone(),
            },
        )
    }

    /// The step waiting on `approval_id`, if one is.
    pub(crate) fn sender(&self, approval_id: &ApprovalId) -> Option<mpsc::Sender<Vote>> {
        self.lock().get(approval_id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ApprovalId, mpsc::Sender<Vote>>> {
        self.steps.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Unregisters a waiting step when it stops waiting, however it stops.
pub(crate) struct Registration<'a> {
    waiting: &'a Waiting,
    id: ApprovalId,
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

/// Why a vote cast at `now` is refused, checked against the request (before the vote reaches
/// the step, and again by the step): the request must still be pending and within its
/// deadline, and the caller must be another person than the requester (another subject, or
/// the same subject at another issuer), hold an approver role, and not have voted.
pub(crate) fn refuse_vote(
    approval: &Approval,
    approver: &Principal,
    approver_roles: &[String],
    now: DateTime<Utc>,
) -> Option<RuntimeError> {
    if approval.status != amas_types::ApprovalStatus::Pending {
        return Some(RuntimeError::ApprovalSettled {
            id: approval.id.to_string(),
            status: approval.status.as_str(),
        });
    }
    if now >= approval.expires_at {
        return Some(RuntimeError::VoteTooLate {
            id: approval.id.to_string(),
            expires_at: approval.expires_at,
        });
    }
    // Identity is the subject at its issuer: the same `sub` from another issuer is another
    // person, and one person's second vote counts once, whatever roles it carries.
    let who = approver.identity();
    if who == approval.requester() {
        return Some(RuntimeError::SelfApproval {
            id: approval.id.to_string(),
        });
    }
    if !is_approver(approver, approver_roles) {
        return Some(RuntimeError::NotAnApprover {
            roles: approver_roles.join(", "),
        });
    }
    if approval.has_voted(&who) {
        return Some(RuntimeError::AlreadyVoted {
            id: approval.id.to_string(),
        });
    }
    None
}

/// The journal event that settles `approval` with `status`.
pub(crate) fn resolved(
    step: &StepId,
    approval: &Approval,
    status: ApprovalStatus,
    reason: &str,
) -> JournalEvent {
    JournalEvent::ApprovalResolved {
        approval_id: approval.id.clone(),
        step: step.clone(),
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

/// How waiting for an approval ended.
pub(crate) enum Waited {
    Vote(Vote),
    Expired,
    Cancelled,
}

/// Waits for the next vote, the request's expiry, or the task's cancellation. When more than
/// one is ready, the expiry wins, then the cancellation: a vote queued past the deadline (or
/// beside a cancellation) never beats it.
pub(crate) async fn wait(
    inbox: &mut mpsc::Receiver<Vote>,
    approval: &Approval,
    cancel: &watch::Receiver<bool>,
) -> Waited {
    let left = (approval.expires_at - Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO);
    // A timer already due is not ready at its first poll: past the deadline, nothing else
    // is even looked at.
    if left.is_zero() {
        return Waited::Expired;
    }
    let mut cancel = cancel.clone();
    tokio::select! {
        biased;
        () = tokio::time::sleep(left) => Waited::Expired,
        _ = cancel.wait_for(|c| *c) => Waited::Cancelled,
        vote = inbox.recv() => vote.map_or(Waited::Cancelled, Waited::Vote),
    }
}

#[cfg(test)]
mod tests {
    use amas_types::{TaskId, TenantId};
    use chrono::TimeDelta;

    use super::*;

    fn approval(expires_at: DateTime<Utc>) -> Approval {
        Approval {
            id: "a-1".into(),
            task_id: TaskId::new(),
            tenant: TenantId("acme".to_owned()),
            step: "research".into(),
            call_id: "call_1".into(),
            agent: "research".into(),
            tool: "code_analyzer".to_owned(),
            risk: "low".to_owned(),
            arguments: serde_json::json!({}),
            reasons: Vec::new(),
            required_approvals: 1,
            requested_by: "alice".to_owned(),
            requested_by_issuer: "amas-local".to_owned(),
            status: ApprovalStatus::Pending,
            votes: Vec::new(),
            created_at: expires_at - TimeDelta::hours(1),
            expires_at,
            decided_at: None,
            resolution: None,
        }
    }

    fn bob() -> Principal {
        Principal {
            sub: "bob".to_owned(),
            roles: vec!["approver".to_owned()],
            tenant: TenantId("acme".to_owned()),
            auth_method: "local_jwt".to_owned(),
            issuer: "amas-local".to_owned(),
        }
    }

    fn vote() -> (Vote, oneshot::Receiver<Result<Approval, RuntimeError>>) {
        let (reply, answer) = oneshot::channel();
        let vote = Vote {
            approver: bob(),
            verdict: Verdict::Approve,
            reason: "ok".to_owned(),
            reply,
        };
        (vote, answer)
    }

    /// L5: a vote counts only before the deadline; at or after it, it is refused with its own
    /// code, whatever else holds.
    #[test]
    fn a_vote_at_or_after_the_deadline_is_refused() {
        let roles = ["approver".to_owned()];
        let deadline = Utc::now();
        let request = approval(deadline);
        let before = deadline - TimeDelta::milliseconds(1);
        assert!(refuse_vote(&request, &bob(), &roles, before).is_none());
        for at in [deadline, deadline + TimeDelta::seconds(30)] {
            let refused = refuse_vote(&request, &bob(), &roles, at);
            assert!(
                matches!(refused, Some(RuntimeError::VoteTooLate { ref id, expires_at })
                    if id == "a-1" && expires_at == deadline),
                "{refused:?}"
            );
            assert_eq!(refused.map(|e| e.code()), Some("AMAS-APPR-0005"));
        }
    }

    /// L5: when a vote is already queued and the deadline has passed (as right after a
    /// restart), waiting always ends in the expiry, never in the vote; a cancellation also
    /// beats a queued vote. Repeated, since an unbiased choice would pick either.
    #[tokio::test]
    async fn an_expired_wait_beats_a_queued_vote_every_time() {
        let (idle_tx, idle) = watch::channel(false);
        let (cancelled_tx, cancelled) = watch::channel(true);
        for _ in 0..100 {
            let (tx, mut inbox) = mpsc::channel(VOTE_BUFFER);
            tx.send(vote().0).await.unwrap();
            let expired = approval(Utc::now() - TimeDelta::milliseconds(1));
            assert!(matches!(
                wait(&mut inbox, &expired, &idle).await,
                Waited::Expired
            ));
            let open = approval(Utc::now() + TimeDelta::hours(1));
            assert!(matches!(
                wait(&mut inbox, &open, &cancelled).await,
                Waited::Cancelled
            ));
            // With neither, the queued vote is taken.
            assert!(matches!(
                wait(&mut inbox, &open, &idle).await,
                Waited::Vote(_)
            ));
        }
        drop((idle_tx, cancelled_tx));
    }
}
