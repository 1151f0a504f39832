//! The read side, for readers: a task as a principal may see it. Tenant-isolated (another
//! tenant's task is not found, exactly like a missing one, and the attempt is audited),
//! authorized by API policy, its payloads above the reader's clearance redacted and the
//! redaction audited. API handlers call one function each and map the result.

use amas_store::{ApprovalFilter, ApprovalPage};
use amas_types::{Approval, JournalRecord, Principal, TaskId, TaskState, Verdict};
use serde_json::Value;

use crate::{ApiResource, Outbound, Released, Runtime, RuntimeError, WITHHELD};

/// A task as its reader may see it.
#[derive(Debug)]
pub struct ReleasedTask {
    /// The state, payloads above the reader's clearance redacted.
    pub state: TaskState,
    /// Whether anything was redacted (the view says so).
    pub redacted_for_clearance: bool,
}

/// A task's journal as its reader may see it: each record as JSON, redacted like the task.
#[derive(Debug)]
pub struct ReleasedEvents {
    pub task: TaskId,
    pub events: Vec<Value>,
    pub redacted_for_clearance: bool,
}

impl Runtime {
    /// The task if it exists in `principal`'s tenant and policy lets `principal` perform
    /// `operation` on it. Another tenant's task is [`RuntimeError::NotFound`] before policy is
    /// asked (ids leak nothing), and the attempt is audited.
    ///
    /// # Errors
    /// [`RuntimeError::NotFound`], [`RuntimeError::Forbidden`] when policy refuses, or a store
    /// error.
    pub async fn visible_task(
        &self,
        principal: &Principal,
        task: TaskId,
        operation: &str,
    ) -> Result<TaskState, RuntimeError> {
        let state = match self.get(task).await? {
            Some(state) if state.principal.tenant == principal.tenant => state,
            Some(_) => {
                self.cross_tenant_attempt(principal, operation, &format!("task:{task}"))
                    .await;
                return Err(RuntimeError::NotFound(task));
            }
            None => return Err(RuntimeError::NotFound(task)),
        };
        let resource = ApiResource {
            tenant: &state.principal.tenant,
            owner: &state.principal.sub,
        };
        self.authorize_api(principal, operation, Some(resource))
            .await?;
        Ok(state)
    }

    /// `task.read`: the task as `principal` may see it.
    ///
    /// # Errors
    /// As [`Runtime::visible_task`].
    pub async fn read_task(
        &self,
        principal: &Principal,
        task: TaskId,
    ) -> Result<ReleasedTask, RuntimeError> {
        let state = self.visible_task(principal, task, "task.read").await?;
        Ok(self.release_task(principal, state, "task_read").await)
    }

    /// `task.cancel`: cancels the task (see [`Runtime::cancel`]) and returns it as `principal`
    /// may see it.
    ///
    /// # Errors
    /// As [`Runtime::visible_task`], or a store error.
    pub async fn cancel_as(
        &self,
        principal: &Principal,
        task: TaskId,
        reason: String,
    ) -> Result<ReleasedTask, RuntimeError> {
        let state = self.visible_task(principal, task, "task.cancel").await?;
        let state = self.cancel(state.id, reason).await?;
        Ok(self.release_task(principal, state, "task_cancel").await)
    }

    /// `task.events`: the task's journal as `principal` may see it, every record judged at the
    /// task's most sensitive lineage node and its own scan.
    ///
    /// # Errors
    /// As [`Runtime::visible_task`], or a store error.
    pub async fn read_events(
        &self,
        principal: &Principal,
        task: TaskId,
    ) -> Result<ReleasedEvents, RuntimeError> {
        let state = self.visible_task(principal, task, "task.events").await?;
        let records = self.journal().read(state.id, 0).await?;
        let floor = Outbound::event_floor(&state);
        let outbound = self.outbound(principal);
        let mut released = Released::default();
        let events = records
            .iter()
            .map(|r| release_record(&outbound, floor, r, &mut released))
            .collect();
        self.audit_release(principal, "task_events", state.id, &released)
            .await;
        Ok(ReleasedEvents {
            task: state.id,
            events,
            redacted_for_clearance: released.redacted(),
        })
    }

