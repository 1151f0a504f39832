//! Approvals as a reader may see them: found in the reader's tenant, authorized by API policy,
//! the tool arguments above the reader's clearance redacted and the redaction audited. A vote
//! is recorded by the approvals service and answered the same way.

use amas_store::{ApprovalFilter, ApprovalPage};
use amas_types::{Approval, ApprovalId, Principal, Verdict};

use super::Reader;
use crate::access::ApiResource;
use crate::{Released, RuntimeError};

impl Reader {
    /// The approval if it exists in `principal`'s tenant (else [`RuntimeError::ApprovalNotFound`],
    /// before policy is asked, so ids leak nothing) and policy lets `principal` perform
    /// `operation` on it.
    ///
    /// # Errors
    /// [`RuntimeError::ApprovalNotFound`], [`RuntimeError::Forbidden`], or a store error.
    pub async fn visible_approval(
        &self,
        principal: &Principal,
        id: &ApprovalId,
        operation: &str,
    ) -> Result<Approval, RuntimeError> {
        let approval = self
            .approvals
            .get(id, principal, operation)
            .await?
            .ok_or_else(|| RuntimeError::ApprovalNotFound(id.to_string()))?;
        let resource = ApiResource {
            tenant: &approval.tenant,
            owner: &approval.requested_by,
            owner_issuer: &approval.requested_by_issuer,
        };
        self.access
            .authorize_api(principal, operation, Some(resource))
            .await?;
        Ok(approval)
    }

    /// `approval.list`: the approvals of `principal`'s tenant matching `filter`, for approvers,
    /// each as `principal` may see it.
    ///
    /// # Errors
    /// [`RuntimeError::Forbidden`], [`RuntimeError::NotAnApprover`], or a store error.
    pub async fn read_approvals(
        &self,
        principal: &Principal,
        filter: ApprovalFilter,
    ) -> Result<ApprovalPage, RuntimeError> {
        self.access
            .authorize_api(principal, "approval.list", None)
            .await?;
        let mut page = self.approvals.list(principal, filter).await?;
        for approval in &mut page.approvals {
            self.release_approval(principal, "approval_list", approval)
                .await;
        }
        Ok(page)
    }

    /// One approval as `principal` may see it.
    ///
    /// # Errors
    /// As [`Reader::visible_approval`].
    pub async fn read_approval(
        &self,
        principal: &Principal,
        id: &ApprovalId,
    ) -> Result<Approval, RuntimeError> {
        let mut approval = self
            .visible_approval(principal, id, "approval.list")
            .await?;
        self.release_approval(principal, "approval_read", &mut approval)
            .await;
        Ok(approval)
    }

    /// `approval.decide`: records `principal`'s vote (see [`crate::Approvals::decide`]) and
    /// returns the approval as it then stands, as `principal` may see it.
    ///
    /// # Errors
    /// As [`Reader::visible_approval`] and [`crate::Approvals::decide`].
    pub async fn vote(
        &self,
        principal: Principal,
        id: &ApprovalId,
        verdict: Verdict,
        reason: String,
    ) -> Result<Approval, RuntimeError> {
        self.visible_approval(&principal, id, "approval.decide")
            .await?;
        let voter = principal.clone();
        let mut approval = self
            .approvals
            .decide(id, principal, verdict, reason)
            .await?;
        self.release_approval(&voter, "approval_decide", &mut approval)
            .await;
        Ok(approval)
    }

    /// Redacts the tool arguments of `approval` above `principal`'s clearance (an approver
    /// sees what they approve in the form their clearance allows: `***-**-****`), and audits
    /// the redaction as `action`.
    async fn release_approval(&self, principal: &Principal, action: &str, approval: &mut Approval) {
        let outbound = self.access.outbound(principal);
        let mut released = Released::default();
        outbound.value(
            "arguments",
            amas_dataprotect::Level::Public,
            &mut approval.arguments,
            &mut released,
        );
        self.access
            .audit_release(principal, action, approval.task_id, &released)
            .await;
    }
}
