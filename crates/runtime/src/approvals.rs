//! The approvals service: approval requests as the journal projects them (listing, reading)
//! and the votes on them. A vote is checked against the stored request, then handed to the
//! process that runs the task (the scheduler's `deliver_vote`): in this process through the
//! [`Inbox`], where the step takes it once it runs again (a step waiting for approval is
//! parked, not running); from another process through the database's commands. The step is
//! the only writer of its task's journal, so votes, the timeout and the decision are
//! serialized without locks over the journal.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use tokio::sync::{oneshot, watch};

use amas_config::AmasConfig;
use amas_store::{ApprovalFilter, ApprovalPage, TaskJournal};
use amas_types::{
    Approval, ApprovalId, ApprovalStatus, JournalEvent, Principal, StepId, TaskId, Verdict,
};

use crate::access::Access;
use crate::error::RuntimeError;
use crate::scheduler::Scheduler;

/// Approval requests, and the votes that decide them.
pub struct Approvals {
    pub(crate) config: Arc<AmasConfig>,
    pub(crate) store: Arc<dyn TaskJournal>,
    pub(crate) access: Arc<Access>,
    /// Hands a checked vote to whoever runs the task, here or in another process.
    pub(crate) scheduler: Arc<Scheduler>,
}

impl Approvals {
    /// Records an approver's vote on a pending approval and returns the approval as it then
    /// stands (approved, denied, or still pending when more approvers are needed). Only what the
    /// approver's tenant owns is visible; the requester cannot vote on their own request.
    ///
    /// # Errors
    /// [`RuntimeError::ApprovalNotFound`], [`RuntimeError::ApprovalSettled`],
    /// [`RuntimeError::SelfApproval`], [`RuntimeError::NotAnApprover`],
    /// [`RuntimeError::AlreadyVoted`], [`RuntimeError::ApprovalUnavailable`] when the task
    /// did not take the vote in time (busy slots, a worker being replaced), or a store error.
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
        self.scheduler
            .deliver_vote(
                &approval,
                Ballot {
                    approver,
                    verdict,
                    reason,
                },
            )
            .await
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

/// An approver's vote as checked against the request, before anyone runs it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Ballot {
    pub approver: Principal,
    pub verdict: Verdict,
    pub reason: String,
}

/// One approver's vote, with where to send the outcome.
pub(crate) struct Vote {
    pub approver: Principal,
    pub verdict: Verdict,
    pub reason: String,
    /// The approval after the vote was journaled, or why it was refused.
    pub reply: oneshot::Sender<Result<Approval, RuntimeError>>,
}

impl Vote {
    /// `ballot`, answered on `reply`.
    pub(crate) fn of(
        ballot: Ballot,
        reply: oneshot::Sender<Result<Approval, RuntimeError>>,
    ) -> Self {
        Self {
            approver: ballot.approver,
            verdict: ballot.verdict,
            reason: ballot.reason,
            reply,
        }
    }
}

/// A vote in the inbox, with the task it is for and the ticket its voter can withdraw it by.
struct Posted {
    ticket: u64,
    task: TaskId,
    vote: Vote,
}

/// Votes handed to this process and not yet taken by the step they are for, by approval. A
/// step waiting for approval is parked (it holds no slot), so a vote waits here until the
/// step runs again and takes it; the scheduler wakes the task when it posts one.
#[derive(Default)]
pub(crate) struct Inbox {
    votes: Mutex<HashMap<ApprovalId, VecDeque<Posted>>>,
    tickets: AtomicU64,
}

impl Inbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ApprovalId, VecDeque<Posted>>> {
        self.votes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leaves `vote` for the step of `task` waiting on `approval`; returns the ticket that
    /// withdraws it.
    pub(crate) fn post(&self, task: TaskId, approval: &ApprovalId, vote: Vote) -> u64 {
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .entry(approval.clone())
            .or_default()
            .push_back(Posted { ticket, task, vote });
        ticket
    }

    /// The oldest vote on `approval` not taken yet.
    pub(crate) fn take(&self, approval: &ApprovalId) -> Option<Vote> {
        let mut votes = self.lock();
        let queue = votes.get_mut(approval)?;
        let posted = queue.pop_front();
        if queue.is_empty() {
            votes.remove(approval);
        }
        posted.map(|p| p.vote)
    }