    /// `state` as `principal` may see it, the redaction (if any) audited as `action`.
    pub async fn release_task(
        &self,
        principal: &Principal,
        mut state: TaskState,
        action: &str,
    ) -> ReleasedTask {
        let released = self.outbound(principal).task(&mut state);
        self.audit_release(principal, action, state.id, &released)
            .await;
        ReleasedTask {
            state,
            redacted_for_clearance: released.redacted(),
        }
    }
}

impl Runtime {
    /// The approval if it exists in `principal`'s tenant (else [`RuntimeError::ApprovalNotFound`],
    /// before policy is asked, so ids leak nothing) and policy lets `principal` perform
    /// `operation` on it.
    ///
    /// # Errors
    /// [`RuntimeError::ApprovalNotFound`], [`RuntimeError::Forbidden`], or a store error.
    pub async fn visible_approval(
        &self,
        principal: &Principal,
        id: &str,
        operation: &str,
    ) -> Result<Approval, RuntimeError> {
        let approval = self
            .approval(id, principal, operation)
            .await?
            .ok_or_else(|| RuntimeError::ApprovalNotFound(id.to_owned()))?;
        let resource = ApiResource {
            tenant: &approval.tenant,
            owner: &approval.requested_by,
        };
        self.authorize_api(principal, operation, Some(resource))
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
        self.authorize_api(principal, "approval.list", None).await?;
        let mut page = self.approvals(principal, filter).await?;
        for approval in &mut page.approvals {
            self.release_approval(principal, "approval_list", approval)
                .await;
        }
        Ok(page)
    }

    /// One approval as `principal` may see it.
    ///
    /// # Errors
    /// As [`Runtime::visible_approval`].
    pub async fn read_approval(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<Approval, RuntimeError> {
        let mut approval = self
            .visible_approval(principal, id, "approval.list")
            .await?;
        self.release_approval(principal, "approval_read", &mut approval)
            .await;
        Ok(approval)
    }

    /// `approval.decide`: records `principal`'s vote (see [`Runtime::decide_approval`]) and
    /// returns the approval as it then stands, as `principal` may see it.
    ///
    /// # Errors
    /// As [`Runtime::visible_approval`] and [`Runtime::decide_approval`].
    pub async fn vote(
        &self,
        principal: Principal,
        id: &str,
        verdict: Verdict,
        reason: String,
    ) -> Result<Approval, RuntimeError> {
        self.visible_approval(&principal, id, "approval.decide")
            .await?;
        let voter = principal.clone();
        let mut approval = self.decide_approval(id, principal, verdict, reason).await?;
        self.release_approval(&voter, "approval_decide", &mut approval)
            .await;
        Ok(approval)
    }

    /// Redacts the tool arguments of `approval` above `principal`'s clearance (an approver
    /// sees what they approve in the form their clearance allows: `***-**-****`), and audits
    /// the redaction as `action`.
    async fn release_approval(&self, principal: &Principal, action: &str, approval: &mut Approval) {
        let outbound = self.outbound(principal);
        let mut released = Released::default();
        outbound.value(
            "arguments",
            amas_dataprotect::Level::Public,
            &mut approval.arguments,
            &mut released,
        );
        self.audit_release(principal, action, approval.task_id, &released)
            .await;
    }
}

/// One journal record as a reader may see it (JSON), judged at `floor` (the task's most
/// sensitive lineage node) and its own scan; an object gets `redacted_for_clearance: true`
/// when it was above clearance.
#[must_use]
pub fn release_record(
    outbound: &Outbound<'_>,
    floor: amas_dataprotect::Level,
    record: &JournalRecord,
    released: &mut Released,
) -> Value {
    let mut value =
        serde_json::to_value(record).unwrap_or_else(|_| Value::String(WITHHELD.to_owned()));
    let mut mine = Released::default();
    if let Some(event) = value.get_mut("event") {
        outbound.value("event", floor, event, &mut mine);
    }
    if mine.redacted()
        && let Some(obj) = value.as_object_mut()
    {
        obj.insert("redacted_for_clearance".to_owned(), Value::Bool(true));
    }
    released.merge(mine);
    value
}
