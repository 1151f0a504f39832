//! Human approval of a governed action: the request a step pauses on, the approvers' votes, and
//! how it was resolved. Folded from journal events by the task fold and by the store's approvals
//! projection alike, so both always agree.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::JournalEvent;
use crate::ids::{AgentId, ApprovalId, CallId, StepId, TaskId, TenantId};
use crate::task::Identity;

/// Where an approval request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Denied,
    /// Nobody decided before `expires_at`: treated as a denial.
    Expired,
}

impl ApprovalStatus {
    pub const ALL: [Self; 4] = [Self::Pending, Self::Approved, Self::Denied, Self::Expired];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// One approver's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    Deny,
}

impl Verdict {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Deny => "deny",
        }
    }
}

/// One approver's recorded vote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalVote {
    /// The approver's `sub`.
    pub approver: String,
    /// The approver's issuer: with `approver`, who voted.
    #[serde(default)]
    pub approver_issuer: String,
    pub roles: Vec<String>,
    pub decision: Verdict,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// An approval request with its votes, as folded from the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub id: ApprovalId,
    pub task_id: TaskId,
    pub tenant: TenantId,
    pub step: StepId,
    pub call_id: CallId,
    pub agent: AgentId,
    pub tool: String,
    pub risk: String,
    /// The tool call's parameters, so approvers see exactly what they allow.
    pub arguments: serde_json::Value,
    /// Why approval is needed (the policy's reasons).
    pub reasons: Vec<String>,
    /// Distinct approvers needed.
    pub required_approvals: u32,
    /// The `sub` of the task's submitter, who may not approve their own request.
    pub requested_by: String,
    /// The submitter's issuer: with `requested_by`, who the submitter is.
    #[serde(default)]
    pub requested_by_issuer: String,
    pub status: ApprovalStatus,
    pub votes: Vec<ApprovalVote>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    /// Why it was resolved as it was.
    pub resolution: Option<String>,
}

impl Approval {
    /// The approval an `ApprovalRequested` event opens; `None` for any other event.
    #[must_use]
    pub fn requested(
        task_id: TaskId,
        tenant: &TenantId,
        event: &JournalEvent,
        at: DateTime<Utc>,
    ) -> Option<Self> {
        let JournalEvent::ApprovalRequested {
            approval_id,
            step,
            call_id,
            agent,
            tool,
            risk,
            arguments,
            reasons,
            required_approvals,
            requested_by,
            expires_at,
            requested_by_issuer,
        } = event
        else {
            return None;
        };
        Some(Self {
            id: approval_id.clone(),
            task_id,
            tenant: tenant.clone(),
            step: step.clone(),
            call_id: call_id.clone(),
            agent: agent.clone(),
            tool: tool.clone(),
            risk: risk.clone(),
            arguments: arguments.clone(),
            reasons: reasons.clone(),
            required_approvals: *required_approvals,
            requested_by: requested_by.clone(),
            requested_by_issuer: requested_by_issuer.clone(),
            status: ApprovalStatus::Pending,
            votes: Vec::new(),
            created_at: at,
            expires_at: *expires_at,
            decided_at: None,
            resolution: None,
        })
    }

    /// Applies a vote or a resolution for this approval; other events change nothing. A resolved
    /// approval is final.
    pub fn apply(&mut self, event: &JournalEvent, at: DateTime<Utc>) {
        if self.status != ApprovalStatus::Pending {
            return;
        }
        match event {
            JournalEvent::ApprovalVoted {
                approval_id,
                approver,
                roles,
                decision,
                reason,
                approver_issuer,
                ..
            } if *approval_id == self.id => self.votes.push(ApprovalVote {
                approver: approver.clone(),
                approver_issuer: approver_issuer.clone(),
                roles: roles.clone(),
                decision: *decision,
                reason: reason.clone(),
                at,
            }),
            JournalEvent::ApprovalResolved {
                approval_id,
                status,
                reason,
                ..
            } if *approval_id == self.id => {
                self.status = *status;
                self.decided_at = Some(at);
                self.resolution = Some(reason.clone());
            }
            _ => {}
        }
    }

    /// Who asked: the submitter of the task.
    #[must_use]
    pub fn requester(&self) -> Identity {
        Identity::new(&self.requested_by_issuer, &self.requested_by)
    }

    /// Whether `who` already voted (the same subject at the same issuer).
    #[must_use]
    pub fn has_voted(&self, who: &Identity) -> bool {
        self.votes
            .iter()
            .any(|v| who.is(&v.approver_issuer, &v.approver))
    }

    /// The votes as the policy input's `approvals` list (`iss` is the approver's issuer).
    #[must_use]
    pub fn policy_approvals(&self) -> Vec<serde_json::Value> {
        self.votes
            .iter()
            .map(|v| {
                serde_json::json!({
                    "approver": v.approver,
                    "iss": v.approver_issuer,
                    "roles": v.roles,
                    "decision": v.decision.as_str(),
                })
            })
            .collect()
    }
}
