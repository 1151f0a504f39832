//! Authorization of API operations by policy (`data.amas.api.decision`, `policies/api.rego`):
//! who may read, list, stream, submit, cancel, approve, read audit data. The API asks once per
//! request, after it has found the object (another tenant's object is never found, so its
//! existence does not leak), passing the object's tenant and owner as `resource`. The question,
//! its count and its audit record are the pipeline's (`pipeline::entry::api_operation`).

use amas_governance::pipeline::entry;
use amas_governance::pipeline::{SecurityEvent, audit::security_record};
use amas_types::Principal;

pub use amas_governance::pipeline::ApiResource;

use crate::{Runtime, RuntimeError};

impl Runtime {
    /// Whether `principal` may perform API `operation` (e.g. `task.read`) on `resource`.
    /// Fails closed: on a policy error the answer is no. A refusal
    /// is audited (who, which operation, the policy's reasons), never with the request's token
    /// or body.
    ///
    /// # Errors
    /// [`RuntimeError::Forbidden`] with the policy's reasons.
    pub async fn authorize_api(
        &self,
        principal: &Principal,
        operation: &str,
        resource: Option<ApiResource<'_>>,
    ) -> Result<(), RuntimeError> {
        let decided = entry::api_operation(
            self.inner.pipeline.policy().as_ref(),
            self.inner.pipeline.environment(),
            &self.inner.metrics,
            principal,
            operation,
            resource,
        );
        match decided {
            Ok(_) => Ok(()),
            Err(refused) => {
                let (decision, record) = *refused;
                self.audit(record).await;
                Err(RuntimeError::Forbidden {
                    operation: operation.to_owned(),
                    reasons: decision.reasons.join("; "),
                })
            }
        }
    }

    /// Audits a request for another tenant's object (answered 404, as if it did not exist):
    /// a security event naming the caller, the operation and the object's id, never the other
    /// tenant.
    pub async fn cross_tenant_attempt(&self, principal: &Principal, operation: &str, object: &str) {
        let record = security_record(
            &self.inner.metrics,
            principal,
            SecurityEvent::CrossTenant { operation, object },
        );
        self.audit(record).await;
    }

    /// The pipeline's record of a security event, for callers that write it later (a policy
    /// reload callback).
    #[must_use]
    pub fn security_record(
        &self,
        principal: &Principal,
        event: SecurityEvent<'_>,
    ) -> amas_store::AuditRecord {
        security_record(&self.inner.metrics, principal, event)
    }

    /// Audits a security event outside a governed action (a failed authentication, a rate
    /// limit, a configuration or policy change): the pipeline builds and counts the record.
    pub async fn security_event(&self, principal: &Principal, event: SecurityEvent<'_>) {
        let record = security_record(&self.inner.metrics, principal, event);
        self.audit(record).await;
    }
}