    /// Withdraws a vote no step has taken; false when a step took it already.
    pub(crate) fn withdraw(&self, approval: &ApprovalId, ticket: u64) -> bool {
        let mut votes = self.lock();
        let Some(queue) = votes.get_mut(approval) else {
            return false;
        };
        let before = queue.len();
        queue.retain(|p| p.ticket != ticket);
        let withdrawn = queue.len() < before;
        if queue.is_empty() {
            votes.remove(approval);
        }
        withdrawn
    }

    /// Whether a vote waits on any of `approvals`.
    pub(crate) fn has_any(&self, approvals: &[ApprovalId]) -> bool {
        let votes = self.lock();
        approvals.iter().any(|a| votes.contains_key(a))
    }

    /// Drops the votes of `task` except those on `keep`: their voters' answers are closed, so
    /// each voter looks at the request again (settled, the task ended, or retry).
    pub(crate) fn drop_task(&self, task: TaskId, keep: &[ApprovalId]) {
        let mut votes = self.lock();
        for (approval, queue) in votes.iter_mut() {
            if !keep.contains(approval) {
                queue.retain(|p| p.task != task);
            }
        }
        votes.retain(|_, queue| !queue.is_empty());
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

/// What a step waiting for approval does next.
pub(crate) enum Waited {
    Vote(Vote),
    Expired,
    Cancelled,
    /// Nothing to act on: the task parks until a vote or the deadline wakes it.
    Parked,
}

/// The next thing a step waiting on `approval` acts on, without waiting: the request's
/// expiry, the task's cancellation, a vote from the inbox, or else parking. The expiry wins,
/// then the cancellation: a vote queued past the deadline (or beside a cancellation) never
/// beats it.
pub(crate) fn next(inbox: &Inbox, approval: &Approval, cancel: &watch::Receiver<bool>) -> Waited {
    if Utc::now() >= approval.expires_at {
        return Waited::Expired;
    }
    if *cancel.borrow() {
        return Waited::Cancelled;
    }
    inbox
        .take(&approval.id)
        .map_or(Waited::Parked, Waited::Vote)
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
    /// restart), the step always acts on the expiry, never the vote; a cancellation also
    /// beats a queued vote; with neither the vote is taken, and with no vote the step parks.
    #[test]
    fn an_expiry_beats_a_queued_vote_and_no_vote_parks() {
        let (idle_tx, idle) = watch::channel(false);
        let (cancelled_tx, cancelled) = watch::channel(true);
        let inbox = Inbox::default();
        let open = approval(Utc::now() + TimeDelta::hours(1));
        let expired = Approval {
            expires_at: Utc::now() - TimeDelta::milliseconds(1),
            ..open.clone()
        };
        let (queued, _answer) = vote();
        inbox.post(open.task_id, &open.id, queued);
        assert!(matches!(next(&inbox, &expired, &idle), Waited::Expired));
        assert!(matches!(next(&inbox, &open, &cancelled), Waited::Cancelled));
        assert!(matches!(next(&inbox, &open, &idle), Waited::Vote(_)));
        assert!(matches!(next(&inbox, &open, &idle), Waited::Parked));
        drop((idle_tx, cancelled_tx));
    }

    /// A voter whose vote no step has taken can withdraw it (it will never count); once a
    /// step took it, it cannot. Dropping a task's votes keeps those on the approvals it
    /// still waits on.
    #[test]
    fn votes_are_withdrawn_only_before_a_step_takes_them() {
        let inbox = Inbox::default();
        let request = approval(Utc::now() + TimeDelta::hours(1));
        let (first, _a) = vote();
        let (second, _b) = vote();
        let t1 = inbox.post(request.task_id, &request.id, first);
        let t2 = inbox.post(request.task_id, &request.id, second);
        assert!(inbox.take(&request.id).is_some(), "the first is taken");
        assert!(!inbox.withdraw(&request.id, t1), "taken: too late");
        assert!(inbox.withdraw(&request.id, t2), "not taken: withdrawn");
        assert!(!inbox.has_any(std::slice::from_ref(&request.id)));

        let (kept, _c) = vote();
        let (dropped, mut dropped_answer) = vote();
        let other: ApprovalId = "a-2".into();
        inbox.post(request.task_id, &request.id, kept);
        inbox.post(request.task_id, &other, dropped);
        inbox.drop_task(request.task_id, std::slice::from_ref(&request.id));
        assert!(inbox.has_any(std::slice::from_ref(&request.id)));
        assert!(!inbox.has_any(std::slice::from_ref(&other)));
        assert!(
            matches!(
                dropped_answer.try_recv(),
                Err(oneshot::error::TryRecvError::Closed)
            ),
            "the dropped vote's voter learns it was not taken"
        );
    }
}
