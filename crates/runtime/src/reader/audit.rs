//! Reads for auditors (`audit.read`): the audit log of the reader's tenant, and a task's
//! decisions asked again under the policy now in force.

use amas_store::audit::{AuditQuery, StoredAuditRecord};
use amas_types::{Principal, TaskId, TaskState};

use super::Reader;
use crate::{ReplayReport, Replayer, RuntimeError};

impl Reader {
    /// Replays `task` under the policy now in force: every decision its journal records is
    /// asked again, with no model or tool call. For auditors (`audit.read`); another tenant's
    /// task is not found.
    ///
    /// # Errors
    /// [`RuntimeError::Forbidden`] when policy refuses, [`RuntimeError::NotFound`], or a
    /// store error.
    pub async fn replay(
        &self,
        viewer: &Principal,
        task: TaskId,
    ) -> Result<ReplayReport, RuntimeError> {
        self.access
            .authorize_api(viewer, "audit.read", None)
            .await?;
        let records = self.journal.store().read(task, 0).await?;
        match TaskState::fold(&records) {
            Some(s) if s.principal.tenant == viewer.tenant => {}
            Some(_) => {
                self.access
                    .cross_tenant_attempt(viewer, "task.replay", &format!("task:{task}"))
                    .await;
                return Err(RuntimeError::NotFound(task));
            }
            None => return Err(RuntimeError::NotFound(task)),
        }
        Replayer::of(&self.config, &self.pipeline, &self.protector)
            .replay(&records)
            .ok_or(RuntimeError::NotFound(task))
    }

    /// Audit records of `viewer`'s tenant matching `query` (its tenant is overridden), if policy
    /// lets `viewer` read audit data (`audit.read`).
    ///
    /// # Errors
    /// [`RuntimeError::Forbidden`] when policy refuses, or a store error.
    pub async fn audit_records(
        &self,
        viewer: &Principal,
        mut query: AuditQuery,
    ) -> Result<Vec<StoredAuditRecord>, RuntimeError> {
        self.access
            .authorize_api(viewer, "audit.read", None)
            .await?;
        query.tenant = Some(viewer.tenant.clone());
        Ok(self.audit_log.query(&query).await?)
    }
}
